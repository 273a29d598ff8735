"""What the OpenAI routes send (lamina.providers.openai_wire) and how their streams end (lamina.server.sse).

The end-to-end cases, through both official clients, are in tests/e2e/test_openai_streams.py and the
inference conformance kit; these pin down the rules on the shapes real providers produce.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from multidict import CIMultiDict

from lamina.providers import openai_wire
from lamina.server.sse import ends_with_done

USAGE = {"prompt_tokens": 31, "completion_tokens": 3, "total_tokens": 34}
TIMINGS = {"prompt_n": 31, "predicted_n": 3, "predicted_ms": 29.6}


def chunk(text: str | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {"content": text} if text is not None else {}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


class Upstream:
    """An async iterator of chunks that records whether it was closed (a provider's stream)."""

    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self.chunks = chunks
        self.closed = False

    def __aiter__(self) -> Upstream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if not self.chunks:
            raise StopAsyncIteration
        return self.chunks.pop(0)

    async def aclose(self) -> None:
        self.closed = True


async def collect(items: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item async for item in items]


# llama.cpp's stream of a chat completion asked with include_usage (what inline::llama-cpp always asks).
LLAMA_CPP_CHAT = [
    chunk(system_fingerprint="b0-unknown"),
    chunk("Hello", system_fingerprint="b0-unknown"),
    chunk(None, "length", system_fingerprint="b0-unknown"),
    {**chunk(system_fingerprint="b0-unknown"), "choices": [], "usage": USAGE, "timings": TIMINGS},
]


def test_clean_answer_keeps_openai_fields_and_says_whether_it_removed_any() -> None:
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "system_fingerprint": "fp_44709d6fcb",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": USAGE,
    }
    assert openai_wire.clean_answer(dict(answer)) is False
    messy = {**answer, "timings": TIMINGS, "__verbose": {"content": "hi"}, "prompt_progress": {}}
    assert openai_wire.clean_answer(messy) is True and messy == answer
    unknown = {**answer, "system_fingerprint": "b0-unknown"}
    assert openai_wire.clean_answer(unknown) is True and "system_fingerprint" not in unknown


async def test_a_stream_that_did_not_ask_has_a_choice_in_every_chunk_and_no_usage() -> None:
    seen: list[dict[str, Any]] = []
    upstream = Upstream([dict(c) for c in LLAMA_CPP_CHAT])
    out = await collect(openai_wire.openai_stream(upstream, include_usage=False, observe=seen.append))
    assert [c["choices"][0]["delta"].get("content") for c in out] == [None, "Hello", None]
    assert all("usage" not in c and "timings" not in c and "system_fingerprint" not in c for c in out)
    assert seen[-1]["usage"] == USAGE  # what the inference store records
    assert upstream.closed


async def test_asked_usage_comes_last_with_no_choices_even_when_sent_on_a_choice_chunk() -> None:
    # llama.cpp's text completion stream puts the usage on its last chunk, beside the finish_reason.
    chunks = [chunk("Paris"), chunk("", "stop", usage=USAGE, timings=TIMINGS)]
    out = await collect(openai_wire.openai_stream(Upstream(chunks), include_usage=True))
    assert [c["choices"][0]["finish_reason"] for c in out[:-1]] == [None, "stop"]
    assert all("usage" not in c for c in out[:-1])
    assert out[-1] == {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [], "usage": USAGE}  # fmt: skip


async def test_chunks_without_a_choice_are_dropped_and_no_usage_is_made_up() -> None:
    empty_first = {**chunk(), "choices": [], "prompt_filter_results": []}
    out = await collect(
        openai_wire.openai_stream(Upstream([empty_first, chunk("hi", "stop")]), include_usage=True)
    )
    assert [c["choices"][0]["delta"] for c in out] == [{"content": "hi"}]


async def test_closing_the_stream_early_closes_the_provider_stream() -> None:
    upstream = Upstream([chunk("a"), chunk("b"), chunk("c")])
    stream = openai_wire.openai_stream(upstream, include_usage=True)
    assert (await anext(stream))["choices"][0]["delta"] == {"content": "a"}
    await stream.aclose()
    assert upstream.closed


def test_done_marker_by_client() -> None:
    def done(**headers: str) -> bool:
        return ends_with_done(CIMultiDict({k.replace("_", "-"): v for k, v in headers.items()}))

    assert not done(User_Agent="LlamaStackClient/Python 0.2.12", X_LlamaStack_Client_Version="0.2.12")
    assert not done(User_Agent="AsyncLlamaStackClient/Python 0.2.12")
    assert not done(User_Agent="LlamaStackClient/JS 0.2.12")
    assert not done(User_Agent="python-httpx/0.28", X_LlamaStack_Client_Version="0.2.12")
    assert done(User_Agent="OpenAI/Python 1.99.0")
    assert done(User_Agent="AsyncOpenAI/Python 1.99.0", X_LlamaStack_Client_Version="0.2.12")
    assert done(User_Agent="curl/8.5.0")
    assert done()
