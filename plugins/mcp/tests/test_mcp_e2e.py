"""remote::model-context-protocol through a real ``lamina run``, driven by llama-stack-client 0.2.12,
against real MCP servers (``mcp_test_server``: the mcp package's MCPServer) started on 127.0.0.1.

Tool groups come from the run config (streamable HTTP at /mcp, SSE at /sse) and from
``client.toolgroups.register``. No model is involved: the Tool Runtime API is called directly.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from llama_stack_client import APIStatusError, LlamaStackClient

from lamina.testing.processes import ServerProcess, free_port, lamina_server

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
TOKEN = "s3cret-token"
LATER_URI = f"http://127.0.0.1:{free_port()}/mcp"


def mcp_server(log_dir: Path, name: str, *args: str) -> ServerProcess:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-m", "mcp_test_server", "--port", str(port), *args]
    return ServerProcess(argv, port, log_path=log_dir / f"{name}.log", env=env, ready_path="/health")


def sessions_opened(server: ServerProcess) -> int:
    with urllib.request.urlopen(server.url + "/stats", timeout=5) as resp:
        return json.loads(resp.read())["sessions"]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    logs = tmp_path_factory.mktemp("mcp-servers")
    started = {
        "http": mcp_server(logs, "http", "--transport", "streamable_http"),
        "sse": mcp_server(logs, "sse", "--transport", "sse"),
        "events": mcp_server(logs, "events", "--transport", "sse", "--sse-path", "/events"),
        "auth": mcp_server(logs, "auth", "--transport", "streamable_http", "--token", TOKEN),
        "auth_sse": mcp_server(logs, "auth_sse", "--transport", "sse", "--token", TOKEN),
        "garbage": mcp_server(logs, "garbage", "--mode", "garbage"),
        "hang": mcp_server(logs, "hang", "--mode", "hang"),
    }
    try:
        for server in started.values():
            server.start()
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def lamina(
    servers: dict[str, ServerProcess], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    run_config = {
        "version": 2,
        "image_name": "mcp-e2e",
        "providers": {
            "tool_runtime": [
                {
                    "provider_id": "model-context-protocol",
                    "provider_type": "remote::model-context-protocol",
                    # Small limits so the timeout tests take seconds; the tools cache is off so each
                    # listing reaches the server (the session reuse test counts sessions, not calls).
                    "config": {"timeout_seconds": 3, "tool_timeout_seconds": 3, "tools_cache_seconds": 0},
                }
            ]
        },
        "tool_groups": [
            {
                "toolgroup_id": "mcp::http",
                "provider_id": "model-context-protocol",
                "mcp_endpoint": {"uri": servers["http"].url + "/mcp"},
            },
            {
                "toolgroup_id": "mcp::sse",
                "provider_id": "model-context-protocol",
                "mcp_endpoint": {"uri": servers["sse"].url + "/sse"},
            },
            # Nothing listens there yet: lamina still starts (registering never contacts the server).
            {
                "toolgroup_id": "mcp::later",
                "provider_id": "model-context-protocol",
                "mcp_endpoint": {"uri": LATER_URI},
            },
            # Needs a token the run config does not have: registering must not need it.
            {
                "toolgroup_id": "mcp::auth",
                "provider_id": "model-context-protocol",
                "mcp_endpoint": {"uri": servers["auth"].url + "/mcp"},
            },
        ],
    }
    with lamina_server(run_config, tmp_path_factory.mktemp("mcp-lamina")) as server:
        yield server


@pytest.fixture(scope="module")
def client(lamina: ServerProcess) -> LlamaStackClient:
    return LlamaStackClient(base_url=lamina.url, max_retries=0, timeout=60)


def auth_headers(uri: str, token: str = TOKEN) -> dict[str, str]:
    data = {"mcp_headers": {uri: {"Authorization": f"Bearer {token}"}}}
    return {"X-LlamaStack-Provider-Data": json.dumps(data)}


def error_of(call: Callable[[], object]) -> tuple[int, str]:
    with pytest.raises(APIStatusError) as info:
        call()
    return info.value.status_code, json.dumps(info.value.body)


def assert_serving(client: LlamaStackClient) -> None:
    result = client.tool_runtime.invoke_tool(tool_name="mcp::http/add", kwargs={"a": 1, "b": 1})
    assert result.content[0].text == "2"


# -- list-tools and invoke over both transports -----------------------------------------------------


@pytest.mark.parametrize("group", ["mcp::http", "mcp::sse"])
def test_list_tools_in_llama_stack_shape(client: LlamaStackClient, group: str) -> None:
    tools = {t.name: t for t in client.tool_runtime.list_tools(tool_group_id=group)}
    assert set(tools) == {"add", "echo", "describe", "picture", "fail", "protocol_fail", "sleep"}
    assert tools["add"].description == "Add two numbers."
    params = {p.name: p for p in tools["echo"].parameters}
    assert params["text"].parameter_type == "string" and params["text"].required is True
    assert params["repeat"].parameter_type == "integer" and params["repeat"].required is False
    assert params["repeat"].default == 1
    assert [p.parameter_type for p in tools["add"].parameters] == ["number", "number"]
    # Optional parameters have an anyOf schema without a "type": their type is the non-null one.
    params = {p.name: p for p in tools["describe"].parameters}
    assert (params["title"].parameter_type, params["title"].required) == ("string", False)
    assert (params["tags"].parameter_type, params["tags"].required) == ("array", False)
    listed = client.tools.list(toolgroup_id=group)
    assert {t.identifier for t in listed} == set(tools)
    assert {t.toolgroup_id for t in listed} == {group}


@pytest.mark.parametrize("group", ["mcp::http", "mcp::sse"])
def test_invoke_returns_the_tool_s_content(client: LlamaStackClient, group: str) -> None:
    result = client.tool_runtime.invoke_tool(tool_name=f"{group}/add", kwargs={"a": 2, "b": 40.5})
    assert [c.text for c in result.content] == ["42.5"]
    assert result.error_message is None
    result = client.tool_runtime.invoke_tool(tool_name=f"{group}/echo", kwargs={"text": "ab", "repeat": 2})
    assert result.content[0].text.startswith("abab (pid ")
    result = client.tool_runtime.invoke_tool(
        tool_name=f"{group}/describe", kwargs={"name": "Ada", "title": "Dr", "tags": ["math", "code"]}
    )
    assert result.content[0].text == "Dr Ada #math #code"
    picture = client.tool_runtime.invoke_tool(tool_name=f"{group}/picture", kwargs={})
    assert picture.content[0].type == "text" and picture.content[0].text == "a tiny picture"
    assert picture.content[1].type == "image"
    assert picture.content[1].image.data.startswith("iVBORw0KGgo")  # base64 of a PNG


@pytest.mark.parametrize("group", ["mcp::http", "mcp::sse"])
def test_a_tool_that_raises_is_an_error_message(client: LlamaStackClient, group: str) -> None:
    result = client.tool_runtime.invoke_tool(tool_name=f"{group}/fail", kwargs={"reason": "x"})
    assert result.error_code == 1
    assert "fail" in result.error_message
    assert_serving(client)


def test_registered_over_the_api_with_transport_fallback(
    client: LlamaStackClient, servers: dict[str, ServerProcess]
) -> None:
    """An SSE server at /events (not /sse): streamable HTTP is refused (405), so SSE is used."""
    uri = servers["events"].url + "/events"
    client.toolgroups.register(
        toolgroup_id="mcp::events", provider_id="model-context-protocol", mcp_endpoint={"uri": uri}
    )
    group = client.toolgroups.get("mcp::events")
    assert group.mcp_endpoint.uri == uri
    tools = client.tool_runtime.list_tools(tool_group_id="mcp::events")
    assert "add" in {t.name for t in tools}
    result = client.tool_runtime.invoke_tool(tool_name="mcp::events/add", kwargs={"a": 1, "b": 2})
    assert result.content[0].text == "3"
    client.toolgroups.unregister("mcp::events")


def test_bad_endpoint_is_a_400(client: LlamaStackClient) -> None:
    status, body = error_of(
        lambda: client.toolgroups.register(
            toolgroup_id="mcp::bad", provider_id="model-context-protocol", mcp_endpoint={"uri": "ftp://x/mcp"}
        )
    )
    assert status == 400 and "mcp_endpoint.uri" in body
    status, body = error_of(
        lambda: client.toolgroups.register(toolgroup_id="mcp::none", provider_id="model-context-protocol")
    )
    assert status == 400 and "mcp_endpoint" in body


# -- per-request headers ----------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["auth", "auth_sse"])
def test_mcp_headers_reach_the_server(
    client: LlamaStackClient, servers: dict[str, ServerProcess], which: str
) -> None:
    uri = servers[which].url + ("/mcp" if which == "auth" else "/sse")
    group = f"mcp::{which}-test"
    client.toolgroups.register(
        toolgroup_id=group, provider_id="model-context-protocol", mcp_endpoint={"uri": uri}
    )
    try:
        status, body = error_of(lambda: client.tool_runtime.list_tools(tool_group_id=group))
        assert status == 401, body
        assert group in body and uri in body and "mcp_headers" in body
        status, body = error_of(
            lambda: client.tool_runtime.list_tools(
                tool_group_id=group, extra_headers=auth_headers(uri, "wrong")
            )
        )
        assert status == 401, body
        headers = auth_headers(uri)
        tools = client.tool_runtime.list_tools(tool_group_id=group, extra_headers=headers)
        assert "echo" in {t.name for t in tools}
        result = client.tool_runtime.invoke_tool(
            tool_name=f"{group}/echo", kwargs={"text": "hi"}, extra_headers=headers
        )
        assert result.content[0].text.startswith("hi (pid ")
        # A caller without the header gets a 401 for the tool, even once another caller listed it.
        status, body = error_of(
            lambda: client.tool_runtime.invoke_tool(tool_name=f"{group}/echo", kwargs={"text": "hi"})
        )
        assert status == 401, body
    finally:
        client.toolgroups.unregister(group)


def test_run_config_group_needing_auth_registered_without_it(
    client: LlamaStackClient, servers: dict[str, ServerProcess]
) -> None:
    uri = servers["auth"].url + "/mcp"
    assert client.toolgroups.get("mcp::auth").mcp_endpoint.uri == uri
    status, body = error_of(
        lambda: client.tool_runtime.invoke_tool(tool_name="mcp::auth/echo", kwargs={"text": "x"})
    )
    assert status == 401 and "mcp::auth" in body, body
    result = client.tool_runtime.invoke_tool(
        tool_name="mcp::auth/echo", kwargs={"text": "x"}, extra_headers=auth_headers(uri)
    )
    assert result.content[0].text == f"x (pid {servers['auth'].pid})"
    # A bare name the caller may not list behind mcp::auth (sorted first) resolves to the next group.
    result = client.tool_runtime.invoke_tool(tool_name="echo", kwargs={"text": "x"})
    assert result.content[0].text == f"x (pid {servers['http'].pid})"
    # A name no group the caller can list has: the refusal says which credentials are missing.
    status, body = error_of(lambda: client.tool_runtime.invoke_tool(tool_name="no_such_tool", kwargs={}))
    assert status == 401 and "mcp_headers" in body, body


def test_malformed_mcp_headers_are_a_400_naming_them(
    client: LlamaStackClient, servers: dict[str, ServerProcess]
) -> None:
    """The server validates the header with the provider's MCPProviderDataValidator before any tool
    runs: headers that are not a map of header names to strings are a 400 naming the field."""
    uri = servers["auth"].url + "/mcp"
    bad = {"X-LlamaStack-Provider-Data": json.dumps({"mcp_headers": {uri: "Bearer x"}})}
    status, body = error_of(
        lambda: client.tool_runtime.invoke_tool(
            tool_name="mcp::auth/echo", kwargs={"text": "x"}, extra_headers=bad
        )
    )
    assert status == 400 and "X-LlamaStack-Provider-Data.mcp_headers" in body, body


def test_listing_every_tool_when_a_group_refuses_the_caller_is_a_401_naming_it(
    client: LlamaStackClient, servers: dict[str, ServerProcess]
) -> None:
    """As Llama Stack 0.2.12 (its tests/integration/tool_runtime/test_mcp.py expects "Unauthorized"
    from ``tools.list()``): a group whose server refuses the caller's credentials is not skipped
    silently. A group whose server is down (mcp::later) is skipped with a warning: one broken server
    must not hide every other tool."""
    uri = servers["auth"].url + "/mcp"
    for listing in (client.tools.list, client.tool_runtime.list_tools):
        status, body = error_of(listing)
        assert status == 401, body
        assert "mcp::auth" in body and "Unauthorized" in body and "mcp_headers" in body, body
    listed = client.tools.list(extra_headers=auth_headers(uri))
    groups = {t.toolgroup_id for t in listed}
    assert {"mcp::http", "mcp::sse", "mcp::auth"} <= groups and "mcp::later" not in groups, groups
    runtime = client.tool_runtime.list_tools(extra_headers=auth_headers(uri))
    assert {t.name for t in runtime} >= {"add", "echo"}
    assert_serving(client)


@pytest.mark.parametrize(("name", "path"), [("http", "/mcp"), ("sse", "/sse")])
def test_list_tools_of_an_unregistered_mcp_endpoint(
    client: LlamaStackClient, servers: dict[str, ServerProcess], name: str, path: str
) -> None:
    """``mcp_endpoint`` on list-tools lists a server's tools without registering a group (as Llama
    Stack's MCP provider does)."""
    uri = servers[name].url + path
    groups_before = {g.identifier for g in client.toolgroups.list()}
    tools = client.tool_runtime.list_tools(mcp_endpoint={"uri": uri})
    names = [t.name for t in tools]
    assert {"add", "echo", "sleep"} <= set(names) and len(names) == len(set(names))  # this server's only
    assert {t.metadata["endpoint"] for t in tools} == {uri}
    add = next(t for t in tools if t.name == "add")
    assert [p.name for p in add.parameters] == ["a", "b"]
    assert {g.identifier for g in client.toolgroups.list()} == groups_before  # nothing registered
    # a plain URL in the query works too (mcp_endpoint=<url>, not only mcp_endpoint[uri]=<url>)
    plain = httpx.get(f"{client.base_url}/v1/tool-runtime/list-tools", params={"mcp_endpoint": uri})
    assert plain.status_code == 200 and {t["metadata"]["endpoint"] for t in plain.json()["data"]} == {uri}


