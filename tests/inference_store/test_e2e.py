"""Stored chat completions and batch inference through a real ``lamina run`` and the official clients.

The upstream is the fake OpenAI server (``fake_upstream``) behind ``remote::vllm``; each of its
completions has an id of its own (``chatcmpl-fake-<n>``). Paging over many ids is covered against
both databases in test_store.py.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import llama_stack_client
import openai
import pytest
from llama_stack_client import LlamaStackClient
from openai import OpenAI

from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

ASK = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def run_config(fake: ServerProcess, inference_store: dict | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "version": 2,
        "image_name": "store-e2e",
        "apis": ["inference"],
        "providers": {
            "inference": [
                {
                    "provider_id": "fake",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{fake.url}/v1", "timeout": 10.0},
                }
            ]
        },
        "models": [
            {"model_id": f"fake-{m}", "provider_id": "fake", "provider_model_id": m}
            for m in ("ok", "echo", "error500")
        ],
    }
    if inference_store is not None:
        config["inference_store"] = inference_store
    return config


def oa(server: ServerProcess, prefix: str = "/v1/openai/v1") -> OpenAI:
    return OpenAI(base_url=server.url + prefix, api_key="none", max_retries=0, timeout=30)


def listed(client: OpenAI, want: Callable[[list[Any]], bool], **params: Any) -> Any:
    """The listing, polled briefly: a completion is listed once the background writer has stored it."""
    deadline = time.monotonic() + 10
    while True:
        page = client.chat.completions.list(**params)
        if want(page.data) or time.monotonic() > deadline:
            return page
        time.sleep(0.05)


def get_json(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(params=["sqlite-default", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_section(request: pytest.FixtureRequest) -> dict | None:
    if request.param == "sqlite-default":
        return None
    server = request.getfixturevalue("postgres_server")
    return server.kvstore_config(table_name=f"e2e_{uuid.uuid4().hex[:12]}")


def test_streamed_and_non_streamed_completions_are_stored(
    start_lamina: Callable[..., ServerProcess],
    fake_upstream: ServerProcess,
    store_section: dict | None,
    tmp_path: Path,
) -> None:
    server = start_lamina(run_config(fake_upstream, store_section))
    if store_section is None:  # no inference_store section: SQLite in the state dir
        assert (tmp_path / "home" / "store-e2e" / "inference_store.db").exists()
    client = oa(server)

    # Non-streamed.
    answer = client.chat.completions.create(model="fake-ok", messages=ASK, temperature=0)
    got = client.chat.completions.retrieve(answer.id)
    assert got.id == answer.id and got.model == "fake-ok"
    assert (
        got.choices[0].message.content == answer.choices[0].message.content == "Hello from the fake upstream."
    )
    assert got.usage.total_tokens == 8
    assert got.input_messages == ASK
    page = listed(client, lambda data: any(c.id == answer.id for c in data), model="fake-ok")
    assert [c.id for c in page.data] == [answer.id] and page.has_more is False

    # Streamed: stored reassembled from its chunks once the stream has ended.
    stream = client.chat.completions.create(model="fake-ok", messages=ASK, stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("tok0@")
    got = client.chat.completions.retrieve(chunks[0].id)
    assert got.choices[0].message.content == text and got.choices[0].finish_reason == "stop"
    assert got.input_messages == ASK and got.model == "fake-ok"
    assert chunks[0].id != answer.id

    # Streamed tool calls are merged from their fragments.
    stream = client.chat.completions.create(
        model="fake-echo", messages=ASK, tools=TOOLS, tool_choice="required", stream=True
    )
    chunk_id = next(iter(stream)).id
    list(stream)
    got = client.chat.completions.retrieve(chunk_id)
    call = got.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name) == ("call_fake1", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert got.choices[0].finish_reason == "tool_calls"

    # The same records on the /v1 prefix, and the raw shape of Llama Stack's list response.
    # Listings order by (created, id) and `created` has whole seconds, as OpenAI's has: records made
    # within one second may list in either order, so only the order of `created` is asserted.
    page = listed(oa(server, "/v1"), lambda data: any(c.model == "fake-echo" for c in data))
    assert "fake-echo" in [c.model for c in page.data]
    assert [c.created for c in page.data] == sorted((c.created for c in page.data), reverse=True)
    status, body = get_json(f"{server.url}/v1/openai/v1/chat/completions?limit=1&order=asc")
    assert status == 200 and body["object"] == "list"
    assert set(body) == {"object", "data", "has_more", "first_id", "last_id"}
    assert body["first_id"] == body["last_id"] == body["data"][0]["id"]
    assert body["data"][0]["input_messages"] == ASK
    status, body = get_json(f"{server.url}/v1/openai/v1/chat/completions?model=fake-ok&order=asc")
    assert status == 200 and sorted(c["id"] for c in body["data"]) == sorted([answer.id, chunks[0].id])
    assert [c["created"] for c in body["data"]] == sorted(c["created"] for c in body["data"])
    status, body = get_json(f"{server.url}/v1/openai/v1/chat/completions?model=fake-nowhere")
    assert status == 200 and body["data"] == [] and body["first_id"] == "" and body["has_more"] is False


def test_llama_stack_client_reads_the_stored_completions(
    start_lamina: Callable[..., ServerProcess], fake_upstream: ServerProcess
) -> None:
    server = start_lamina(run_config(fake_upstream))
    answer = oa(server).chat.completions.create(model="fake-ok", messages=ASK)
    client = LlamaStackClient(base_url=server.url, max_retries=0, timeout=30)
    got = client.chat.completions.retrieve(answer.id)
    assert got.id == answer.id and got.input_messages[1].content == "Say hello."
    deadline = time.monotonic() + 10
    while not (page := client.chat.completions.list(limit=10)).data and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (
        page.object == "list"
        and page.first_id == answer.id
        and page.data[0].choices[0].finish_reason == "stop"
    )


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=many", "limit"),
        ("order=sideways", "order"),
        ("after=chatcmpl-unknown", "after"),
    ],
)
def test_bad_list_parameters_are_400_naming_the_parameter(
    start_lamina: Callable[..., ServerProcess], fake_upstream: ServerProcess, query: str, param: str
) -> None:
    server = start_lamina(run_config(fake_upstream))
    status, body = get_json(f"{server.url}/v1/chat/completions?{query}")
    assert status == 400, body
    assert body["error"]["param"] == param and param in body["detail"]


def test_unknown_completion_is_404_naming_the_id(
    start_lamina: Callable[..., ServerProcess], fake_upstream: ServerProcess
) -> None:
    server = start_lamina(run_config(fake_upstream))
    with pytest.raises(openai.NotFoundError) as info:
        oa(server).chat.completions.retrieve("chatcmpl-nowhere")
    assert "chatcmpl-nowhere" in str(info.value)


def test_completions_survive_a_restart(
    start_lamina: Callable[..., ServerProcess], fake_upstream: ServerProcess
) -> None:
    config = run_config(fake_upstream)
    first = start_lamina(config)
    answer = oa(first).chat.completions.create(model="fake-ok", messages=ASK)
    assert first.stop() == 0  # SIGTERM right away: shutdown flushes the writer
    second = start_lamina(config)  # same LAMINA_HOME, so the same state dir
    got = oa(second).chat.completions.retrieve(answer.id)
    assert got.choices[0].message.content == "Hello from the fake upstream." and got.input_messages == ASK
    assert [c.id for c in oa(second).chat.completions.list().data] == [answer.id]


# -- batch inference ---------------------------------------------------------------------------


def test_batch_endpoints_through_llama_stack_client(
    start_lamina: Callable[..., ServerProcess], fake_upstream: ServerProcess
) -> None:
    server = start_lamina(run_config(fake_upstream))
    client = LlamaStackClient(base_url=server.url, max_retries=0, timeout=30)
    batch = [[{"role": "user", "content": f"question {i}"}] for i in range(12)]
    answer = client.inference.batch_chat_completion(
        model_id="fake-echo", messages_batch=batch, sampling_params={"max_tokens": 7}
    )
    assert len(answer.batch) == 12
    for i, item in enumerate(answer.batch):  # the echo model answers with the request it got
        sent = json.loads(item.completion_message.content)
        assert sent["messages"] == [{"role": "user", "content": f"question {i}"}]
        assert sent["max_tokens"] == 7 and not sent.get("stream")

    done = client.inference.batch_completion(model_id="fake-ok", content_batch=["a", "b", "c"])
    assert len(done.batch) == 3 and all(r.stop_reason == "end_of_turn" for r in done.batch)

    with pytest.raises(llama_stack_client.BadRequestError) as info:
        client.inference.batch_completion(model_id="fake-ok", content_batch=["x"] * 257)
    assert "content_batch" in str(info.value)

    with pytest.raises(llama_stack_client.APIStatusError) as failed:
        client.inference.batch_chat_completion(model_id="fake-error500", messages_batch=batch[:3])
    assert failed.value.status_code == 502
    assert "messages_batch[" in str(failed.value) and "upstream exploded" in str(failed.value)


def test_the_openai_sdk_lists_a_stored_completions_messages_page_by_page(
    start_lamina: Callable[..., ServerProcess], fake_upstream: ServerProcess
) -> None:
    """OpenAI's `chat.completions.messages.list` (GET .../chat/completions/{id}/messages): the input
    messages in conversation order, each with an id, paged with after/limit, `order=desc` last first."""
    server = start_lamina(run_config(fake_upstream))
    for prefix in ("/v1/openai/v1", "/v1"):
        client = oa(server, prefix)
        answer = client.chat.completions.create(model="fake-ok", messages=ASK, temperature=0)
        page = client.chat.completions.messages.list(answer.id)
        assert [(m.id, m.role, m.content) for m in page.data] == [
            (f"{answer.id}-0", "system", "Be brief."),
            (f"{answer.id}-1", "user", "Say hello."),
        ]
        first = client.chat.completions.messages.list(answer.id, limit=1)
        assert [m.content for m in first.data] == ["Be brief."] and first.has_more is True
        rest = client.chat.completions.messages.list(answer.id, limit=1, after=first.data[0].id)
        assert [m.content for m in rest.data] == ["Say hello."] and rest.has_more is False
        assert [m.content for m in client.chat.completions.messages.list(answer.id, limit=5)] == [
            "Be brief.",
            "Say hello.",
        ]  # the SDK's auto-pagination
        last_first = client.chat.completions.messages.list(answer.id, order="desc")
        assert [m.role for m in last_first.data] == ["user", "system"]
    with pytest.raises(openai.NotFoundError, match="chatcmpl-nowhere"):
        client.chat.completions.messages.list("chatcmpl-nowhere")
    with pytest.raises(openai.BadRequestError, match="after"):
        client.chat.completions.messages.list(answer.id, after="nope")
