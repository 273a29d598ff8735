"""remote::brave-search and remote::tavily-search through a real ``lamina run`` and llama-stack-client.

The search APIs themselves cannot be reached from here (no network beyond loopback): the upstream is
``fake_search.py``, a local server speaking each API's wire format (auth headers, result shapes, error
bodies), started as its own process on 127.0.0.1.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_stack_client import APIStatusError, BadRequestError, LlamaStackClient

from lamina.testing.processes import ServerProcess, free_port, lamina_server

pytestmark = pytest.mark.e2e
HERE = Path(__file__).parent
TAVILY_TOOL = "web::tavily/web_search"  # a tool name shared by two groups, picked by its group


@pytest.fixture(scope="module")
def search_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    port = free_port()
    argv = [
        sys.executable,
        str(HERE / "fake_search.py"),
        "--port",
        str(port),
        "--keys",
        "server-key,request-key",
    ]
    with ServerProcess(argv, port, log_path=tmp_path_factory.mktemp("search") / "search.log") as server:
        yield server


def _seen(search_api: ServerProcess) -> list[dict]:
    with urllib.request.urlopen(f"{search_api.url}/_seen") as resp:
        return json.load(resp)


@pytest.fixture(scope="module")
def client(search_api: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaStackClient]:
    config = {
        "version": 2,
        "image_name": "websearch-e2e",
        "apis": ["tool_runtime"],
        "providers": {
            "tool_runtime": [
                {
                    "provider_id": "brave-search",
                    "provider_type": "remote::brave-search",
                    "config": {
                        "api_key": "server-key",
                        "max_results": 3,
                        "base_url": f"{search_api.url}/res/v1",
                        "timeout": 1.5,
                    },
                },
                {
                    "provider_id": "tavily-search",
                    "provider_type": "remote::tavily-search",
                    # Llama Stack's sample config: the key from the environment, empty when unset.
                    "config": {
                        "api_key": "${env.TAVILY_SEARCH_API_KEY:=}",
                        "max_results": 2,
                        "base_url": search_api.url,
                        "timeout": 1.5,
                    },
                },
            ]
        },
        "tool_groups": [{"toolgroup_id": "web::tavily", "provider_id": "tavily-search"}],
    }
    with lamina_server(config, tmp_path_factory.mktemp("lamina")) as server:
        yield LlamaStackClient(base_url=server.url, max_retries=0)


def test_builtin_websearch_lists_web_search(client: LlamaStackClient) -> None:
    groups = {g.identifier: g.provider_id for g in client.toolgroups.list()}
    assert groups["builtin::websearch"] == "brave-search"  # the first configured search provider
    assert groups["web::tavily"] == "tavily-search"
    tools = client.tool_runtime.list_tools(tool_group_id="builtin::websearch")
    assert [t.name for t in tools] == ["web_search"]
    assert [p.name for p in tools[0].parameters] == ["query"]


def test_brave_results_in_brave_ranking_with_the_configured_key(
    client: LlamaStackClient, search_api: ServerProcess
) -> None:
    result = client.tool_runtime.invoke_tool(tool_name="web_search", kwargs={"query": "capybara"})
    assert result.error_message is None
    payload = json.loads(result.content)
    assert payload["query"] == "capybara"
    top = payload["top_k"]
    # Brave's mixed ranking (news, web[1], faq), cut to max_results=3; Brave-only fields dropped
    assert [r["type"] for r in top] == ["news", "web", "faq"]
    assert top[1]["title"] == "capybara - result 1" and top[1]["content"] == "About capybara (1)"
    assert "profile" not in top[1]
    assert result.metadata["provider"] == "remote::brave-search" and result.metadata["results"] == top
    last = _seen(search_api)[-1]
    assert last == {"api": "brave", "query": "capybara", "key": "server-key", "count": "3"}


def test_tavily_key_per_request_from_provider_data(
    client: LlamaStackClient, search_api: ServerProcess
) -> None:
    with pytest.raises(BadRequestError) as err:
        client.tool_runtime.invoke_tool(tool_name=TAVILY_TOOL, kwargs={"query": "otters"})
    # no key in the config (TAVILY_SEARCH_API_KEY unset) and none in the request: which header, which key
    assert "X-LlamaStack-Provider-Data" in str(err.value) and "tavily_search_api_key" in str(err.value)
    assert err.value.body["error"]["param"] == "X-LlamaStack-Provider-Data.tavily_search_api_key"

    keyed = LlamaStackClient(
        base_url=str(client.base_url), max_retries=0, provider_data={"tavily_search_api_key": "request-key"}
    )
    result = keyed.tool_runtime.invoke_tool(tool_name=TAVILY_TOOL, kwargs={"query": "otters"})
    payload = json.loads(result.content)
    assert [r["title"] for r in payload["top_k"]] == ["otters - result 0", "otters - result 1"]
    assert payload["top_k"][0]["score"] == 0.9 and payload["top_k"][0]["url"] == "https://example.com/0"
    assert _seen(search_api)[-1] == {
        "api": "tavily",
        "query": "otters",
        "key": "request-key",
        "max_results": 2,
    }


def test_a_key_of_the_wrong_type_in_provider_data_is_a_400_naming_it(client: LlamaStackClient) -> None:
    bad = LlamaStackClient(
        base_url=str(client.base_url), max_retries=0, provider_data={"tavily_search_api_key": 7}
    )
    with pytest.raises(BadRequestError) as err:
        bad.tool_runtime.invoke_tool(tool_name=TAVILY_TOOL, kwargs={"query": "otters"})
    # validated by the server with the provider's model before the tool runs
    assert err.value.body["error"]["param"] == "X-LlamaStack-Provider-Data.tavily_search_api_key"
    assert "tavily-search" in str(err.value) and "string" in str(err.value)


@pytest.mark.parametrize("query", ["", "   ", None])
def test_a_missing_query_is_a_400_naming_kwargs_query(client: LlamaStackClient, query: object) -> None:
    kwargs = {} if query is None else {"query": query}
    with pytest.raises(BadRequestError) as err:
        client.tool_runtime.invoke_tool(tool_name="web_search", kwargs=kwargs)
    assert err.value.body["error"]["param"] == "kwargs.query"


@pytest.mark.parametrize(
    ("provider_data", "query", "status", "words"),
    [
        ({"tavily_search_api_key": "stolen-key"}, "otters", 502, "refused our credentials (HTTP 401)"),
        ({"tavily_search_api_key": "request-key"}, "boom", 502, "answered HTTP 500"),
        ({"tavily_search_api_key": "request-key"}, "garbage", 502, "without a results list"),
        ({"tavily_search_api_key": "request-key"}, "slow", 504, "did not answer within the timeout"),
    ],
)
def test_upstream_failures_are_502_or_504_naming_the_provider(
    client: LlamaStackClient, provider_data: dict, query: str, status: int, words: str
) -> None:
    keyed = LlamaStackClient(base_url=str(client.base_url), max_retries=0, provider_data=provider_data)
    with pytest.raises(APIStatusError) as err:
        keyed.tool_runtime.invoke_tool(tool_name=TAVILY_TOOL, kwargs={"query": query})
    assert err.value.status_code == status
    assert "tavily-search" in str(err.value) and words in str(err.value)
    # and the server goes on serving
    assert json.loads(client.tool_runtime.invoke_tool(tool_name="web_search", kwargs={"query": "ok"}).content)


def test_brave_failures_name_brave(client: LlamaStackClient) -> None:
    with pytest.raises(APIStatusError) as err:
        client.tool_runtime.invoke_tool(tool_name="web_search", kwargs={"query": "slow"})
    assert err.value.status_code == 504 and "brave-search" in str(err.value)
    with pytest.raises(APIStatusError) as err:
        client.tool_runtime.invoke_tool(tool_name="web_search", kwargs={"query": "garbage"})
    assert err.value.status_code == 502 and "something other than a JSON object" in str(err.value)


def test_an_unreachable_search_api_is_a_502(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    config = {
        "version": 2,
        "image_name": "websearch-down",
        "apis": ["tool_runtime"],
        "providers": {
            "tool_runtime": [
                {
                    "provider_id": "brave-search",
                    "provider_type": "remote::brave-search",
                    "config": {"api_key": "k", "base_url": f"http://127.0.0.1:{port}/res/v1"},
                }
            ]
        },
    }
    with lamina_server(config, tmp_path) as server:
        down = LlamaStackClient(base_url=server.url, max_retries=0)
        with pytest.raises(APIStatusError) as err:
            down.tool_runtime.invoke_tool(tool_name="web_search", kwargs={"query": "otters"})
        assert err.value.status_code == 502
        assert "brave-search" in str(err.value) and "cannot connect" in str(err.value)
        assert str(port) not in str(err.value)  # the upstream's address stays in the server log
