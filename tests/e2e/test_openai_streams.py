"""OpenAI streams and answers on the wire, through both official clients against a real ``lamina run``.

The upstream is llama.cpp's own OpenAI server on SmolLM2 (provider ``llamacpp``, remote::vllm): it
adds fields OpenAI does not define (``timings``, a ``b0-unknown`` system_fingerprint). Streams with
several choices use the scripted fake upstream (``fault/ok``), because llama.cpp streams only one.

- llama-stack-client 0.2.12 parses every event as JSON, so its streams end without ``data: [DONE]``;
  every other client (the OpenAI SDK, curl) gets OpenAI's framing, ending with it.
- A stream's chunks all carry a choice, except the usage chunk, sent last and only when the request
  asks ``stream_options.include_usage`` (as OpenAI does).
"""

from __future__ import annotations

import json

import httpx
import pytest
from llama_stack_client import LlamaStackClient
from openai import OpenAI

from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

SAY = [{"role": "user", "content": "Say hello in one word."}]
# What OpenAI defines at the top of a chat.completion(.chunk) / text_completion object.
OPENAI_KEYS = {"id", "object", "created", "model", "choices", "usage", "system_fingerprint", "service_tier"}
LLAMA_STACK_CLIENT_HEADERS = {
    "User-Agent": "LlamaStackClient/Python 0.2.12",
    "X-Stainless-Lang": "python",
    "X-Stainless-Package-Version": "0.2.12",
    "X-LlamaStack-Client-Version": "0.2.12",
}


def _events(server: ServerProcess, path: str, body: dict, headers: dict[str, str]) -> list[str]:
    """The data of every server-sent event of a streamed answer, as sent."""
    with httpx.stream("POST", f"{server.url}{path}", json=body, headers=headers, timeout=60) as resp:
        assert resp.status_code == 200, resp.read()
        return [line[len("data: ") :] for line in resp.iter_lines() if line.startswith("data: ")]


def _only_openai_fields(doc: dict) -> None:
    assert set(doc) <= OPENAI_KEYS, f"fields OpenAI does not define: {set(doc) - OPENAI_KEYS}"
    # llama.cpp's placeholder when it does not know its own build: it identifies no configuration
    assert doc.get("system_fingerprint") != "b0-unknown"


# -- item 1: the end of a stream, per client ------------------------------------------------------


