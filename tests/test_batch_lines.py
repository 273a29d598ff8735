"""lamina.routers.batch_lines.run_lines: the one executor of batch inference and OpenAI batch lines."""

from __future__ import annotations

import asyncio

import pytest

from lamina.request_context import WORK_CLASS
from lamina.routers.batch_lines import run_lines


class Recorder:
    def __init__(self, fail_on: int | None = None) -> None:
        self.fail_on = fail_on
        self.active = self.peak = 0
        self.started: list[int] = []
        self.classes: set[str] = set()
        self.cancelled = 0
        self.two_active = asyncio.Event()

    async def __call__(self, i: int, item: str) -> str:
        self.started.append(i)
        self.classes.add(WORK_CLASS.get())
        self.active += 1
        self.peak = max(self.peak, self.active)
        if self.active >= 2:
            self.two_active.set()
        try:
            await asyncio.sleep(0.001 * ((i * 7) % 5) if item != "slow" else 30)
            if i == self.fail_on:
                raise ValueError(f"item {i} is bad")
            return item.upper()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.active -= 1


async def test_results_in_input_order_within_the_limit_as_batch_work() -> None:
    recorder = Recorder()
    items = [f"x{i}" for i in range(50)]
    assert await run_lines(items, recorder, concurrency=4) == [f"X{i}" for i in range(50)]
    assert 1 < recorder.peak <= 4
    assert recorder.started == list(range(50))  # started in input order, each once
    assert recorder.classes == {"batch"} and WORK_CLASS.get() == "interactive"
    assert await run_lines([], recorder, concurrency=4) == []


async def test_the_first_failure_cancels_the_calls_in_flight_and_starts_no_more() -> None:
    recorder = Recorder(fail_on=3)
    items = ["a", "b", "slow", "d", "e", "f", "g", "h"]
    with pytest.raises(ValueError, match="item 3 is bad"):
        await run_lines(items, recorder, concurrency=3)
    assert recorder.cancelled >= 1 and recorder.active == 0  # the slow call was cancelled, not awaited
    assert max(recorder.started) < 7


async def test_cancelling_the_caller_cancels_its_calls() -> None:
    recorder = Recorder()
    task = asyncio.create_task(run_lines(["slow"] * 5, recorder, concurrency=2))
    await recorder.two_active.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert recorder.cancelled == 2 and recorder.started == [0, 1]


async def test_concurrency_must_be_positive() -> None:
    with pytest.raises(ValueError, match="concurrency must be at least 1, got 0"):
        await run_lines(["a"], Recorder(), concurrency=0)


async def test_a_call_that_raises_cancelled_error_itself_stops_the_batch() -> None:
    """A job that is no longer this process's (``lamina.jobs.JobLost``, a CancelledError) is raised by a
    line's progress call: the batch must stop with it, not take it for one worker's cancellation and go
    on with the others (asyncio's TaskGroup ignores a child that ends cancelled)."""

    class Lost(asyncio.CancelledError):
        pass

    started: list[int] = []

    async def call(i: int, item: str) -> str:
        started.append(i)
        await asyncio.sleep(0.001)
        if i == 2:
            raise Lost("job-x is no longer this server's to run")
        return item

    with pytest.raises(Lost, match="no longer this server's"):
        await run_lines([f"x{i}" for i in range(40)], call, concurrency=3)
    assert max(started) < 10  # the other workers stopped too


async def test_while_a_client_request_is_in_flight_one_item_runs_at_a_time(monkeypatch) -> None:
    """Clients first: with a request in flight (and for the grace period after it), a batch narrows to
    one item at a time; it widens again when clients are quiet, and it never stops."""
    from lamina.request_context import INTERACTIVE

    monkeypatch.setattr(INTERACTIVE, "LONGEST_WAIT_SECONDS", 0.002)  # each item may wait this long
    busy = Recorder()
    INTERACTIVE.started()
    try:
        assert await run_lines([f"i{n}" for n in range(20)], busy, concurrency=4, yield_to_clients=True) == [
            f"I{n}" for n in range(20)
        ]
        own = Recorder()  # a client's own batch request (batch inference) must not wait on itself
        await run_lines([f"i{n}" for n in range(20)], own, concurrency=4)
        assert own.peak == 4
    finally:
        INTERACTIVE.ended()
    assert busy.peak == 1 and busy.started == list(range(20))

    await asyncio.sleep(INTERACTIVE.GRACE_SECONDS)
    quiet = Recorder()
    await run_lines([f"i{n}" for n in range(20)], quiet, concurrency=4, yield_to_clients=True)
    assert quiet.peak == 4


async def test_under_client_traffic_the_one_item_starts_in_a_lull_between_requests(monkeypatch) -> None:
    """The one item a batch still runs under client traffic starts when no request has been in flight
    for LULL_SECONDS, not while one is (it would share the event loop with the client's answer), and at
    the latest after LONGEST_WAIT_SECONDS (set long here: only the lull can start it)."""
    from lamina.request_context import INTERACTIVE

    monkeypatch.setattr(INTERACTIVE, "LONGEST_WAIT_SECONDS", 30.0)
    started: list[tuple[int, int]] = []  # (item, client requests in flight when it started)

    async def call(i: int, item: str) -> str:
        started.append((i, INTERACTIVE.in_flight))
        return item

    INTERACTIVE.started()
    batch = asyncio.create_task(run_lines(["a", "b", "c"], call, concurrency=2, yield_to_clients=True))
    try:
        for _ in range(20):
            await asyncio.sleep(0)
        assert started == []  # a request is in flight: nothing starts
        INTERACTIVE.started()  # a second client arrives; the first ends: still one in flight
        INTERACTIVE.ended()
        for _ in range(20):
            await asyncio.sleep(0)
        assert started == []
    finally:
        INTERACTIVE.ended()
    assert await asyncio.wait_for(batch, 10) == ["a", "b", "c"]
    assert [i for i, _ in started] == [0, 1, 2]
    assert all(in_flight == 0 for _, in_flight in started)
