"""The tool groups routing table and the tool runtime router, in process, with fake providers."""

from __future__ import annotations

from typing import Any

import pytest

from lamina.apis.common import Empty
from lamina.apis.tools import (
    GetToolGroupRequest,
    GetToolRequest,
    InsertDocumentsRequest,
    InvokeToolRequest,
    ListRuntimeToolsRequest,
    ListToolsRequest,
    RAGQueryRequest,
    RAGQueryResult,
    RegisterToolGroupRequest,
    ToolDef,
    ToolGroup,
    ToolInvocationResult,
    ToolParameter,
)
from lamina.errors import BadRequestError, ConflictError, NotFoundError, UnauthorizedError, UpstreamError
from lamina.plugins import PluginManager
from lamina.resources.registry import ResourceRegistry
from lamina.resources.tool_groups import ToolGroupsRoutingTable
from lamina.routers.tool_runtime import ToolRuntimeRouter

ADD = ToolDef(
    name="add",
    description="Add two integers.",
    parameters=[
        ToolParameter(name="a", parameter_type="integer", description="first"),
        ToolParameter(name="b", parameter_type="integer", description="second"),
        ToolParameter(name="note", parameter_type="string", description="why", required=False),
    ],
)
ECHO = ToolDef(
    name="echo",
    parameters=[
        ToolParameter(name="text", parameter_type="string", description="what"),
        ToolParameter(name="times", parameter_type="integer", description="how often", default=1),
    ],
)


class FakeTools:
    def __init__(self, tools: list[ToolDef], *, rag: bool = False) -> None:
        self.tools = tools
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.listed = 0
        self.fail_listing = False
        if rag:
            self.insert = self._insert
            self.query = self._query
        self.inserted: list[InsertDocumentsRequest] = []

    async def register_toolgroup(self, group: ToolGroup) -> None:
        if (group.args or {}).get("refuse"):
            raise BadRequestError("refused by the provider", param="args.refuse")

    async def list_runtime_tools(self, group: ToolGroup) -> list[ToolDef]:
        self.listed += 1
        if self.fail_listing:
            raise RuntimeError("backend down")
        return self.tools

    async def invoke_tool(self, group: ToolGroup, tool_name: str, kwargs: dict[str, Any]) -> Any:
        self.calls.append((group.identifier, tool_name, kwargs))
        if tool_name == "echo" and kwargs.get("text") == "boom":
            raise RuntimeError("exploded")
        if tool_name == "add":
            return {"content": str(kwargs["a"] + kwargs["b"])}
        return ToolInvocationResult(content=kwargs["text"] * kwargs.get("times", 1))

    async def _insert(self, request: InsertDocumentsRequest) -> None:
        self.inserted.append(request)

    async def _query(self, request: RAGQueryRequest) -> RAGQueryResult:
        return RAGQueryResult(content="found", metadata={"by": id(self)})


def make_table(registry: ResourceRegistry, providers: dict[str, Any]) -> ToolGroupsRoutingTable:
    return ToolGroupsRoutingTable(
        registry, providers, PluginManager(strict=True, allow=(), deny=(), trace=False)
    )


@pytest.fixture
def providers() -> dict[str, FakeTools]:
    return {"math": FakeTools([ADD, ECHO]), "more": FakeTools([ADD])}


@pytest.fixture
async def table(registry: ResourceRegistry, providers: dict[str, FakeTools]) -> ToolGroupsRoutingTable:
    t = make_table(registry, providers)
    await t.register_tool_group(RegisterToolGroupRequest(toolgroup_id="calc", provider_id="math"))
    await t.register_tool_group(
        RegisterToolGroupRequest(toolgroup_id="zz-more", provider_id="more", args={"k": 1})
    )
    return t


async def test_register_list_get_and_unregister(table: ToolGroupsRoutingTable) -> None:
    groups = (await table.list_tool_groups(Empty())).data
    assert [(g.identifier, g.provider_id, g.type) for g in groups] == [
        ("calc", "math", "tool_group"),
        ("zz-more", "more", "tool_group"),
    ]
    assert (await table.get_tool_group(GetToolGroupRequest(toolgroup_id="zz-more"))).args == {"k": 1}
    await table.unregister_toolgroup(GetToolGroupRequest(toolgroup_id="zz-more"))
    with pytest.raises(NotFoundError, match=r"tool_group 'zz-more' is not registered\. Registered: calc"):
        await table.get_tool_group(GetToolGroupRequest(toolgroup_id="zz-more"))


async def test_registration_is_idempotent_and_a_different_one_conflicts(
    table: ToolGroupsRoutingTable,
) -> None:
    same = RegisterToolGroupRequest(toolgroup_id="calc", provider_id="math")
    assert (await table.register_tool_group(same)).identifier == "calc"
    changed = RegisterToolGroupRequest(toolgroup_id="calc", provider_id="math", args={"x": 1})
    with pytest.raises(ConflictError, match="already registered differently"):
        await table.register_tool_group(changed)
    assert (await table.register_tool_group(changed, replace=True)).args == {"x": 1}