def test_list_tools_of_an_mcp_endpoint_needing_auth_or_not_http(
    client: LlamaStackClient, servers: dict[str, ServerProcess]
) -> None:
    uri = servers["auth"].url + "/mcp"
    status, body = error_of(lambda: client.tool_runtime.list_tools(mcp_endpoint={"uri": uri}))
    assert status == 401 and uri in body and "mcp_headers" in body, body
    tools = client.tool_runtime.list_tools(mcp_endpoint={"uri": uri}, extra_headers=auth_headers(uri))
    assert "echo" in {t.name for t in tools}
    status, body = error_of(lambda: client.tool_runtime.list_tools(mcp_endpoint={"uri": "ftp://x/mcp"}))
    assert status == 400 and "mcp_endpoint" in body, body
    down = f"http://127.0.0.1:{free_port()}/mcp"
    status, body = error_of(lambda: client.tool_runtime.list_tools(mcp_endpoint={"uri": down}))
    assert status == 502 and down in body, body
    assert_serving(client)


# -- faults -----------------------------------------------------------------------------------------


def _register(client: LlamaStackClient, group: str, uri: str) -> None:
    client.toolgroups.register(
        toolgroup_id=group, provider_id="model-context-protocol", mcp_endpoint={"uri": uri}
    )


def test_unreachable_server_is_a_502_naming_it(
    client: LlamaStackClient, servers: dict[str, ServerProcess]
) -> None:
    uri = f"http://127.0.0.1:{free_port()}/mcp"
    _register(client, "mcp::down", uri)
    try:
        status, body = error_of(lambda: client.tool_runtime.list_tools(tool_group_id="mcp::down"))
        assert status == 502, body
        assert "mcp::down" in body and uri in body and "unreachable" in body
        status, body = error_of(lambda: client.tool_runtime.invoke_tool(tool_name="mcp::down/add", kwargs={}))
        assert status == 502 and "mcp::down" in body
        assert_serving(client)
        # A healthy group's tools are still listed with every tool (the broken one is skipped); the
        # caller sends mcp::auth's token (a group refusing the caller is a 401, not skipped).
        listed = client.tools.list(extra_headers=auth_headers(servers["auth"].url + "/mcp"))
        assert "mcp::http" in {t.toolgroup_id for t in listed}
    finally:
        client.toolgroups.unregister("mcp::down")