def test_llama_stack_client_streams_an_openai_chat_completion(ls_client: LlamaStackClient) -> None:
    chunks = list(ls_client.chat.completions.create(model="smollm2", messages=SAY, max_tokens=6, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks).strip()
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_llama_stack_client_streams_an_openai_completion(ls_client: LlamaStackClient) -> None:
    chunks = list(
        ls_client.completions.create(
            model="smollm2", prompt="The capital of France is", max_tokens=6, stream=True
        )
    )
    assert "".join(c.choices[0].text for c in chunks).strip()
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


@pytest.mark.parametrize("include_usage", [False, True])
def test_streamed_chat_with_several_choices_through_both_clients(
    ls_client: LlamaStackClient, oa_client: OpenAI, include_usage: bool
) -> None:
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    streams = {
        "llama-stack-client": ls_client.chat.completions.create(
            model="fault/ok", messages=SAY, n=2, stream=True, **options
        ),
        "openai": oa_client.chat.completions.create(
            model="fault/ok", messages=SAY, n=2, stream=True, **options
        ),
    }
    for client, stream in streams.items():
        chunks = list(stream)
        with_choices = chunks[:-1] if include_usage else chunks
        texts: dict[int, str] = {0: "", 1: ""}
        finished = set()
        for chunk in with_choices:
            choice = chunk.choices[0]  # the loop most client code writes
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finished.add(choice.index)
        assert texts[0].startswith("tok0@") and texts[1].startswith("tok0@"), client
        assert finished == {0, 1}, client
        # llama-stack-client 0.2.12's chunk type has no `usage` field: read the chunks as sent
        docs = [c.to_dict() for c in chunks]
        if include_usage:
            assert docs[-1]["choices"] == [] and docs[-1]["usage"]["total_tokens"] > 0, client
        assert all(d.get("usage") is None for d in (docs[:-1] if include_usage else docs)), client


@pytest.mark.parametrize(
    ("headers", "done"),
    [
        (LLAMA_STACK_CLIENT_HEADERS, False),
        ({"User-Agent": "AsyncLlamaStackClient/Python 0.2.12", "X-Stainless-Async": "async:asyncio"}, False),
        ({"User-Agent": "OpenAI/Python 1.99.0", "X-Stainless-Lang": "python"}, True),
        ({"User-Agent": "curl/8.5.0"}, True),
        ({}, True),
    ],
    ids=["llama-stack-client", "async-llama-stack-client", "openai", "curl", "no-user-agent"],
)
@pytest.mark.parametrize(
    "path", ["/v1/openai/v1/chat/completions", "/v1/chat/completions", "/v1/completions"]
)
def test_done_marker_only_for_clients_that_expect_it(
    lamina: ServerProcess, headers: dict[str, str], done: bool, path: str
) -> None:
    shape = {"prompt": "Hi"} if path.endswith("/v1/completions") else {"messages": SAY}
    events = _events(lamina, path, {"model": "fault/ok", "stream": True, "n_chunks": 2, **shape}, headers)
    assert (events[-1] == "[DONE]") is done
    body = events[:-1] if done else events
    assert body and all(json.loads(e)["choices"] for e in body)


# -- item 2: usage only when asked, only OpenAI's fields ------------------------------------------


def test_openai_sdk_stream_loop_without_include_usage(oa_client: OpenAI) -> None:
    """``chunk.choices[0]`` on every chunk: no usage-only chunk unless asked."""
    stream = oa_client.chat.completions.create(model="smollm2", messages=SAY, max_tokens=6, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text.strip()


def test_usage_chunk_comes_last_before_done_when_asked(lamina: ServerProcess) -> None:
    for path, shape in (
        ("/v1/chat/completions", {"messages": SAY}),
        ("/v1/completions", {"prompt": "The capital of France is"}),
    ):
        body = {"model": "smollm2", "max_tokens": 6, "stream": True, **shape}
        asked = _events(lamina, path, {**body, "stream_options": {"include_usage": True}}, {})
        assert asked[-1] == "[DONE]"
        docs = [json.loads(e) for e in asked[:-1]]
        assert docs[-1]["choices"] == [] and docs[-1]["usage"]["completion_tokens"] >= 1, path
        assert all(d["choices"] and not d.get("usage") for d in docs[:-1]), path
        for doc in docs:
            _only_openai_fields(doc)
        unasked = [json.loads(e) for e in _events(lamina, path, body, {})[:-1]]
        assert all(d["choices"] and "usage" not in d for d in unasked), path
        for doc in unasked:
            _only_openai_fields(doc)


def test_answers_carry_only_openai_fields(oa_client: OpenAI, ls_client: LlamaStackClient) -> None:
    answers = [
        oa_client.chat.completions.create(model="smollm2", messages=SAY, max_tokens=4),
        oa_client.completions.create(model="smollm2", prompt="Hello", max_tokens=4),
        ls_client.chat.completions.create(model="smollm2", messages=SAY, max_tokens=4),
        ls_client.completions.create(model="smollm2", prompt="Hello", max_tokens=4),
    ]
    for answer in answers:
        doc = answer.to_dict()
        _only_openai_fields(doc)
        assert doc["usage"]["completion_tokens"] >= 1
    streamed = [
        *oa_client.chat.completions.create(model="smollm2", messages=SAY, max_tokens=4, stream=True),
        *ls_client.chat.completions.create(model="smollm2", messages=SAY, max_tokens=4, stream=True),
        *ls_client.completions.create(model="smollm2", prompt="Hello", max_tokens=4, stream=True),
    ]
    for chunk in streamed:
        _only_openai_fields(chunk.to_dict())
