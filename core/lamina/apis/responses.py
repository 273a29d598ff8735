"""The OpenAI Responses API: a response is one run of the agent loop, in OpenAI's shapes.

``POST /v1/openai/v1/responses`` (also ``/v1/responses``) takes ``input`` (a string, or a list of
items: messages, function calls and their outputs, MCP approval answers) and answers a response whose
``output`` lists what the run produced: messages, function calls for the client to run, file search,
web search and MCP calls the server ran, MCP approval requests. ``previous_response_id`` continues a
stored response's conversation. Streamed, the run is a sequence of typed events
(``response.created`` ... ``response.completed``), each with a ``sequence_number``.

Field names and types are OpenAI's, so the openai SDK parses every answer and event with its own
models; where Llama Stack 0.2.12 adds a field (``max_infer_iters``), it is marked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Discriminator, Field, RootModel, Tag

from lamina.access.declarations import creates, deletes, lists, reads
from lamina.apis.webmethod import webmethod

Status = Literal["in_progress", "completed", "incomplete", "failed"]

# -- content -------------------------------------------------------------------------------------


class InputText(BaseModel):
    type: Literal["input_text"] = "input_text"
    text: str


class InputImage(BaseModel):
    type: Literal["input_image"] = "input_image"
    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["low", "high", "auto"] = "auto"


InputContent = Annotated[InputText | InputImage, Field(discriminator="type")]


class FileCitation(BaseModel):
    type: Literal["file_citation"] = "file_citation"
    file_id: str
    filename: str
    index: int


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[FileCitation] = Field(default_factory=list)
    logprobs: list[dict[str, Any]] = Field(default_factory=list)


class Refusal(BaseModel):
    type: Literal["refusal"] = "refusal"
    refusal: str


OutputContent = Annotated[OutputText | Refusal, Field(discriminator="type")]

# -- items ---------------------------------------------------------------------------------------


class InputMessage(BaseModel):
    """A message given as input (``type`` may be left out, as OpenAI allows)."""

    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[InputContent | OutputContent]
    id: str | None = None
    status: Status | None = None


class OutputMessage(BaseModel):
    type: Literal["message"] = "message"
    id: str
    role: Literal["assistant"] = "assistant"
    status: Status = "completed"
    content: list[OutputContent]


class FunctionCall(BaseModel):
    """A call of one of the request's function tools: the client runs it and sends its output back."""

    type: Literal["function_call"] = "function_call"
    call_id: str
    name: str
    arguments: str = Field(description="JSON text of the arguments, as the model wrote them.")
    id: str | None = None
    status: Status | None = None


class FunctionCallOutput(BaseModel):
    type: Literal["function_call_output"] = "function_call_output"
    call_id: str
    output: str
    id: str | None = None
    status: Status | None = None


class FileSearchResult(BaseModel):
    file_id: str
    filename: str
    text: str
    score: float
    attributes: dict[str, str | float | bool] = Field(default_factory=dict)


class FileSearchCall(BaseModel):
    type: Literal["file_search_call"] = "file_search_call"
    id: str
    queries: list[str]
    status: Literal["in_progress", "searching", "completed", "incomplete", "failed"] = "completed"
    results: list[FileSearchResult] | None = Field(
        default=None, description='Only with include=["file_search_call.results"].'
    )


class WebSearchAction(BaseModel):
    type: Literal["search"] = "search"
    query: str


class WebSearchCall(BaseModel):
    type: Literal["web_search_call"] = "web_search_call"
    id: str
    status: Literal["in_progress", "searching", "completed", "failed", "incomplete"] = "completed"
    action: WebSearchAction


class McpCall(BaseModel):
    type: Literal["mcp_call"] = "mcp_call"
    id: str
    server_label: str
    name: str
    arguments: str
    output: str | None = None
    error: str | None = None
    approval_request_id: str | None = None
    status: Literal["in_progress", "completed", "incomplete", "calling", "failed"] | None = None


