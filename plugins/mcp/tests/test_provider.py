"""The remote::model-context-protocol provider in process, against real MCP servers (``mcp_test_server``)
started on 127.0.0.1: header matching, explicit headers, concurrent calls on one session, uncached
sessions."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from lamina.apis.common import URL
from lamina.apis.tools import ToolGroup
from lamina.errors import UnauthorizedError
from lamina.providers import ProviderContext
from lamina.request_context import PROVIDER_DATA
from lamina.specs import Api
from lamina.testing.processes import ServerProcess, free_port
from lamina_mcp.config import MCPProviderConfig
from lamina_mcp.provider import MCPToolRuntimeProvider

HERE = Path(__file__).parent
TOKEN = "t0ken"


def _server(log_dir: Path, name: str, *args: str) -> ServerProcess:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-m", "mcp_test_server", "--port", str(port), *args]
    return ServerProcess(argv, port, log_path=log_dir / f"{name}.log", env=env, ready_path="/health")


def _sessions(server: ServerProcess) -> int:
    with urllib.request.urlopen(server.url + "/stats", timeout=5) as resp:
        return json.loads(resp.read())["sessions"]


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with _server(tmp_path_factory.mktemp("mcp-provider"), "auth", "--token", TOKEN) as server:
        yield server


def _group(uri: str) -> ToolGroup:
    return ToolGroup(
        identifier="mcp::t", provider_resource_id="mcp::t", provider_id="mcp", mcp_endpoint=URL(uri=uri)
    )


@pytest.fixture
async def make_provider(tmp_path: Path) -> AsyncIterator:
    made: list[MCPToolRuntimeProvider] = []

    def make(**config) -> MCPToolRuntimeProvider:
        context = ProviderContext(Api.tool_runtime, "mcp", "remote::model-context-protocol", tmp_path)
        made.append(MCPToolRuntimeProvider(MCPProviderConfig(**config), context))
        return made[-1]

    yield make
    for provider in made:
        await provider.shutdown()


def _with_headers(mcp_headers: object) -> None:
    PROVIDER_DATA.set({"mcp_headers": mcp_headers})


async def test_mcp_headers_match_by_host_port_and_path(auth_server: ServerProcess, make_provider) -> None:
    provider = make_provider()
    uri = auth_server.url + "/mcp"
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    # As Llama Stack: scheme and a trailing slash do not matter; host, port and path do.
    _with_headers({uri.replace("http://", "https://") + "/": bearer})
    assert "echo" in {t.name for t in await provider.list_runtime_tools(_group(uri))}
    _with_headers({auth_server.url + "/other": bearer})
    with pytest.raises(UnauthorizedError, match="mcp_headers"):
        await provider.list_runtime_tools(_group(uri))


async def test_explicit_headers_without_provider_data(auth_server: ServerProcess, make_provider) -> None:
    """What the Responses API's ``mcp`` tool does: its own headers, an unregistered group."""
    PROVIDER_DATA.set(None)
    provider = make_provider()
    group = _group(auth_server.url + "/mcp")
    result = await provider.invoke_tool(
        group, "add", {"a": 2, "b": 3}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert result.content[0].text == "5"
    with pytest.raises(UnauthorizedError):
        await provider.invoke_tool(group, "add", {"a": 2, "b": 3})


async def test_concurrent_calls_share_one_session(auth_server: ServerProcess, make_provider) -> None:
    provider = make_provider()
    group = _group(auth_server.url + "/mcp")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    before = _sessions(auth_server)
    results = await asyncio.gather(
        *(provider.invoke_tool(group, "add", {"a": i, "b": 1}, headers=headers) for i in range(20))
    )
    assert [r.content[0].text for r in results] == [str(i + 1) for i in range(20)]
    assert provider.pool.opened == 1
    assert await asyncio.to_thread(_sessions, auth_server) == before + 1


async def test_idle_zero_opens_a_session_per_call(auth_server: ServerProcess, make_provider) -> None:
    provider = make_provider(session_idle_seconds=0)
    group = _group(auth_server.url + "/mcp")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    before = _sessions(auth_server)
    for _ in range(3):
        assert (await provider.invoke_tool(group, "add", {"a": 1, "b": 1}, headers=headers)).content[
            0
        ].text == "2"
    assert await asyncio.to_thread(_sessions, auth_server) == before + 3


async def test_tool_listings_cached_per_headers_stay_bounded(
    auth_server: ServerProcess, make_provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lamina_mcp.provider._MAX_CACHED_LISTINGS", 3)
    provider = make_provider()
    group = _group(auth_server.url + "/mcp")
    for caller in range(6):
        headers = {"Authorization": f"Bearer {TOKEN}", "X-Caller": str(caller)}
        assert "add" in {t.name for t in await provider.list_runtime_tools(group, headers=headers)}
    assert len(provider._tools) == 3
    assert {dict(k[1])["X-Caller"] for k in provider._tools} == {"3", "4", "5"}, "the newest are kept"
