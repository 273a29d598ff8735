"""The line executor: runs the items of a batch, a few at a time, as background work.

One function for every batch in the server: the Llama Stack batch inference routes
(``/v1/inference/batch-completion``, ``/v1/inference/batch-chat-completion``) and the lines of an
OpenAI batch (the ``batches`` API's provider) both run through ``run_lines``, so both have the same
concurrency rule and both mark their provider calls as batch work (``lamina.request_context.batch_work``:
provider limits serve the interactive calls waiting beside them first).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from lamina.request_context import INTERACTIVE, batch_work

T = TypeVar("T")
R = TypeVar("R")


class _RaisedByCall(Exception):
    """Carries a CancelledError that a call raised (rather than received) out of the task group."""

    def __init__(self, raised: asyncio.CancelledError) -> None:
        super().__init__(str(raised))
        self.raised = raised


async def run_lines(
    items: Sequence[T],
    call: Callable[[int, T], Awaitable[R]],
    *,
    concurrency: int,
    yield_to_clients: bool = False,
) -> list[R]:
    """``call(index, item)`` for every item, at most ``concurrency`` at once; the results in input order.

    Items start in input order. Each call runs inside ``batch_work()``. With ``yield_to_clients`` (work
    no client waits on: an OpenAI batch's lines), while client requests are in flight
    (``lamina.request_context.INTERACTIVE``, and for its grace period after) only one item starts at a
    time, in a lull between client requests (``INTERACTIVE.lull``): the others wait until none is (the
    batch goes on, one line at a time, under constant client traffic). A client's own batch request
    (batch inference) does not yield: it would wait on itself.

    The first call that raises cancels the calls in flight, the items not started never start, and its
    exception is raised (a caller that must go on past a failed item catches it inside ``call``), a
    CancelledError a call raises too. Cancelling the caller cancels the calls in flight.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    results: list[R | None] = [None] * len(items)
    next_item = 0  # the next index to start; shared by the workers (one event loop: no lock needed)

    async def worker(number: int) -> None:
        nonlocal next_item
        with batch_work():
            while next_item < len(items):
                if yield_to_clients and INTERACTIVE.busy():
                    if number > 0:
                        await asyncio.sleep(INTERACTIVE.GRACE_SECONDS / 2)  # clients first: look again soon
                        continue
                    await INTERACTIVE.lull()  # the one line still running starts between client requests
                    if next_item >= len(items):
                        break
                i = next_item
                next_item += 1
                try:
                    results[i] = await call(i, items[i])
                except asyncio.CancelledError as exc:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise  # this worker is cancelled (by the group or the caller)
                    # The call raised it itself (lamina.jobs.JobLost: the job is no longer ours). A
                    # TaskGroup takes a child ending so for a cancelled child and lets the others go on.
                    raise _RaisedByCall(exc) from None

    try:
        async with asyncio.TaskGroup() as group:
            for number in range(min(concurrency, len(items))):
                group.create_task(worker(number))
    except BaseExceptionGroup as eg:
        first = eg.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        if isinstance(first, _RaisedByCall):
            raise first.raised from None
        raise first from None
    return results  # type: ignore[return-value]  # every slot was filled: no call raised
