"""The tool groups routing table: serves the ToolGroups API and resolves tool names for the runtime.

Tool groups are persisted in the registry like models (from ``POST /v1/toolgroups``, the run
config's ``tool_groups:`` and plugins' ``lamina_tool_groups`` defaults). Their tools are not: each
group's tools are what its provider's ``list_runtime_tools`` answers, asked when the group is
registered (a provider that cannot list them refuses the registration) and again, lazily, by each
process that needs them; the answers are cached per group until it is registered again or removed.
A provider whose tools depend on the request (``tools_depend_on_request = True``: an MCP server
lists tools to callers who send its credentials) is asked on every listing instead, and not at
registration: registering such a group needs neither the server up nor the caller's credentials,
as in Llama Stack.

Listing every group's tools skips a group whose server fails (with a warning: one broken server must
not hide every other tool) but not one that refuses the caller (401/403): that is the answer, naming
the group and the credentials to send, as in Llama Stack. ``endpoint_tools`` lists an MCP server
named by URL without registering it (list-tools' ``mcp_endpoint``).

A tool is named by its bare name (``knowledge_search``) or as ``<toolgroup_id>/<tool name>``
(``builtin::rag/knowledge_search``, as Llama Stack also accepts). When two groups define one bare
name, the group whose identifier sorts first owns it; the qualified form reaches the other. With
``server.auth``, only the groups the caller may use count (another tenant's group never takes a name
from the caller's, nor shows in a miss's list of tools).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from lamina.apis.common import URL, Empty
from lamina.apis.tools import (
    RAG_TOOL_GROUP,
    GetToolGroupRequest,
    GetToolRequest,
    ListToolGroupsResponse,
    ListToolsRequest,
    ListToolsResponse,
    RegisterToolGroupRequest,
    Tool,
    ToolDef,
    ToolGroup,
)
from lamina.errors import BadRequestError, ConflictError, LaminaError, NotFoundError, UpstreamError
from lamina.resources.routing_table import HOT_LIST_MAX_AGE, RoutingTable

log = structlog.get_logger(__name__)

_MAX_LISTED = 25


class ToolGroupsRoutingTable(RoutingTable[ToolGroup]):
    resource_type = "tool_group"
    resource_class = ToolGroup
    api_name = "tool_runtime"
    route = "/v1/toolgroups"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tools: dict[str, list[Tool]] = {}  # toolgroup_id -> its tools (cache)
        # Whether the current caller may use a tool group (set by access control with server.auth): a
        # bare tool name resolves among those only, and a miss lists only their tools.
        self.usable: Callable[[str], Awaitable[bool]] | None = None

    async def provider_register(self, provider: Any, resource: ToolGroup) -> ToolGroup:
        register = getattr(provider, "register_toolgroup", None)
        if callable(register):
            await register(resource)
        if not _tools_depend_on_request(provider):
            self._tools[resource.identifier] = await self._list_provider_tools(provider, resource)
        return resource

    async def provider_unregister(self, provider: Any, resource: ToolGroup) -> None:
        unregister = getattr(provider, "unregister_toolgroup", None)
        if callable(unregister):
            await unregister(resource)

    async def remove(self, identifier: str) -> None:
        await super().remove(identifier)
        self._tools.pop(identifier, None)

    # -- the ToolGroups API --------------------------------------------------------------------

    async def list_tool_groups(self, request: Empty) -> ListToolGroupsResponse:
        return ListToolGroupsResponse(data=await self.list())

    async def get_tool_group(self, request: GetToolGroupRequest) -> ToolGroup:
        return await self.get(request.toolgroup_id)

    async def register_tool_group(
        self, request: RegisterToolGroupRequest, *, replace: bool = False
    ) -> ToolGroup:
        """Register (idempotent for an identical definition); a different one is a 409 unless ``replace``."""
        provider_id = self.pick_provider(request.provider_id, request.toolgroup_id)
        group = ToolGroup(
            identifier=request.toolgroup_id,
            provider_resource_id=request.toolgroup_id,
            provider_id=provider_id,
            mcp_endpoint=request.mcp_endpoint,
            args=request.args,
        )
        existing = await self.registry.get(self.resource_type, request.toolgroup_id)
        if existing is not None:
            group = group.model_copy(update={"created": existing.get("created", group.created)})
            if existing == group.model_dump(mode="json"):
                return group
            if not replace:
                raise ConflictError(
                    f"tool group '{request.toolgroup_id}' is already registered differently (provider "
                    f"'{existing.get('provider_id')}', args {existing.get('args')}); DELETE "
                    f"/v1/toolgroups/{request.toolgroup_id} first to change it",
                    param="toolgroup_id",
                )
        return await self.add(group)

    async def unregister_toolgroup(self, request: GetToolGroupRequest) -> None:
        await self.remove(request.toolgroup_id)

    async def list_tools(self, request: ListToolsRequest) -> ListToolsResponse:
        if request.toolgroup_id:
            return ListToolsResponse(data=await self.tools_of(await self._group_of(request.toolgroup_id)))
        out: list[Tool] = []
        for group in await self.list():
            try:
                out.extend(await self.tools_of(group))
            except LaminaError as exc:
                if exc.status in (401, 403):  # the caller lacks a group's credentials: say so, as LS does
                    raise
                # one broken server must not hide every other tool
                log.warning("tool_group_tools_not_listed", toolgroup_id=group.identifier, error=exc.message)
        return ListToolsResponse(data=out)

    async def endpoint_tools(self, mcp_endpoint: URL, toolgroup_id: str | None = None) -> list[Tool]:
        """The tools of an MCP server named by URL, registered or not (list-tools' ``mcp_endpoint``)."""
        able = [pid for pid, p in sorted(self.providers.items()) if _is_mcp(p)]
        if not able:
            configured = ", ".join(sorted(self.providers)) or "none"
            raise BadRequestError(
                f"mcp_endpoint: listing the tools of an MCP server needs a {MCP_PROVIDER_TYPE} provider; "
                f"add one under providers.tool_runtime (configured: {configured})",
                param="mcp_endpoint",
            )
        group = ToolGroup(
            identifier=toolgroup_id or mcp_endpoint.uri,
            provider_resource_id=toolgroup_id or mcp_endpoint.uri,
            provider_id=able[0],
            mcp_endpoint=mcp_endpoint,
        )
        return await self._list_provider_tools(self.providers[able[0]], group)

    async def _group_of(self, toolgroup_id: str) -> ToolGroup:
        """The group ``toolgroup_id`` names: itself when registered (ids may contain ``/``), else the
        group of a qualified tool name ``<group>/<tool>`` (as Llama Stack accepts)."""
        try:
            return await self.get(toolgroup_id)
        except NotFoundError:
            head = toolgroup_id.split("/", 1)[0]
            if not head or head == toolgroup_id:
                raise
        try:
            return await self.get(head)
        except NotFoundError:
            return await self.get(toolgroup_id)  # the error names what the client asked for

    async def get_tool(self, request: GetToolRequest) -> Tool:
        tool, _group = await self.resolve_tool(request.tool_name)
        return tool

    # -- tools ---------------------------------------------------------------------------------

    async def tools_of(self, group: ToolGroup) -> list[Tool]:
        """The group's tools, from the cache or its provider."""
        cached = self._tools.get(group.identifier)
        if cached is not None:
            return cached
        _, provider = await self.resolve(group.identifier)
        tools = await self._list_provider_tools(provider, group)
        if not _tools_depend_on_request(provider):
            self._tools[group.identifier] = tools
        return tools

    async def _list_provider_tools(self, provider: Any, group: ToolGroup) -> list[Tool]:
        try:
            defs = await provider.list_runtime_tools(group)
        except LaminaError:
            raise
        except Exception as exc:
            raise UpstreamError(
                group.provider_id,
                f"listing the tools of tool group '{group.identifier}' failed: {type(exc).__name__}: {exc}",
            ) from exc
        tools = []
        for d in defs or []:
            d = d if isinstance(d, ToolDef) else ToolDef.model_validate(d)
            tools.append(
                Tool(
                    identifier=d.name,
                    provider_resource_id=d.name,
                    provider_id=group.provider_id,
                    toolgroup_id=group.identifier,
                    description=d.description or "",
                    parameters=d.parameters or [],
                    metadata=d.metadata,
                )
            )
        return tools

    async def resolve_tool(self, tool_name: str) -> tuple[Tool, ToolGroup]:
        """The tool named ``tool_name`` (bare or ``group/tool``) and its group; 404 listing the tools."""
        if "/" in tool_name:
            group_id, _, bare = tool_name.rpartition("/")
            doc = await self.registry.get(self.resource_type, group_id)
            if doc is not None:
                group = ToolGroup.model_validate(doc)
                for tool in await self.tools_of(group):
                    if tool.identifier == bare:
                        return tool, group
        groups = await self.list(HOT_LIST_MAX_AGE)
        if self.usable is not None:
            groups = [g for g in groups if await self.usable(g.identifier)]
        refused: LaminaError | None = None
        for group in groups:  # sorted by identifier: the first group defining the name owns it
            try:
                tools = await self.tools_of(group)
            except LaminaError as exc:
                log.warning("tool_group_tools_not_listed", toolgroup_id=group.identifier, error=exc.message)
                if exc.status in (401, 403) and refused is None:
                    refused = exc
                continue
            for tool in tools:
                if tool.identifier == tool_name:
                    return tool, group
        if refused is not None:  # the tool may be behind credentials the caller did not send
            raise refused
        known = [
            f"{t.identifier} ({g.identifier})" for g in groups for t in self._tools.get(g.identifier, [])
        ]
        listed = ", ".join(known[:_MAX_LISTED]) + (
            f" and {len(known) - _MAX_LISTED} more" if len(known) > _MAX_LISTED else ""
        )
        raise NotFoundError(
            f"tool '{tool_name}' is not provided by any registered tool group. Tools: {listed or 'none'}. "
            f"Register the tool group that provides it with POST /v1/toolgroups.",
            param="tool_name",
        )

    async def rag_provider(self) -> Any:
        """The provider serving the RAG tool: ``builtin::rag``'s, else the one provider able to."""
        group = await self.registry.get(self.resource_type, RAG_TOOL_GROUP)
        if group is not None:
            provider = self.providers.get(group.get("provider_id"))
            if _serves_rag(provider):
                return provider
        able = [pid for pid, p in sorted(self.providers.items()) if _serves_rag(p)]
        if able:
            return self.providers[able[0]]
        raise BadRequestError(
            f"no configured tool_runtime provider serves the RAG tool ({RAG_TOOL_GROUP}); add one under "
            f"providers.tool_runtime in the run config (for example inline::rag-runtime). Configured "
            f"tool_runtime providers: {', '.join(sorted(self.providers)) or 'none'}."
        )


MCP_PROVIDER_TYPE = "remote::model-context-protocol"


def _is_mcp(provider: Any) -> bool:
    return getattr(getattr(provider, "context", None), "provider_type", None) == MCP_PROVIDER_TYPE


def _tools_depend_on_request(provider: Any) -> bool:
    return getattr(provider, "tools_depend_on_request", False) is True


def _serves_rag(provider: Any) -> bool:
    return (
        provider is not None
        and callable(getattr(provider, "insert", None))
        and callable(getattr(provider, "query", None))
    )
