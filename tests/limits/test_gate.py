"""lamina.limits.gate: who gets the next slot, and what a call that waits too long is told.

In-process: the limiter is pure bookkeeping on the event loop (the end-to-end behaviour through a
real server and upstream is tests/limits/test_limits_e2e.py). Rate windows use a clock the test moves.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lamina.errors import RateLimitError
from lamina.limits.gate import Permit, ProviderLimiter
from lamina.limits.settings import ProviderLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock | None = None, **settings: Any) -> ProviderLimiter:
    kwargs = {"clock": clock} if clock is not None else {}
    where = "providers.inference[0].limits"
    return ProviderLimiter("inference", "vllm", ProviderLimits.model_validate(settings), where, **kwargs)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_waiting_interactive_call_gets_the_next_slot_before_earlier_batch_calls() -> None:
    lim = limiter(max_concurrent=1)
    first = await lim.acquire("m", batch=True)
    order: list[str] = []

    async def call(name: str, batch: bool) -> Permit:
        permit = await lim.acquire("m", batch=batch)
        order.append(name)
        return permit

    batches = [asyncio.create_task(call(f"batch{i}", True)) for i in range(3)]
    await settle()
    interactive = asyncio.create_task(call("interactive", False))
    await settle()
    assert order == []  # all wait: the one slot is held
    first.release()
    await settle()
    assert order == ["interactive"]
    (await interactive).release()
    for task in batches:
        await settle()
        (await task).release()
    assert order == ["interactive", "batch0", "batch1", "batch2"]


async def test_batch_max_share_keeps_slots_for_interactive_calls() -> None:
    lim = limiter(max_concurrent=4, batch_max_share=0.5)
    held = [await lim.acquire("m", batch=True) for _ in range(2)]
    third_batch = asyncio.create_task(lim.acquire("m", batch=True))
    await settle()
    assert not third_batch.done()  # two of four slots are batch work's share
    interactive = [await asyncio.wait_for(lim.acquire("m", batch=False), 1) for _ in range(2)]
    held[0].release()
    permit = await asyncio.wait_for(third_batch, 1)
    for p in [permit, held[1], *interactive]:
        p.release()


async def test_a_model_at_its_own_limit_does_not_hold_back_other_models() -> None:
    lim = limiter(max_concurrent=4, models={"small": {"max_concurrent": 1}})
    first = await lim.acquire("small", batch=False)
    second = asyncio.create_task(lim.acquire("small", batch=False))
    other = asyncio.create_task(lim.acquire("big", batch=False))
    await settle()
    assert other.done() and not second.done()
    first.release()
    await asyncio.wait_for(second, 1)


async def test_a_call_that_waits_too_long_is_a_429_naming_provider_model_and_limit() -> None:
    lim = limiter(max_queue_seconds=0.2, models={"m": {"max_concurrent": 1}})
    held = await lim.acquire("m", batch=False)
    with pytest.raises(RateLimitError) as info:
        await asyncio.wait_for(lim.acquire("m", batch=False), 5)
    error = info.value
    assert error.status == 429
    assert int(error.headers["Retry-After"]) >= 1
    assert "provider 'vllm'" in error.message and "model 'm'" in error.message
    assert "providers.inference[0].limits.models.m.max_concurrent" in error.message
    assert "max_queue_seconds" in error.message
    held.release()
    # The queue is not left holding the call that gave up: the next one goes straight in.
    (await asyncio.wait_for(lim.acquire("m", batch=False), 1)).release()


async def test_batch_calls_wait_without_a_deadline_unless_one_is_set() -> None:
    lim = limiter(max_concurrent=1, max_queue_seconds=0.05)
    held = await lim.acquire(None, batch=False)
    batch = asyncio.create_task(lim.acquire(None, batch=True))
    await asyncio.sleep(0.3)
    assert not batch.done()
    held.release()
    (await asyncio.wait_for(batch, 1)).release()

    bounded = limiter(max_concurrent=1, batch_max_queue_seconds=0.05)
    held = await bounded.acquire(None, batch=False)
    with pytest.raises(RateLimitError, match="batch_max_queue_seconds"):
        await asyncio.wait_for(bounded.acquire(None, batch=True), 5)
    held.release()


async def test_a_cancelled_waiter_gives_way_and_a_granted_slot_is_passed_on() -> None:
    lim = limiter(max_concurrent=1)
    held = await lim.acquire(None, batch=False)
    gone = asyncio.create_task(lim.acquire(None, batch=False))
    after = asyncio.create_task(lim.acquire(None, batch=False))
    await settle()
    gone.cancel()
    await settle()
    held.release()
    permit = await asyncio.wait_for(after, 1)
    assert lim.gate is not None and lim.gate.in_flight == 1
    permit.release()
    permit.release()  # twice is harmless
    assert lim.gate.in_flight == 0


async def test_requests_per_minute_is_a_sliding_window() -> None:
    clock = Clock()
    lim = limiter(clock, requests_per_minute=2, max_queue_seconds=600)
    for _ in range(2):
        (await lim.acquire(None, batch=False)).release()
    third = asyncio.create_task(lim.acquire(None, batch=False))
    await settle()
    assert not third.done()  # two calls started in the last minute
    clock.now += 59
    lim.dispatch()
    await settle()
    assert not third.done()
    clock.now += 1.5
    lim.dispatch()
    (await asyncio.wait_for(third, 1)).release()


async def test_a_rate_limited_call_is_told_when_to_come_back() -> None:
    clock = Clock()
    lim = limiter(clock, requests_per_minute=1, max_queue_seconds=0.1)
    (await lim.acquire("m", batch=False)).release()
    clock.now += 20
    with pytest.raises(RateLimitError) as info:
        await asyncio.wait_for(lim.acquire("m", batch=False), 5)
    assert info.value.headers["Retry-After"] == "40"
    assert "requests_per_minute of 1" in info.value.message


async def test_tokens_per_minute_counts_the_estimate_then_the_answer() -> None:
    clock = Clock()
    lim = limiter(clock, tokens_per_minute=100, max_queue_seconds=600)
    permit = await lim.acquire(None, batch=False, tokens=90)
    waiting = asyncio.create_task(lim.acquire(None, batch=False, tokens=30))
    await settle()
    assert not waiting.done()  # 90 + 30 > 100
    permit.settle_tokens(20)  # the answer said 20
    permit.release()
    (await asyncio.wait_for(waiting, 1)).release()


async def test_a_call_larger_than_the_whole_token_limit_still_runs_alone() -> None:
    lim = limiter(Clock(), tokens_per_minute=100)
    (await asyncio.wait_for(lim.acquire(None, batch=False, tokens=500), 1)).release()


async def test_batch_share_of_a_rate_keeps_the_rest_for_interactive_calls() -> None:
    clock = Clock()
    lim = limiter(clock, requests_per_minute=4, batch_max_share=0.5, max_queue_seconds=600)
    for _ in range(2):
        (await lim.acquire(None, batch=True)).release()
    batch = asyncio.create_task(lim.acquire(None, batch=True))
    await settle()
    assert not batch.done()
    for _ in range(2):  # the other half is there for interactive calls
        (await asyncio.wait_for(lim.acquire(None, batch=False), 1)).release()
    clock.now += 61
    lim.dispatch()
    (await asyncio.wait_for(batch, 1)).release()


async def test_a_release_during_a_scan_never_admits_past_the_limit() -> None:
    """A stream dropped unread releases its slot from its finaliser, which the garbage collector may run
    in the middle of a scan; the nested scan waits for the running one, which then looks again."""
    lim = limiter(max_concurrent=1)
    assert lim.gate is not None
    held = await lim.acquire(None, batch=False)
    waiting = [asyncio.create_task(lim.acquire(None, batch=False)) for _ in range(2)]
    await settle()
    original = lim.gate.take
    nested: list[bool] = []

    def take(now: float, batch: bool, tokens: int) -> Any:
        if not nested:
            nested.append(True)
            lim.dispatch()  # as a finaliser would, mid-admission
        return original(now, batch, tokens)

    lim.gate.take = take  # type: ignore[method-assign]
    held.release()
    await settle()
    assert lim.gate.in_flight == 1
    assert [t.done() for t in waiting] == [True, False]
    (await waiting[0]).release()
    (await asyncio.wait_for(waiting[1], 1)).release()
