"""The tool runtime router: tool definitions, invocation by tool name, and the RAG tool.

``invoke`` resolves the tool name to its tool group (``lamina.resources.tool_groups``) and checks
``kwargs`` against the tool's parameters before the provider sees them: a missing required
parameter, or a value whose JSON type does not match ``parameter_type`` (string, integer, number,
boolean, array, object, list, dict), is a 400 naming ``kwargs.<parameter>``. Keys the tool does not
declare are passed through (the RAG tool takes ``vector_db_ids`` and ``query_config`` that way, as
in Llama Stack). ``rag-tool/insert`` and ``rag-tool/query`` go to the provider serving
``builtin::rag``.
"""

from __future__ import annotations

from typing import Any

from lamina.apis.tools import (
    InsertDocumentsRequest,
    InvokeToolRequest,
    ListRuntimeToolsRequest,
    ListRuntimeToolsResponse,
    ListToolsRequest,
    RAGQueryRequest,
    RAGQueryResult,
    RuntimeToolDef,
    Tool,
    ToolInvocationResult,
)
from lamina.errors import BadRequestError, LaminaError, UpstreamError
from lamina.resources.tool_groups import ToolGroupsRoutingTable

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "str": (str,),
    "integer": (int,),
    "int": (int,),
    "number": (int, float),
    "float": (int, float),
    "boolean": (bool,),
    "bool": (bool,),
    "array": (list,),
    "list": (list,),
    "object": (dict,),
    "dict": (dict,),
}


class RAGToolRouter:
    """``/v1/tool-runtime/rag-tool/*``: the provider serving ``builtin::rag`` does the work."""

    def __init__(self, tool_groups: ToolGroupsRoutingTable) -> None:
        self.tool_groups = tool_groups

    async def insert(self, request: InsertDocumentsRequest) -> None:
        provider = await self.tool_groups.rag_provider()
        await provider.insert(request)

    async def query(self, request: RAGQueryRequest) -> RAGQueryResult:
        provider = await self.tool_groups.rag_provider()
        return await provider.query(request)


class ToolRuntimeRouter:
    def __init__(self, tool_groups: ToolGroupsRoutingTable) -> None:
        self.tool_groups = tool_groups
        self.rag_tool = RAGToolRouter(tool_groups)

    async def list_runtime_tools(self, request: ListRuntimeToolsRequest) -> ListRuntimeToolsResponse:
        if request.mcp_endpoint is not None:
            tools = await self.tool_groups.endpoint_tools(request.mcp_endpoint, request.tool_group_id)
            return ListRuntimeToolsResponse(data=[_tool_def(t) for t in tools])
        listed = await self.tool_groups.list_tools(ListToolsRequest(toolgroup_id=request.tool_group_id))
        return ListRuntimeToolsResponse(data=[_tool_def(t) for t in listed.data])

    async def invoke_tool(self, request: InvokeToolRequest) -> ToolInvocationResult:
        tool, group = await self.tool_groups.resolve_tool(request.tool_name)
        check_kwargs(tool, request.kwargs)
        _, provider = await self.tool_groups.resolve(group.identifier)
        try:
            result = await provider.invoke_tool(group, tool.identifier, request.kwargs)
        except LaminaError:
            raise
        except Exception as exc:
            raise UpstreamError(
                group.provider_id, f"tool '{tool.identifier}' failed: {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(result, ToolInvocationResult):
            return result
        return ToolInvocationResult.model_validate(result)


def _tool_def(tool: Tool) -> RuntimeToolDef:
    return RuntimeToolDef(
        name=tool.identifier,
        description=tool.description,
        parameters=tool.parameters,
        metadata=tool.metadata,
        identifier=tool.identifier,
        toolgroup_id=tool.toolgroup_id,
        provider_id=tool.provider_id,
    )


def check_kwargs(tool: Tool, kwargs: dict[str, Any]) -> None:
    """400 naming ``kwargs.<name>`` for a missing required parameter or a value of the wrong type."""
    for param in tool.parameters:
        field = f"kwargs.{param.name}"
        if param.name not in kwargs or kwargs[param.name] is None:
            if param.required and param.default is None:
                raise BadRequestError(
                    f"{field}: missing; tool '{tool.identifier}' requires parameter '{param.name}' "
                    f"({param.parameter_type}: {param.description})",
                    param=field,
                )
            continue
        expected = _JSON_TYPES.get(param.parameter_type.lower())
        value = kwargs[param.name]
        if expected is None:
            continue
        if isinstance(value, bool) and bool not in expected:
            ok = False
        else:
            ok = isinstance(value, expected)
        if not ok:
            raise BadRequestError(
                f"{field}: tool '{tool.identifier}' expects a {param.parameter_type}, got "
                f"{type(value).__name__} {value!r:.60}",
                param=field,
            )
