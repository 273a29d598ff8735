"""lamina.tasks: background tasks stop even when a cancel is lost (Python 3.11's wait_for race)."""

from __future__ import annotations

import asyncio

from lamina.tasks import cancel_until_done


async def test_a_task_that_lost_its_cancel_is_cancelled_again_until_it_ends() -> None:
    """As a health retry loop that lost the shutdown's cancel inside wait_for: it goes on to its next
    sleep. A single cancel-and-gather waited on it for good (a SIGTERMed server ran until killed)."""
    lost = asyncio.Event()

    async def retry_loop() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if lost.is_set():
                    raise
                lost.set()  # the first cancel is swallowed, as wait_for's race does

    calm = asyncio.create_task(asyncio.sleep(3600))
    stubborn = asyncio.create_task(retry_loop())
    finished = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0)
    await cancel_until_done([calm, stubborn, finished], recancel_after=0.05)
    assert lost.is_set() and stubborn.cancelled() and calm.cancelled() and finished.done()