class McpListedTool(BaseModel):
    name: str
    input_schema: dict[str, Any]
    description: str | None = None
    annotations: dict[str, Any] | None = None


class McpListTools(BaseModel):
    type: Literal["mcp_list_tools"] = "mcp_list_tools"
    id: str
    server_label: str
    tools: list[McpListedTool]
    error: str | None = None


class McpApprovalRequest(BaseModel):
    """The model wants to call an MCP tool that needs approval: the run stops here, and the next
    request answers with an ``mcp_approval_response`` naming this id."""

    type: Literal["mcp_approval_request"] = "mcp_approval_request"
    id: str
    server_label: str
    name: str
    arguments: str


class McpApprovalResponse(BaseModel):
    type: Literal["mcp_approval_response"] = "mcp_approval_response"
    approval_request_id: str
    approve: bool
    id: str | None = None
    reason: str | None = None


OutputItem = Annotated[
    OutputMessage
    | FunctionCall
    | FileSearchCall
    | WebSearchCall
    | McpCall
    | McpListTools
    | McpApprovalRequest,
    Field(discriminator="type"),
]


def _input_item_type(value: Any) -> str:
    kind = value.get("type", "message") if isinstance(value, dict) else getattr(value, "type", "message")
    if kind == "message":
        # an assistant message that came out of a response has an id and output content
        return "message"
    return kind


InputItem = Annotated[
    Annotated[InputMessage, Tag("message")]
    | Annotated[FunctionCall, Tag("function_call")]
    | Annotated[FunctionCallOutput, Tag("function_call_output")]
    | Annotated[McpApprovalResponse, Tag("mcp_approval_response")]
    | Annotated[McpApprovalRequest, Tag("mcp_approval_request")]
    | Annotated[McpCall, Tag("mcp_call")]
    | Annotated[McpListTools, Tag("mcp_list_tools")]
    | Annotated[FileSearchCall, Tag("file_search_call")]
    | Annotated[WebSearchCall, Tag("web_search_call")],
    Discriminator(_input_item_type),
]

# -- tools ---------------------------------------------------------------------------------------


class FunctionTool(BaseModel):
    type: Literal["function"] = "function"
    name: str
    parameters: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class RankingOptions(BaseModel):
    ranker: str | None = None
    score_threshold: float | None = Field(default=None, ge=0.0, le=1.0)


class FileSearchTool(BaseModel):
    type: Literal["file_search"] = "file_search"
    vector_store_ids: list[str] = Field(min_length=1)
    filters: dict[str, Any] | None = Field(default=None, description="OpenAI's comparison/compound filter.")
    max_num_results: int | None = Field(default=10, ge=1, le=50)
    ranking_options: RankingOptions | None = None


class WebSearchTool(BaseModel):
    type: Literal["web_search", "web_search_preview", "web_search_preview_2025_03_11"] = "web_search"
    search_context_size: Literal["low", "medium", "high"] | None = "medium"
    user_location: dict[str, Any] | None = None


class ToolNames(BaseModel):
    tool_names: list[str] = Field(default_factory=list)


class ApprovalFilter(BaseModel):
    always: ToolNames | None = None
    never: ToolNames | None = None


class McpTool(BaseModel):
    type: Literal["mcp"] = "mcp"
    server_label: str
    server_url: str
    headers: dict[str, str] | None = None
    allowed_tools: list[str] | ToolNames | None = None
    require_approval: Literal["always", "never"] | ApprovalFilter = Field(
        default="always", description="OpenAI's default: every call waits for approval."
    )
    server_description: str | None = None