async def test_provider_must_be_named_when_several_and_may_refuse(table: ToolGroupsRoutingTable) -> None:
    with pytest.raises(BadRequestError, match="several tool_runtime providers") as exc:
        await table.register_tool_group(RegisterToolGroupRequest(toolgroup_id="x"))
    assert exc.value.param == "provider_id"
    refused = RegisterToolGroupRequest(toolgroup_id="r", provider_id="math", args={"refuse": True})
    with pytest.raises(BadRequestError, match="refused by the provider"):
        await table.register_tool_group(refused)
    assert await table.registry.get("tool_group", "r") is None, "nothing is stored"


async def test_groups_persist_and_tools_are_listed_again_lazily(
    table: ToolGroupsRoutingTable, registry: ResourceRegistry, providers: dict[str, FakeTools]
) -> None:
    restarted = make_table(registry, providers)
    before = providers["math"].listed
    tools = (await restarted.list_tools(ListToolsRequest(toolgroup_id="calc"))).data
    assert [t.identifier for t in tools] == ["add", "echo"]
    assert providers["math"].listed == before + 1
    await restarted.list_tools(ListToolsRequest(toolgroup_id="calc"))
    assert providers["math"].listed == before + 1, "cached"


async def test_tools_of_every_group_and_of_one(table: ToolGroupsRoutingTable) -> None:
    every = (await table.list_tools(ListToolsRequest())).data
    assert [(t.toolgroup_id, t.identifier) for t in every] == [
        ("calc", "add"),
        ("calc", "echo"),
        ("zz-more", "add"),
    ]
    [tool] = (await table.list_tools(ListToolsRequest(toolgroup_id="zz-more"))).data
    assert (tool.provider_id, tool.type, tool.description) == ("more", "tool", "Add two integers.")
    assert [
        t.identifier for t in (await table.list_tools(ListToolsRequest(toolgroup_id="calc/add"))).data
    ] == [
        "add",
        "echo",
    ]
    with pytest.raises(NotFoundError, match="tool_group 'nope'"):
        await table.list_tools(ListToolsRequest(toolgroup_id="nope"))
    with pytest.raises(NotFoundError, match="tool_group 'nope/add'"):
        await table.list_tools(ListToolsRequest(toolgroup_id="nope/add"))


async def test_a_group_whose_id_has_a_slash_lists_its_tools(table: ToolGroupsRoutingTable) -> None:
    """`GET /v1/tools?toolgroup_id=team/calc` once looked up group 'team' (a 404): whole id first."""
    await table.register_tool_group(RegisterToolGroupRequest(toolgroup_id="team/calc", provider_id="more"))
    tools = (await table.list_tools(ListToolsRequest(toolgroup_id="team/calc"))).data
    assert [(t.toolgroup_id, t.identifier) for t in tools] == [("team/calc", "add")]


async def test_a_broken_provider_hides_only_its_own_tools(
    registry: ResourceRegistry, providers: dict[str, FakeTools], table: ToolGroupsRoutingTable
) -> None:
    restarted = make_table(registry, providers)
    providers["more"].fail_listing = True
    every = (await restarted.list_tools(ListToolsRequest())).data
    assert [t.toolgroup_id for t in every] == ["calc", "calc"]
    with pytest.raises(UpstreamError, match="listing the tools of tool group 'zz-more' failed"):
        await restarted.list_tools(ListToolsRequest(toolgroup_id="zz-more"))


async def test_get_tool_bare_and_qualified(table: ToolGroupsRoutingTable) -> None:
    assert (await table.get_tool(GetToolRequest(tool_name="add"))).toolgroup_id == "calc", "first group wins"
    assert (await table.get_tool(GetToolRequest(tool_name="zz-more/add"))).toolgroup_id == "zz-more"
    with pytest.raises(
        NotFoundError, match=r"tool 'mul' is not provided .* Tools: add \(calc\), echo \(calc\)"
    ):
        await table.get_tool(GetToolRequest(tool_name="mul"))


async def test_invoke_routes_by_tool_name(
    table: ToolGroupsRoutingTable, providers: dict[str, FakeTools]
) -> None:
    router = ToolRuntimeRouter(table)
    result = await router.invoke_tool(InvokeToolRequest(tool_name="add", kwargs={"a": 2, "b": 3}))
    assert result.content == "5"
    assert providers["math"].calls[-1] == ("calc", "add", {"a": 2, "b": 3})
    await router.invoke_tool(
        InvokeToolRequest(tool_name="zz-more/add", kwargs={"a": 1, "b": 1, "extra": "ok"})
    )
    assert providers["more"].calls[-1] == ("zz-more", "add", {"a": 1, "b": 1, "extra": "ok"})
    result = await router.invoke_tool(InvokeToolRequest(tool_name="echo", kwargs={"text": "hi"}))
    assert result.content == "hi", "a parameter with a default may be left out"