def test_run_config_group_whose_server_is_down_at_start(client: LlamaStackClient) -> None:
    assert client.toolgroups.get("mcp::later").mcp_endpoint.uri == LATER_URI
    status, body = error_of(lambda: client.tool_runtime.list_tools(tool_group_id="mcp::later"))
    assert status == 502 and "mcp::later" in body and LATER_URI in body, body
    assert_serving(client)


@pytest.mark.parametrize("path", ["/mcp", "/sse"])
def test_server_that_never_answers_is_a_504(
    client: LlamaStackClient, servers: dict[str, ServerProcess], path: str
) -> None:
    uri = servers["hang"].url + path
    _register(client, "mcp::hang", uri)
    try:
        started = time.monotonic()
        status, body = error_of(lambda: client.tool_runtime.list_tools(tool_group_id="mcp::hang"))
        assert status == 504, body
        assert "mcp::hang" in body and uri in body
        assert time.monotonic() - started < 30  # the configured 3 s, not the client's 60 s
        assert_serving(client)
        # The failure is remembered for a few seconds: every bare tool name resolved meanwhile (which
        # lists every group) does not wait for the hung server again.
        tried = sessions_opened(servers["hang"])
        status, body = error_of(lambda: client.tool_runtime.list_tools(tool_group_id="mcp::hang"))
        assert status == 504 and "mcp::hang" in body, body
        assert (
            client.tool_runtime.invoke_tool(tool_name="add", kwargs={"a": 1, "b": 2}).content[0].text == "3"
        )
        assert sessions_opened(servers["hang"]) == tried, "the hung server was not tried again"
    finally:
        client.toolgroups.unregister("mcp::hang")