def _tool_type(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "web_search" if isinstance(kind, str) and kind.startswith("web_search") else str(kind)


Tool = Annotated[
    Annotated[FunctionTool, Tag("function")]
    | Annotated[FileSearchTool, Tag("file_search")]
    | Annotated[WebSearchTool, Tag("web_search")]
    | Annotated[McpTool, Tag("mcp")],
    Discriminator(_tool_type),
]


class ToolChoiceFunction(BaseModel):
    type: Literal["function"] = "function"
    name: str


ToolChoice = Literal["auto", "required", "none"] | ToolChoiceFunction

# -- text format ---------------------------------------------------------------------------------


class TextFormatText(BaseModel):
    type: Literal["text"] = "text"


class TextFormatJsonObject(BaseModel):
    type: Literal["json_object"] = "json_object"


class TextFormatJsonSchema(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    type: Literal["json_schema"] = "json_schema"
    name: str
    json_schema: dict[str, Any] = Field(alias="schema", serialization_alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(BaseModel):
    format: Annotated[
        TextFormatText | TextFormatJsonObject | TextFormatJsonSchema, Field(discriminator="type")
    ] = Field(default_factory=TextFormatText)


# -- the response --------------------------------------------------------------------------------


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class Usage(BaseModel):
    """Summed over every model call of the response."""

    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)


class ResponseError(BaseModel):
    code: str
    message: str


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens", "content_filter"]


class ResponseObject(BaseModel):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    model: str
    status: Literal["completed", "failed", "in_progress", "incomplete"]
    output: list[OutputItem]
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    metadata: dict[str, str] | None = None
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    store: bool = True
    temperature: float | None = None
    text: TextConfig = Field(default_factory=TextConfig)
    tool_choice: ToolChoice = "auto"
    tools: list[Tool] = Field(default_factory=list)
    top_p: float | None = None
    truncation: Literal["auto", "disabled"] | None = "disabled"
    usage: Usage | None = None
    user: str | None = None


class CreateResponseRequest(BaseModel):
    input: str | list[InputItem]
    model: str
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool | None = True
    stream: bool | None = False
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    text: TextConfig | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = True
    max_output_tokens: int | None = Field(default=None, ge=1)
    include: list[Literal["file_search_call.results"] | str] | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    max_infer_iters: int | None = Field(
        default=10, ge=1, description="Llama Stack's: most model calls in a run."
    )


class ResponseIdRequest(BaseModel):
    response_id: str = Field(min_length=1)


class ResponseDeleted(BaseModel):
    id: str
    object: Literal["response"] = "response"
    deleted: bool = True


class ListResponsesRequest(BaseModel):
    after: str | None = Field(default=None, description="A response id: list those after it.")
    limit: int | None = Field(default=50, ge=1, le=100)
    model: str | None = None
    order: Literal["asc", "desc"] | None = "desc"


class ResponseWithInput(ResponseObject):
    input: list[InputItem] = Field(default_factory=list)


class ListResponsesResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[ResponseWithInput]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class ListInputItemsRequest(BaseModel):
    response_id: str = Field(min_length=1)
    after: str | None = None
    before: str | None = None
    include: list[str] | None = None
    limit: int | None = Field(default=20, ge=1, le=100)
    order: Literal["asc", "desc"] | None = "desc"


class InputItemList(BaseModel):
    object: Literal["list"] = "list"
    data: list[InputItem]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


# -- stream events -------------------------------------------------------------------------------


class _Event(BaseModel):
    sequence_number: int


class ResponseLifecycleEvent(_Event):
    type: Literal[
        "response.created",
        "response.in_progress",
        "response.completed",
        "response.failed",
        "response.incomplete",
    ]
    response: ResponseObject


class OutputItemEvent(_Event):
    type: Literal["response.output_item.added", "response.output_item.done"]
    response_id: str = Field(description="Llama Stack's (its client requires it); OpenAI clients ignore it.")
    output_index: int
    item: OutputItem


class ContentPartEvent(_Event):
    type: Literal["response.content_part.added", "response.content_part.done"]
    item_id: str
    output_index: int
    content_index: int
    part: OutputContent


class OutputTextDeltaEvent(_Event):
    type: Literal["response.output_text.delta"] = "response.output_text.delta"
    item_id: str
    output_index: int
    content_index: int
    delta: str
    logprobs: list[dict[str, Any]] = Field(default_factory=list)


class OutputTextDoneEvent(_Event):
    type: Literal["response.output_text.done"] = "response.output_text.done"
    item_id: str
    output_index: int
    content_index: int
    text: str
    logprobs: list[dict[str, Any]] = Field(default_factory=list)


class ArgumentsDeltaEvent(_Event):
    type: Literal["response.function_call_arguments.delta", "response.mcp_call_arguments.delta"]
    item_id: str
    output_index: int
    delta: str


class ArgumentsDoneEvent(_Event):
    type: Literal["response.function_call_arguments.done", "response.mcp_call_arguments.done"]
    item_id: str
    output_index: int
    arguments: str
    name: str | None = None


class ToolCallProgressEvent(_Event):
    """A server-side tool call's progress (no payload beyond which item it is)."""

    type: Literal[
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.mcp_list_tools.failed",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
        "response.web_search_call.completed",
    ]
    item_id: str
    output_index: int


class ErrorEvent(_Event):
    type: Literal["error"] = "error"
    code: str | None = None
    message: str
    param: str | None = None


ResponseStreamEvent = Annotated[
    ResponseLifecycleEvent
    | OutputItemEvent
    | ContentPartEvent
    | OutputTextDeltaEvent
    | OutputTextDoneEvent
    | ArgumentsDeltaEvent
    | ArgumentsDoneEvent
    | ToolCallProgressEvent
    | ErrorEvent,
    Field(discriminator="type"),
]


class ResponseStreamChunk(RootModel[ResponseStreamEvent]):
    """One event of a streamed response; on the wire the event itself (``data: {"type": ...}``)."""


# -- the API -------------------------------------------------------------------------------------

_RESPONSES = "/v1/openai/v1/responses"
_ALIAS = "/v1/responses"


class Responses(Protocol):
    @webmethod(
        "POST",
        _RESPONSES,
        aliases=(_ALIAS,),
        request=CreateResponseRequest,
        response=ResponseObject,
        stream_item=ResponseStreamChunk,
        openai=True,
        access=creates(
            "response",
            "id|response.id",
            uses=(
                ("response", "previous_response_id"),
                ("model", "model"),
                ("vector_db", "tools[].vector_store_ids"),  # file_search runs inside the server
            ),
        ),
    )
    async def create_openai_response(
        self, request: CreateResponseRequest
    ) -> ResponseObject | AsyncIterator[ResponseStreamChunk]:
        """Run the model (and the server's tools) on the input: the response, or (``stream``) its events."""
        ...

    @webmethod(
        "GET",
        _RESPONSES,
        aliases=(_ALIAS,),
        request=ListResponsesRequest,
        response=ListResponsesResponse,
        access=lists("response"),
    )
    async def list_openai_responses(self, request: ListResponsesRequest) -> ListResponsesResponse:
        """Stored responses, newest first by default; page with ``after``."""
        ...

    @webmethod(
        "GET",
        _RESPONSES + "/{response_id}",
        aliases=(_ALIAS + "/{response_id}",),
        request=ResponseIdRequest,
        response=ResponseObject,
        access=reads("response", "response_id"),
    )
    async def get_openai_response(self, request: ResponseIdRequest) -> ResponseObject:
        """A stored response."""
        ...

    @webmethod(
        "DELETE",
        _RESPONSES + "/{response_id}",
        aliases=(_ALIAS + "/{response_id}",),
        request=ResponseIdRequest,
        response=ResponseDeleted,
        access=deletes("response", "response_id"),
    )
    async def delete_openai_response(self, request: ResponseIdRequest) -> ResponseDeleted:
        """Delete a stored response (later responses that continue it keep their own copies)."""
        ...

    @webmethod(
        "GET",
        _RESPONSES + "/{response_id}/input_items",
        aliases=(_ALIAS + "/{response_id}/input_items",),
        request=ListInputItemsRequest,
        response=InputItemList,
        access=reads("response", "response_id"),
    )
    async def list_openai_response_input_items(self, request: ListInputItemsRequest) -> InputItemList:
        """The items a stored response was given (its own input, after what it continued), paged."""
        ...