@pytest.mark.parametrize(
    ("tool", "kwargs", "field", "message"),
    [
        ("add", {"a": 1}, "kwargs.b", "missing; tool 'add' requires parameter 'b'"),
        ("add", {"a": 1, "b": "2"}, "kwargs.b", "expects a integer, got str"),
        ("add", {"a": True, "b": 2}, "kwargs.a", "expects a integer, got bool"),
        ("add", {"a": 1, "b": 2, "note": 5}, "kwargs.note", "expects a string"),
        ("echo", {"text": None}, "kwargs.text", "missing"),
    ],
)
async def test_kwargs_are_checked_against_the_parameters(
    table: ToolGroupsRoutingTable, tool: str, kwargs: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(BadRequestError, match=message) as exc:
        await ToolRuntimeRouter(table).invoke_tool(InvokeToolRequest(tool_name=tool, kwargs=kwargs))
    assert exc.value.param == field
    assert exc.value.message.startswith(field)


async def test_a_crashing_tool_is_a_502_naming_it(table: ToolGroupsRoutingTable) -> None:
    with pytest.raises(UpstreamError, match="provider 'math': tool 'echo' failed: RuntimeError: exploded"):
        await ToolRuntimeRouter(table).invoke_tool(
            InvokeToolRequest(tool_name="echo", kwargs={"text": "boom"})
        )


async def test_list_runtime_tools_gives_names_and_tool_fields(table: ToolGroupsRoutingTable) -> None:
    defs = (
        await ToolRuntimeRouter(table).list_runtime_tools(ListRuntimeToolsRequest(tool_group_id="calc"))
    ).data
    assert [(d.name, d.identifier, d.toolgroup_id) for d in defs] == [
        ("add", "add", "calc"),
        ("echo", "echo", "calc"),
    ]
    assert [p.name for p in defs[0].parameters] == ["a", "b", "note"]


async def test_rag_goes_to_builtin_rag_s_provider(registry: ResourceRegistry) -> None:
    providers = {"plain": FakeTools([ECHO])}
    table = make_table(registry, providers)
    router = ToolRuntimeRouter(table)
    insert = InsertDocumentsRequest(vector_db_id="db", documents=[{"document_id": "d", "content": "x"}])
    with pytest.raises(BadRequestError, match="no configured tool_runtime provider serves the RAG tool"):
        await router.rag_tool.insert(insert)
    providers["a-rag"] = FakeTools([], rag=True)
    providers["b-rag"] = FakeTools([], rag=True)
    await router.rag_tool.insert(insert)
    assert providers["a-rag"].inserted == [insert], "without builtin::rag: the first provider able to"
    await table.register_tool_group(
        RegisterToolGroupRequest(toolgroup_id="builtin::rag", provider_id="b-rag")
    )
    result = await router.rag_tool.query(RAGQueryRequest(content="q", vector_db_ids=["db"]))
    assert result.metadata == {"by": id(providers["b-rag"])}


class PerCallerTools(FakeTools):
    """Like an MCP server behind credentials: what it lists depends on the caller (``caller``)."""

    tools_depend_on_request = True

    def __init__(self, tools: list[ToolDef]) -> None:
        super().__init__(tools)
        self.caller: str | None = None

    async def list_runtime_tools(self, group: ToolGroup) -> list[ToolDef]:
        self.listed += 1
        if self.caller is None:
            raise UnauthorizedError("send your credentials", param="X-LlamaStack-Provider-Data.mcp_headers")
        return self.tools


async def test_tools_depending_on_the_request_are_listed_per_request(registry: ResourceRegistry) -> None:
    provider = PerCallerTools([ECHO])
    t = make_table(registry, {"mcp": provider, "math": FakeTools([ADD])})
    # Registering needs neither the server nor the caller's credentials (as in Llama Stack).
    await t.register_tool_group(RegisterToolGroupRequest(toolgroup_id="a-mcp", provider_id="mcp"))
    await t.register_tool_group(RegisterToolGroupRequest(toolgroup_id="calc", provider_id="math"))
    assert provider.listed == 0
    with pytest.raises(UnauthorizedError):
        await t.list_tools(ListToolsRequest(toolgroup_id="a-mcp"))
    provider.caller = "alice"
    assert [x.identifier for x in (await t.list_tools(ListToolsRequest(toolgroup_id="a-mcp"))).data] == [
        "echo"
    ]
    provider.caller = None  # the next caller has no credentials: alice's listing is not reused
    with pytest.raises(UnauthorizedError):
        await t.list_tools(ListToolsRequest(toolgroup_id="a-mcp"))
    router = ToolRuntimeRouter(t)
    # A bare name another group has still resolves; one nobody this caller can list has is the refusal.
    assert (
        await router.invoke_tool(InvokeToolRequest(tool_name="add", kwargs={"a": 1, "b": 2}))
    ).content == "3"
    with pytest.raises(UnauthorizedError, match="send your credentials"):
        await router.invoke_tool(InvokeToolRequest(tool_name="echo", kwargs={"text": "x"}))
