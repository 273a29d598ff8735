"""The llama.cpp runtime in-process, on the bundled SmolLM2 GGUF (real llama.cpp, no mock).

Non-streamed answers are generated streamed inside (only a streamed call can be stopped) and
joined: the joined document must be what llama.cpp's own non-streamed call returns, field for
field, for chat and completions, with logprobs and with several prompts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lamina.errors import BadRequestError, ServiceUnavailableError
from lamina_llama_cpp.config import LlamaCppConfig
from lamina_llama_cpp.runtime import Runtime, bundled_path

CHAT = {"messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 3, "temperature": 0}
LONG = "Write the numbers from 1 to 1000, one per line, with no other text."  # thousands of tokens
COMPLETION = {"prompt": "Hello", "max_tokens": 3, "temperature": 0}


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    config = LlamaCppConfig(parallel=2, max_queue=1, warmup=False)
    rt = Runtime(bundled_path("SmolLM2-135M-Instruct"), config, "llama-cpp")
    await rt.ensure_loaded()
    try:
        yield rt
    finally:
        await rt.close()


def _without_timings(doc: dict[str, Any]) -> dict[str, Any]:
    """The answer minus what differs between two runs of the same request (ids, clocks, cache)."""
    out = {k: v for k, v in doc.items() if k not in ("id", "created", "timings")}
    if "usage" in out:
        out["usage"] = {k: v for k, v in out["usage"].items() if k != "prompt_tokens_details"}
    return out


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("handle_chat_completions", CHAT),
        ("handle_chat_completions", {**CHAT, "logprobs": True, "top_logprobs": 2, "stop": ["x"]}),
        ("handle_completions", COMPLETION),
        ("handle_completions", {**COMPLETION, "logprobs": 2, "n_probs": 2}),
    ],
)
async def test_a_joined_answer_is_the_non_streamed_answer(runtime: Runtime, method: str, body: dict) -> None:
    native = await asyncio.to_thread(getattr(runtime._server, method), dict(body))
    joined = await runtime.call(method, dict(body))
    assert _without_timings(joined) == _without_timings(native)
    assert set(joined) == set(native)
    assert runtime.inflight == 0


async def test_several_prompts_join_into_one_choice_each(runtime: Runtime) -> None:
    body = {**COMPLETION, "prompt": ["Hello", "Bye"]}
    joined = await runtime.call("handle_completions", dict(body))
    native = await asyncio.to_thread(runtime._server.handle_completions, dict(body))
    assert [c["text"] for c in joined["choices"]] == [c["text"] for c in native["choices"]]
    assert [c["index"] for c in joined["choices"]] == [0, 1]
    assert joined["usage"]["completion_tokens"] >= 2


async def test_cancelling_a_call_stops_llama_cpp_and_then_frees_the_slot(runtime: Runtime) -> None:
    long = {**CHAT, "messages": [{"role": "user", "content": LONG}], "max_tokens": 3000}
    task = asyncio.create_task(runtime.call("handle_chat_completions", long))
    await _until(lambda: runtime.inflight > 0, "the generation admitted")
    await asyncio.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The slot stays taken until llama.cpp's thread has returned, which it does at the next token.
    await _until(lambda: runtime.inflight == 0, "the slot given back")
    short = await asyncio.wait_for(runtime.call("handle_chat_completions", CHAT), 20)
    assert short["choices"][0]["finish_reason"] == "length"


async def test_n_slots_are_reserved_together_or_refused(runtime: Runtime) -> None:
    with pytest.raises(BadRequestError, match="n=4"):
        runtime.admit(4)  # more than parallel + max_queue: can never run
    slots = runtime.admit(2)
    with pytest.raises(ServiceUnavailableError, match="busy"):
        runtime.admit(2)
    assert runtime.inflight == 2  # the refused request took nothing
    for slot in slots:
        slot.release_unused()
        slot.release_unused()  # idempotent
    assert runtime.inflight == 0


async def test_a_multi_prompt_completion_counts_one_slot_per_prompt(runtime: Runtime) -> None:
    """llama.cpp starts a task per prompt: 4 prompts cannot fit a capacity of 3, whatever n is."""
    with pytest.raises(BadRequestError, match="4 prompts") as info:
        runtime.admit(1, weight=4)
    assert info.value.param == "prompt"
    (slot,) = runtime.admit(1, weight=3)
    assert runtime.inflight == 3
    with pytest.raises(ServiceUnavailableError):
        runtime.admit(1)
    slot.release_unused()
    assert runtime.inflight == 0


async def test_close_stops_generations_in_flight(runtime: Runtime) -> None:
    long = {**CHAT, "messages": [{"role": "user", "content": LONG}], "max_tokens": 3000}
    task = asyncio.create_task(runtime.call("handle_chat_completions", long))
    await _until(lambda: runtime.inflight > 0, "the generation admitted")
    await asyncio.wait_for(runtime.close(), 30)  # without stop flags it waits for 3000 tokens
    assert runtime.inflight == 0
    with pytest.raises(ServiceUnavailableError, match="shutting down"):  # not a cut answer as if whole
        await asyncio.wait_for(task, 5)


async def _until(check: Any, what: str, seconds: float = 20.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {seconds}s")