@pytest.mark.parametrize("path", ["/mcp", "/sse"])
def test_server_that_is_not_mcp_is_a_502(
    client: LlamaStackClient, servers: dict[str, ServerProcess], path: str
) -> None:
    uri = servers["garbage"].url + path
    _register(client, "mcp::garbage", uri)
    try:
        status, body = error_of(lambda: client.tool_runtime.list_tools(tool_group_id="mcp::garbage"))
        assert status == 502, body
        assert "mcp::garbage" in body and uri in body
        assert_serving(client)
    finally:
        client.toolgroups.unregister("mcp::garbage")


@pytest.mark.parametrize("group", ["mcp::http", "mcp::sse"])
def test_protocol_error_from_a_tool_is_a_502(client: LlamaStackClient, group: str) -> None:
    status, body = error_of(
        lambda: client.tool_runtime.invoke_tool(tool_name=f"{group}/protocol_fail", kwargs={})
    )
    assert status == 502, body
    assert group in body and "internal failure on purpose" in body
    assert_serving(client)


@pytest.mark.parametrize("group", ["mcp::http", "mcp::sse"])
def test_tool_slower_than_the_limit_is_a_504(client: LlamaStackClient, group: str) -> None:
    status, body = error_of(
        lambda: client.tool_runtime.invoke_tool(tool_name=f"{group}/sleep", kwargs={"seconds": 20})
    )
    assert status == 504, body
    assert group in body and "tool_timeout_seconds" in body
    result = client.tool_runtime.invoke_tool(tool_name=f"{group}/sleep", kwargs={"seconds": 0.1})
    assert result.content[0].text == "slept 0.1s"


# -- sessions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("group", "which"), [("mcp::http", "http"), ("mcp::sse", "sse")])
def test_sessions_are_reused_and_a_restart_is_survived(
    client: LlamaStackClient, servers: dict[str, ServerProcess], group: str, which: str
) -> None:
    server = servers[which]
    client.tool_runtime.invoke_tool(tool_name=f"{group}/add", kwargs={"a": 1, "b": 1})
    before = sessions_opened(server)
    for _ in range(3):
        client.tool_runtime.list_tools(tool_group_id=group)
        client.tool_runtime.invoke_tool(tool_name=f"{group}/add", kwargs={"a": 1, "b": 1})
    assert sessions_opened(server) == before, "every call reused the open session"

    old_pid = server.pid
    server.restart()
    result = client.tool_runtime.invoke_tool(tool_name=f"{group}/echo", kwargs={"text": "again"})
    assert result.content[0].text == f"again (pid {server.pid})" and server.pid != old_pid
    assert sessions_opened(server) == 1, "the stale session was replaced by one new session"
