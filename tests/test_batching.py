"""lamina.providers.batching (RoundRobin-, Direct-, ThreadedBatcher): order, fairness, failures, cancels."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lamina.providers.batching import DirectBatcher, RoundRobinBatcher, ThreadedBatcher


class Recorder:
    """A 'model' that doubles numbers and records each batch; ``gate`` holds the first batch."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on
        self.gate = asyncio.Event()

    async def run(self, worker: int, items: list[int]) -> list[int]:
        self.batches.append(items)
        await self.gate.wait()
        if self.fail_on in items:
            raise ValueError(f"cannot score {self.fail_on}")
        return [2 * i for i in items]


async def started(recorder: Recorder, **kwargs) -> RoundRobinBatcher[int, int]:
    batcher: RoundRobinBatcher[int, int] = RoundRobinBatcher(recorder.run, max_batch_size=4, **kwargs)
    batcher.start()
    return batcher


async def test_results_come_back_in_the_requests_order_whatever_the_queue_order() -> None:
    recorder = Recorder()
    recorder.gate.set()
    batcher = await started(recorder, sort_key=lambda i: -i)
    assert await batcher.submit([1, 5, 3]) == [2, 10, 6]
    assert recorder.batches == [[5, 3, 1]]  # queued by the sort key
    assert await batcher.submit([]) == []
    await batcher.close()


async def test_a_small_request_is_not_stuck_behind_a_large_one() -> None:
    recorder = Recorder()
    batcher = await started(recorder)
    large = asyncio.create_task(batcher.submit(list(range(100, 112))))
    await asyncio.sleep(0)
    small = asyncio.create_task(batcher.submit([7]))
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await small == [14]
    assert await large == [2 * i for i in range(100, 112)]
    assert 7 in recorder.batches[1]  # the second batch already takes the small request's item
    assert recorder.batches[1] == [104, 7, 105, 106] and batcher.items_run == 13
    await batcher.close()


async def test_a_failed_batch_fails_its_requests_and_the_batcher_goes_on() -> None:
    recorder = Recorder(fail_on=3)
    recorder.gate.set()
    batcher = await started(recorder)
    with pytest.raises(ValueError, match="cannot score 3"):
        await batcher.submit([1, 2, 3])
    assert await batcher.submit([4]) == [8]
    await batcher.close()


async def test_a_cancelled_request_is_dropped_from_later_batches() -> None:
    recorder = Recorder()
    batcher = await started(recorder)
    first = asyncio.create_task(batcher.submit(list(range(10))))
    await asyncio.sleep(0)
    first.cancel()
    recorder.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await batcher.submit([42]) == [84]
    assert [b for b in recorder.batches if 8 in b] == []  # nothing past the first batch was run
    await batcher.close()


async def test_close_fails_waiting_requests_and_a_closed_batcher_refuses() -> None:
    recorder = Recorder()
    batcher = await started(recorder)
    waiting = asyncio.create_task(batcher.submit(list(range(9))))
    await asyncio.sleep(0)
    await batcher.close("shutting down")
    with pytest.raises((RuntimeError, asyncio.CancelledError)):
        await waiting
    with pytest.raises(RuntimeError, match="batcher is not started"):
        await batcher.submit([1])


async def test_close_fails_a_request_whose_batch_is_running() -> None:
    started = asyncio.Event()

    async def run(worker: int, items: list[int]) -> list[int]:
        started.set()
        await asyncio.sleep(3600)
        return items

    batcher: RoundRobinBatcher[int, int] = RoundRobinBatcher(run, max_batch_size=4)
    batcher.start()
    waiting = asyncio.create_task(batcher.submit([1]))
    await started.wait()
    await batcher.close("stopping")
    with pytest.raises(RuntimeError, match="stopping"):
        await waiting


