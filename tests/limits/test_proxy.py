"""lamina.limits.proxy: which provider calls hold a slot, and for how long (streams until they end).

In-process around a small provider object, bare and inside lamina.telemetry's span wrapper (which the
stack puts underneath when telemetry is on).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lamina.apis.inference import OpenAIChatCompletionRequest
from lamina.apis.models import Model
from lamina.limits import proxy
from lamina.limits.gate import ProviderLimiter
from lamina.limits.settings import ProviderLimits
from lamina.request_context import batch_work
from lamina.telemetry import provider_proxy

MODEL = Model(identifier="m", provider_id="p", provider_resource_id="m")


class Provider:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.registered: list[str] = []

    async def openai_chat_completion(self, model: Model, request: Any) -> Any:
        if getattr(request, "stream", False):
            return self._chunks()
        await self.release.wait()
        return {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}

    async def _chunks(self) -> AsyncIterator[dict]:
        for i in range(3):
            yield {"choices": [{"delta": {"content": str(i)}}]}
        yield {"choices": [], "usage": {"total_tokens": 11}}

    async def stream_turn(self, model: Model) -> AsyncIterator[int]:
        for i in range(2):
            yield i

    async def register_model(self, model: Model) -> Model:
        self.registered.append(model.identifier)
        return model

    def describe(self) -> str:
        return "sync methods are the provider's own"


def limited(impl: Any, traced: bool = False, **settings: Any) -> tuple[Any, ProviderLimiter]:
    settings_ = ProviderLimits.model_validate(settings)
    lim = ProviderLimiter("inference", "p", settings_, "providers.inference[0].limits")
    inner = provider_proxy.wrap(impl, "inference", "p", "remote::vllm") if traced else impl
    return proxy.wrap(inner, lim), lim


def request(stream: bool = False, max_tokens: int | None = None) -> OpenAIChatCompletionRequest:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "x" * 40}]}
    body["stream"] = stream
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return OpenAIChatCompletionRequest.model_validate(body)


@pytest.mark.parametrize("traced", [False, True])
async def test_a_call_holds_its_slot_until_it_returns(traced: bool) -> None:
    impl = Provider()
    wrapped, lim = limited(impl, traced, max_concurrent=1)
    first = asyncio.create_task(wrapped.openai_chat_completion(MODEL, request()))
    await asyncio.sleep(0.01)
    assert lim.gate is not None and lim.gate.in_flight == 1
    second = asyncio.create_task(wrapped.openai_chat_completion(MODEL, request()))
    await asyncio.sleep(0.01)
    assert not second.done()
    impl.release.set()
    await asyncio.wait_for(asyncio.gather(first, second), 2)
    assert lim.gate.in_flight == 0


@pytest.mark.parametrize("traced", [False, True])
async def test_a_stream_holds_its_slot_until_it_ends_or_is_closed(traced: bool) -> None:
    wrapped, lim = limited(Provider(), traced, max_concurrent=1)
    stream = await wrapped.openai_chat_completion(MODEL, request(stream=True))
    assert lim.gate is not None and lim.gate.in_flight == 1
    assert len([chunk async for chunk in stream]) == 4
    assert lim.gate.in_flight == 0

    stream = await wrapped.openai_chat_completion(MODEL, request(stream=True))
    await stream.__anext__()
    await stream.aclose()  # the client went away mid-stream
    assert lim.gate.in_flight == 0

    stream = await wrapped.openai_chat_completion(MODEL, request(stream=True))
    del stream  # dropped unread
    gc.collect()
    assert lim.gate.in_flight == 0


@pytest.mark.parametrize("traced", [False, True])
async def test_an_async_generator_method_takes_its_slot_when_read(traced: bool) -> None:
    wrapped, lim = limited(Provider(), traced, max_concurrent=1)
    turn = wrapped.stream_turn(MODEL)
    assert lim.gate is not None and lim.gate.in_flight == 0
    assert await turn.__anext__() == 0
    assert lim.gate.in_flight == 1
    assert [i async for i in turn] == [1]
    assert lim.gate.in_flight == 0


async def test_registration_and_sync_methods_are_not_limited_and_the_provider_is_itself() -> None:
    impl = Provider()
    wrapped, lim = limited(impl, max_concurrent=1, max_queue_seconds=0)
    held = await lim.acquire(None, batch=False)
    assert await asyncio.wait_for(wrapped.register_model(MODEL), 1) == MODEL  # not behind the full gate
    assert wrapped.describe() == "sync methods are the provider's own"
    assert isinstance(wrapped, Provider)
    wrapped.extra = 1
    assert impl.extra == 1
    held.release()


async def test_batch_work_is_read_from_the_calls_context() -> None:
    impl = Provider()
    impl.release.set()
    wrapped, lim = limited(impl, max_concurrent=2, batch_max_share=0.5)
    assert lim.gate is not None
    seen: list[int] = []
    original = lim.gate.take

    def take(now: float, batch: bool, tokens: int) -> Any:
        seen.append(batch)
        return original(now, batch, tokens)

    lim.gate.take = take  # type: ignore[method-assign]
    with batch_work():
        await wrapped.openai_chat_completion(MODEL, request())
    await wrapped.openai_chat_completion(MODEL, request())
    assert seen == [True, False]
    with batch_work():
        turn = wrapped.stream_turn(MODEL)  # called in batch work, read elsewhere: still batch work
    assert [i async for i in turn] == [0, 1]
    assert seen == [True, False, True]


async def test_tokens_are_estimated_then_settled_from_the_answers_usage() -> None:
    impl = Provider()
    impl.release.set()
    wrapped, lim = limited(impl, tokens_per_minute=1000)
    assert lim.gate is not None and lim.gate.tokens is not None
    await wrapped.openai_chat_completion(MODEL, request(max_tokens=50))
    assert lim.gate.tokens.total == 7  # the answer's usage, not the estimate (10 prompt + 50)
    stream = await wrapped.openai_chat_completion(MODEL, request(stream=True, max_tokens=50))
    [chunk async for chunk in stream]
    assert lim.gate.tokens.total == 7 + 11


def test_the_estimate_counts_the_prompt_and_max_tokens_times_n() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "y" * 400}], "max_tokens": 10, "n": 2}
    estimate = proxy.estimate_tokens((MODEL, OpenAIChatCompletionRequest.model_validate(body)), {})
    assert 100 + 20 <= estimate <= 100 + 20 + 2  # the role's few characters count too
