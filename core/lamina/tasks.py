"""Stopping and bounding asyncio work on Python 3.11 without losing a cancel.

Python 3.11's ``asyncio.wait_for`` runs its awaitable in a task of its own and can lose a cancel
aimed at the caller: when the cancel lands as that inner task completes, ``wait_for`` returns the
result (or, as its timeout fires, raises TimeoutError) and the caller goes on as if never cancelled
(python/cpython#86296, fixed in 3.12). A background loop calling it then survives the shutdown that
cancelled it: the server's health retries once kept a SIGTERMed ``lamina run`` alive until it was
killed 10 s later, and a job manager's shutdown once waited forever. So:

- bound an await with ``asyncio.timeout`` (the awaitable runs in the caller's task: a cancel reaches
  it) rather than ``asyncio.wait_for``;
- stop background tasks with ``cancel_until_done``, which cancels again whatever is still running a
  second later (a dependency may still use ``wait_for``: asyncpg does for every query).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


async def cancel_until_done(tasks: Iterable[asyncio.Task], recancel_after: float = 1.0) -> None:
    """Cancel ``tasks`` and wait until every one has ended, cancelling again those still running after
    ``recancel_after`` seconds (a cancel the task lost)."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=recancel_after)
