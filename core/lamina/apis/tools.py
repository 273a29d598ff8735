"""Tool groups, tools and the tool runtime, with the RAG tool (Llama Stack 0.2.12's shapes and routes).

A ``ToolGroup`` is a registered resource owned by one ``tool_runtime`` provider (``builtin::rag``,
for example, registered by default by the RAG runtime plugin). Its tools are what the provider lists
for it (``ToolDef``); the server shows them as ``Tool`` resources and routes ``invoke`` by tool name
to the group's provider. The RAG tool's ``insert`` and ``query`` go to the provider serving
``builtin::rag``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lamina.access.declarations import (
    creates,
    deletes,
    lists,
    reads,
    reads_result,
    updates,
    uses,
    uses_tool,
)
from lamina.apis.common import URL, Empty, InterleavedContent, Resource
from lamina.apis.vector_io import RRFRanker, WeightedRanker
from lamina.apis.webmethod import webmethod

RAG_TOOL_GROUP = "builtin::rag"
MAX_DOCUMENTS_PER_INSERT = 1_000
MAX_CHUNK_SIZE_IN_TOKENS = 8_192

# -- resources and definitions ----------------------------------------------------------------------

# A tool parameter's type as Llama Stack's clients give it (Python's names, or JSON Schema's) -> the JSON
# Schema type an OpenAI-compatible tool definition needs.
JSON_SCHEMA_TYPES = {
    "str": "string",
    "string": "string",
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
    "list": "array",
    "array": "array",
    "dict": "object",
    "object": "object",
}


class ToolParameter(BaseModel):
    name: str
    parameter_type: str
    description: str
    required: bool = True
    default: Any | None = None


class ToolDef(BaseModel):
    """A tool as its provider defines it."""

    name: str
    description: str | None = None
    parameters: list[ToolParameter] | None = None
    metadata: dict[str, Any] | None = None


class Tool(Resource):
    """A tool as the server lists it: its definition, under its tool group."""

    type: Literal["tool"] = "tool"
    toolgroup_id: str
    description: str
    parameters: list[ToolParameter]
    metadata: dict[str, Any] | None = None


class ToolGroup(Resource):
    type: Literal["tool_group"] = "tool_group"
    mcp_endpoint: URL | None = None
    args: dict[str, Any] | None = None


class ToolInvocationResult(BaseModel):
    content: InterleavedContent | None = None
    error_message: str | None = None
    error_code: int | None = None
    metadata: dict[str, Any] | None = None


class ListToolGroupsResponse(BaseModel):
    data: list[ToolGroup]


class ListToolsResponse(BaseModel):
    data: list[Tool]


class ListToolDefsResponse(BaseModel):
    data: list[ToolDef]


class RuntimeToolDef(ToolDef):
    """A ``ToolDef`` (what llama-stack-client reads here) plus the ``Tool`` fields that Llama Stack
    0.2.12's server sends on this route instead (``identifier``, ``toolgroup_id``, ...): code written
    for either works."""

    identifier: str
    toolgroup_id: str
    provider_id: str
    type: Literal["tool"] = "tool"


class ListRuntimeToolsResponse(BaseModel):
    data: list[RuntimeToolDef]


# -- requests ---------------------------------------------------------------------------------------


class RegisterToolGroupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    toolgroup_id: str = Field(min_length=1, description="The identifier clients will use.")
    provider_id: str | None = Field(
        default=None, description="Required when several tool_runtime providers are configured."
    )
    mcp_endpoint: URL | None = None
    args: dict[str, Any] | None = Field(
        default=None, description="Arguments the provider applies to the group's tools (RAG: vector_db_ids)."
    )


class GetToolGroupRequest(BaseModel):
    toolgroup_id: str = Field(min_length=1)


class ListToolsRequest(BaseModel):
    toolgroup_id: str | None = None


class GetToolRequest(BaseModel):
    tool_name: str = Field(min_length=1)


class ListRuntimeToolsRequest(BaseModel):
    tool_group_id: str | None = None
    mcp_endpoint: URL | None = Field(
        default=None,
        description="An MCP server whose tools to list without registering it (needs a "
        "remote::model-context-protocol provider); in a query, mcp_endpoint[uri]=<url> or "
        "mcp_endpoint=<url>.",
    )

    @model_validator(mode="before")
    @classmethod
    def _endpoint_from_query(cls, data: Any) -> Any:
        """llama-stack-client sends the nested field as ``mcp_endpoint[uri]``; a bare URL is accepted."""
        if isinstance(data, dict):
            data = dict(data)
            if "mcp_endpoint[uri]" in data:
                data["mcp_endpoint"] = {"uri": data.pop("mcp_endpoint[uri]")}
            elif isinstance(data.get("mcp_endpoint"), str):
                data["mcp_endpoint"] = {"uri": data["mcp_endpoint"]}
        return data


class InvokeToolRequest(BaseModel):
    tool_name: str = Field(min_length=1)
    kwargs: dict[str, Any] = Field(default_factory=dict)


# -- the RAG tool -----------------------------------------------------------------------------------


class RAGDocument(BaseModel):
    """A document to index: inline content, or a URL (http(s), data:, file:// where allowed)."""

    document_id: str = Field(min_length=1)
    content: InterleavedContent | URL
    mime_type: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class DefaultRAGQueryGeneratorConfig(BaseModel):
    type: Literal["default"] = "default"
    separator: str = " "


class LLMRAGQueryGeneratorConfig(BaseModel):
    type: Literal["llm"] = "llm"
    model: str = Field(min_length=1)
    template: str = Field(description="A Jinja template (sandboxed); `messages` holds the content's texts.")


RAGQueryGeneratorConfig = Annotated[
    DefaultRAGQueryGeneratorConfig | LLMRAGQueryGeneratorConfig, Field(discriminator="type")
]


DEFAULT_CHUNK_TEMPLATE = "Result {index}\nContent: {chunk.content}\nMetadata: {metadata}\n"


class RAGQueryConfig(BaseModel):
    query_generator_config: RAGQueryGeneratorConfig = Field(default_factory=DefaultRAGQueryGeneratorConfig)
    max_tokens_in_context: int = Field(default=4096, ge=1)
    max_chunks: int = Field(default=5, ge=1, le=1000)
    chunk_template: str = DEFAULT_CHUNK_TEMPLATE
    mode: Literal["vector", "keyword", "hybrid"] | None = Field(default=None, description="None: vector.")
    ranker: RRFRanker | WeightedRanker | None = Field(default=None, discriminator="type")

    @field_validator("chunk_template")
    @classmethod
    def _template_has_fields(cls, value: str) -> str:
        for needed in ("{chunk.content}", "{index}"):
            if needed not in value:
                raise ValueError(f"chunk_template must contain {needed}")
        return value

    @field_validator("mode", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class InsertDocumentsRequest(BaseModel):
    documents: list[RAGDocument] = Field(min_length=1, max_length=MAX_DOCUMENTS_PER_INSERT)
    vector_db_id: str = Field(min_length=1)
    chunk_size_in_tokens: int = Field(default=512, ge=1, le=MAX_CHUNK_SIZE_IN_TOKENS)
    chunk_overlap_in_tokens: int | None = Field(
        default=None,
        ge=0,
        description="Lamina's addition; default chunk_size_in_tokens // 4, as Llama Stack.",
    )


class RAGQueryRequest(BaseModel):
    content: InterleavedContent
    vector_db_ids: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    query_config: RAGQueryConfig | None = None


class RAGQueryResult(BaseModel):
    content: InterleavedContent | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


# -- the APIs ---------------------------------------------------------------------------------------


class ToolGroups(Protocol):
    @webmethod(
        "GET",
        "/v1/toolgroups",
        request=Empty,
        response=ListToolGroupsResponse,
        access=lists("tool_group", "identifier"),
    )
    async def list_tool_groups(self, request: Empty) -> ListToolGroupsResponse:
        """List registered tool groups."""
        ...

    @webmethod(
        "GET",
        "/v1/toolgroups/{toolgroup_id:.+}",
        request=GetToolGroupRequest,
        response=ToolGroup,
        access=reads("tool_group", "toolgroup_id"),
    )
    async def get_tool_group(self, request: GetToolGroupRequest) -> ToolGroup:
        """Get a tool group by its identifier."""
        ...

    @webmethod(
        "POST",
        "/v1/toolgroups",
        request=RegisterToolGroupRequest,
        response=ToolGroup,
        access=creates(
            "tool_group", "identifier", requested="toolgroup_id", uses=(("vector_db", "args.vector_db_ids"),)
        ),
    )
    async def register_tool_group(self, request: RegisterToolGroupRequest) -> ToolGroup:
        """Register a tool group with a tool_runtime provider."""
        ...

    @webmethod(
        "DELETE",
        "/v1/toolgroups/{toolgroup_id:.+}",
        request=GetToolGroupRequest,
        response=None,
        access=deletes("tool_group", "toolgroup_id"),
    )
    async def unregister_toolgroup(self, request: GetToolGroupRequest) -> None:
        """Unregister a tool group."""
        ...

    @webmethod(
        "GET",
        "/v1/tools",
        request=ListToolsRequest,
        response=ListToolsResponse,
        access=lists("tool_group", "toolgroup_id"),
    )
    async def list_tools(self, request: ListToolsRequest) -> ListToolsResponse:
        """List the tools of every tool group, or of one (`toolgroup_id`)."""
        ...

    @webmethod(
        "GET",
        "/v1/tools/{tool_name:.+}",
        request=GetToolRequest,
        response=Tool,
        access=reads_result("tool_group", "toolgroup_id"),
    )
    async def get_tool(self, request: GetToolRequest) -> Tool:
        """Get a tool by its name."""
        ...


class ToolRuntime(Protocol):
    @webmethod(
        "GET",
        "/v1/tool-runtime/list-tools",
        request=ListRuntimeToolsRequest,
        response=ListRuntimeToolsResponse,
        access=uses(("tool_group", "tool_group_id")),
    )
    async def list_runtime_tools(self, request: ListRuntimeToolsRequest) -> ListRuntimeToolsResponse:
        """List tool definitions (name, description, parameters) of every tool group, or of one."""
        ...

    @webmethod(
        "POST",
        "/v1/tool-runtime/invoke",
        request=InvokeToolRequest,
        response=ToolInvocationResult,
        # RAG's knowledge_search may name its vector DBs in its arguments
        access=uses_tool("tool_name", uses=(("vector_db", "kwargs.vector_db_ids"),)),
    )
    async def invoke_tool(self, request: InvokeToolRequest) -> ToolInvocationResult:
        """Run a tool by name with its arguments (`kwargs`)."""
        ...


class RAGToolRuntime(Protocol):
    @webmethod(
        "POST",
        "/v1/tool-runtime/rag-tool/insert",
        request=InsertDocumentsRequest,
        response=None,
        access=updates("vector_db", "vector_db_id"),
    )
    async def insert(self, request: InsertDocumentsRequest) -> None:
        """Index documents into a vector DB: load, convert to text, chunk by tokens and insert."""
        ...

    @webmethod(
        "POST",
        "/v1/tool-runtime/rag-tool/query",
        request=RAGQueryRequest,
        response=RAGQueryResult,
        cancel_on_disconnect=True,
        access=uses(("vector_db", "vector_db_ids")),
    )
    async def query(self, request: RAGQueryRequest) -> RAGQueryResult:
        """Retrieve context for a query from vector DBs, formatted for a model's prompt."""
        ...


# -- what a provider implements ---------------------------------------------------------------------


class ToolRuntimeProvider(Protocol):
    """A tool_runtime provider (``lamina.testing.conformance.ToolRuntimeConformance`` checks it).

    * ``list_runtime_tools(tool_group)`` returns the tool definitions of one of its tool groups.
    * ``invoke_tool(tool_group, tool_name, kwargs)`` runs one of them; the group is passed so the
      provider can apply its ``args``. Bad ``kwargs`` raise ``BadRequestError`` naming ``kwargs.<name>``;
      a failure of the tool itself is a ``ToolInvocationResult`` with ``error_message``/``error_code``.
    * Optional: ``register_toolgroup(tool_group)`` (may refuse with ``BadRequestError``) and
      ``unregister_toolgroup(tool_group)``.
    * A provider serving ``builtin::rag`` also implements ``insert(InsertDocumentsRequest)`` and
      ``query(RAGQueryRequest)`` (``RAGToolRuntime``).
    """

    async def list_runtime_tools(self, tool_group: ToolGroup) -> list[ToolDef]:
        """The tools of ``tool_group`` (name, description, parameters), asked when it is registered."""
        ...

    async def invoke_tool(
        self, tool_group: ToolGroup, tool_name: str, kwargs: dict[str, Any]
    ) -> ToolInvocationResult:
        """Run ``tool_name`` of ``tool_group``; the router has checked ``kwargs`` against its parameters.

        Bad ``kwargs`` raise ``BadRequestError(param="kwargs.<name>")``; a failure of the tool
        itself is a ``ToolInvocationResult`` with ``error_message`` (and ``error_code``). Any other
        exception becomes a 502 naming the provider.
        """
        ...