@pytest.mark.parametrize("fault", ["short", "cancelled"])
async def test_a_broken_batch_fails_its_requests_and_the_worker_survives(fault: str) -> None:
    calls = 0

    async def run(worker: int, items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1 and fault == "short":
            return items[:-1]
        if calls == 1:  # a cancellation from inside the model call, not of the batcher
            future = asyncio.get_running_loop().create_future()
            future.cancel()
            await future
        return items

    batcher: RoundRobinBatcher[int, int] = RoundRobinBatcher(run, max_batch_size=4)
    batcher.start()
    with pytest.raises(RuntimeError, match=r"1 results for a batch of 2|the batch was cancelled"):
        await batcher.submit([1, 2])
    assert await batcher.submit([3]) == [3]
    await batcher.close()


# -- when a batch is dispatched: at once when idle, gathered while busy ---------------------------
# A batcher that waited a while "for company" would make every lone request pay that wait (issue 11,
# item 10). The rule: a request that finds the model idle is dispatched at once, alone; the requests
# that arrive while a batch runs are gathered into the next one. No timer is involved, so these tests
# count loop turns, never wall-clock time.


async def test_a_lone_request_is_dispatched_at_once_without_waiting_for_company() -> None:
    recorder = Recorder()
    batcher = await started(recorder)
    lone = asyncio.create_task(batcher.submit([5]))
    for _ in range(3):  # the submitting task, then the worker: a couple of loop turns, no timer
        await asyncio.sleep(0)
    assert recorder.batches == [[5]]  # already handed to the model, on its own
    assert not lone.done()  # ... which is still running it (the gate is closed)
    recorder.gate.set()
    assert await lone == [10]
    assert batcher.batches_run == 1 and batcher.items_run == 1
    await batcher.close()


async def test_requests_arriving_while_the_model_is_busy_are_gathered_into_one_batch() -> None:
    recorder = Recorder()
    batcher: RoundRobinBatcher[int, int] = RoundRobinBatcher(recorder.run, max_batch_size=8)
    batcher.start()
    first = asyncio.create_task(batcher.submit([0]))
    for _ in range(3):
        await asyncio.sleep(0)
    assert recorder.batches == [[0]]  # the model is now busy with the first request alone
    later = [asyncio.create_task(batcher.submit([i])) for i in range(1, 10)]  # 9 arrive meanwhile
    for _ in range(3):
        await asyncio.sleep(0)
    assert len(recorder.batches) == 1  # nothing else dispatched while the model is busy
    recorder.gate.set()
    assert await first == [0]
    assert [await t for t in later] == [[2 * i] for i in range(1, 10)]
    # the 9 waiting requests went in full batches (8, then the 1 left), not one by one
    assert [len(b) for b in recorder.batches] == [1, 8, 1]
    assert recorder.batches[1] == list(range(1, 9))
    await batcher.close()


class ThreadRecorder:
    """A synchronous 'model' for ThreadedBatcher (runs on its thread); ``gate`` holds every batch."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on
        self.gate = threading.Event()
        self.entered = threading.Event()

    def run(self, worker: int, items: list[int]) -> list[int]:
        self.batches.append(items)
        self.entered.set()
        assert self.gate.wait(20), "the test never opened the gate"
        if self.fail_on in items:
            raise ValueError(f"cannot score {self.fail_on}")
        return [2 * i for i in items]


async def threaded(recorder: ThreadRecorder, max_batch_size: int = 4) -> ThreadedBatcher[int, int]:
    batcher: ThreadedBatcher[int, int] = ThreadedBatcher(recorder.run, max_batch_size=max_batch_size)
    batcher.start()
    return batcher


async def test_threaded_a_lone_request_goes_to_the_thread_from_submit_without_a_loop_turn() -> None:
    """No worker task: the request is handed over before ``submit`` first yields."""
    recorder = ThreadRecorder()
    batcher = await threaded(recorder)
    lone = asyncio.ensure_future(batcher.submit([5]))
    await asyncio.sleep(0)  # the submitting task's first step only
    # blocks the loop on purpose: a worker task could not run now, only the thread can answer
    assert recorder.entered.wait(10)
    assert recorder.batches == [[5]]
    recorder.gate.set()
    assert await lone == [10]
    assert batcher.batches_run == 1 and batcher.items_run == 1
    await batcher.close()


async def test_threaded_order_fairness_and_gathering_while_busy() -> None:
    recorder = ThreadRecorder()
    batcher = await threaded(recorder, max_batch_size=8)
    first = asyncio.ensure_future(batcher.submit([0]))
    await asyncio.sleep(0)
    assert recorder.entered.wait(10)
    big = asyncio.ensure_future(batcher.submit(list(range(100, 120))))
    later = [asyncio.ensure_future(batcher.submit([i])) for i in range(1, 4)]
    await asyncio.sleep(0.01)
    assert len(recorder.batches) == 1  # nothing else handed over while the thread is busy
    recorder.gate.set()
    assert await first == [0]
    assert [await t for t in later] == [[2], [4], [6]]
    assert await big == [2 * i for i in range(100, 120)]
    # round robin: the small requests went in the first batch after the busy one, with the big one
    assert sorted(recorder.batches[1]) == [1, 2, 3, 100, 101, 102, 103, 104]
    assert sum(len(b) for b in recorder.batches) == 24
    await batcher.close()


async def test_threaded_a_failed_batch_fails_its_requests_and_the_batcher_goes_on() -> None:
    recorder = ThreadRecorder(fail_on=3)
    recorder.gate.set()
    batcher = await threaded(recorder)
    with pytest.raises(ValueError, match="cannot score 3"):
        await batcher.submit([3])
    assert await batcher.submit([1, 2]) == [2, 4]
    await batcher.close()


async def test_threaded_a_wrong_number_of_results_fails_the_batch() -> None:
    batcher: ThreadedBatcher[int, int] = ThreadedBatcher(lambda w, items: items[:-1], max_batch_size=4)
    batcher.start()
    with pytest.raises(RuntimeError, match="1 results for a batch of 2"):
        await batcher.submit([1, 2])
    await batcher.close()


async def test_threaded_a_cancelled_request_is_dropped_from_later_batches() -> None:
    recorder = ThreadRecorder()
    batcher = await threaded(recorder, max_batch_size=2)
    doomed = asyncio.ensure_future(batcher.submit(list(range(10))))
    await asyncio.sleep(0)
    assert recorder.entered.wait(10)
    doomed.cancel()
    other = asyncio.ensure_future(batcher.submit([50]))
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await other == [100]
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert recorder.batches == [[0, 1], [50]]  # nothing more of the cancelled request ran
    await batcher.close()


async def test_threaded_close_fails_waiting_and_running_requests_and_then_refuses() -> None:
    recorder = ThreadRecorder()
    batcher = await threaded(recorder, max_batch_size=1)
    running = asyncio.ensure_future(batcher.submit([1]))
    await asyncio.sleep(0)
    assert recorder.entered.wait(10)
    waiting = asyncio.ensure_future(batcher.submit([2]))
    await asyncio.sleep(0)
    await batcher.close("shutting down")
    for fut in (running, waiting):
        with pytest.raises(RuntimeError, match="shutting down"):
            await fut
    recorder.gate.set()  # the running batch's late results are dropped
    await asyncio.sleep(0.05)
    with pytest.raises(RuntimeError, match="not started"):
        await batcher.submit([3])


class CallbackModel:
    """A 'model' for DirectBatcher that runs elsewhere (here: answers later on the loop, as a worker
    process's pipe callback does); ``begin`` records each batch and returns at once."""

    def __init__(self, refuse: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.pending: list[tuple[list[int], object]] = []
        self.refuse = refuse

    def begin(self, worker: int, items: list[int], done) -> None:
        if self.refuse in items:
            raise OSError(f"could not send {self.refuse}")
        self.batches.append(items)
        self.pending.append((items, done))

    def answer(self) -> None:
        items, done = self.pending.pop(0)
        done([2 * i for i in items], None)


async def test_direct_a_lone_request_is_begun_from_submit_and_answered_by_its_callback() -> None:
    model = CallbackModel()
    batcher: DirectBatcher[int, int] = DirectBatcher(model.begin, max_batch_size=4)
    batcher.start()
    lone = asyncio.ensure_future(batcher.submit([5]))
    await asyncio.sleep(0)  # the submitting task's first step only: no worker task exists to run
    assert model.batches == [[5]]
    later = [asyncio.ensure_future(batcher.submit([i])) for i in (1, 2)]
    await asyncio.sleep(0)
    assert model.batches == [[5]]  # the worker is busy: the two wait together
    model.answer()  # the callback delivers [5] and begins the next batch at once
    assert model.batches == [[5], [1, 2]]
    model.answer()
    assert await lone == [10] and [await t for t in later] == [[2], [4]]
    await batcher.close()


async def test_direct_a_batch_that_cannot_begin_fails_alone_and_frees_its_worker() -> None:
    model = CallbackModel(refuse=3)
    batcher: DirectBatcher[int, int] = DirectBatcher(model.begin, max_batch_size=4)
    batcher.start()
    with pytest.raises(OSError, match="could not send 3"):
        await batcher.submit([3])
    ok = asyncio.ensure_future(batcher.submit([1]))
    await asyncio.sleep(0)
    model.answer()
    assert await ok == [2]
    await batcher.close()


async def test_direct_an_error_from_the_callback_fails_the_batch_and_close_fails_a_running_one() -> None:
    model = CallbackModel()
    batcher: DirectBatcher[int, int] = DirectBatcher(model.begin, max_batch_size=4)
    batcher.start()
    failing = asyncio.ensure_future(batcher.submit([1]))
    await asyncio.sleep(0)
    _items, done = model.pending.pop(0)
    done(None, RuntimeError("the worker process died"))
    with pytest.raises(RuntimeError, match="the worker process died"):
        await failing
    running = asyncio.ensure_future(batcher.submit([2]))
    await asyncio.sleep(0)
    await batcher.close("shutting down")
    with pytest.raises(RuntimeError, match="shutting down"):
        await running
    model.answer()  # a late answer after close is dropped
    with pytest.raises(RuntimeError, match="is not started"):
        await batcher.submit([1])
