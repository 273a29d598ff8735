"""Graceful shutdown: stop taking work, let in-flight requests finish within the grace period, cut the rest
with a 503, then exit without waiting for worker threads that are still computing.

Left to itself, aiohttp (``run_app(shutdown_timeout=T)``) waits T seconds for a running handler,
cancels it, waits up to T more, and then closes the connection: the client gets no response at all,
2T after the signal. So Lamina drains first, in ``on_shutdown``, before aiohttp looks at the
connections:

1. ``SHUTTING_DOWN`` is set: a request arriving on a kept-alive connection gets a 503 at once
   (the listening socket is already closed, so no new connection arrives);
2. open streams get a last error event and end (``close_open_streams``);
3. the other in-flight requests get ``server.shutdown_timeout`` seconds to finish;
4. the ones still running are cancelled, and each answers a 503 that says why.

Then the app's cleanup context stops the stack (stores flushed, providers shut down). A thread
still busy in native code (a llama.cpp generation that ignores cancellation) would keep the
interpreter alive at exit, because ``concurrent.futures`` joins its worker threads: after a short
wait the process exits without them (``exit_promptly``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time

import structlog
from aiohttp import web

from lamina.errors import ServiceUnavailableError
from lamina.server.keys import CUT_REQUESTS, IN_FLIGHT, SHUTTING_DOWN, STACK
from lamina.server.sse import close_open_streams

log = structlog.get_logger(__name__)

# Seconds a cut request gets to write its 503, and aiohttp's own per-connection wait after the drain.
CUT_WRITE_SECONDS = 2.0
AIOHTTP_BACKSTOP_SECONDS = 1.0
# Seconds the process waits at exit for worker threads before leaving without them.
THREAD_JOIN_SECONDS = 1.0


@web.middleware
async def drain_middleware(request: web.Request, handler):
    """Refuse new work while shutting down; turn a request cut by the drain into a 503."""
    app = request.app
    if app[SHUTTING_DOWN].is_set():
        raise ServiceUnavailableError(
            "the server is shutting down and takes no new requests; retry on another replica or once "
            "it has restarted",
            retry_after=1,
        )
    task = asyncio.current_task()
    if task is None:  # pragma: no cover - aiohttp always runs handlers in a task
        return await handler(request)
    app[IN_FLIGHT].add(task)
    try:
        return await handler(request)
    except asyncio.CancelledError:
        if task not in app[CUT_REQUESTS]:
            raise
        task.uncancel()  # the cut is handled: the rest of the task writes the 503
        grace = app[STACK].config.server.shutdown_timeout
        raise ServiceUnavailableError(
            f"the server is shutting down: this request was still running after the grace period "
            f"(server.shutdown_timeout = {grace:g} s) and was stopped; retry it",
            retry_after=1,
        ) from None
    finally:
        app[IN_FLIGHT].discard(task)
        app[CUT_REQUESTS].discard(task)


async def drain_requests(app: web.Application) -> None:
    """on_shutdown: close streams, give the other requests the grace period, then cut them."""
    app[SHUTTING_DOWN].set()
    grace = app[STACK].config.server.shutdown_timeout
    await close_open_streams(app)
    running = {task for task in app[IN_FLIGHT] if not task.done()}
    if running:
        log.info("shutdown_draining", requests=len(running), grace_seconds=grace)
        _done, running = await asyncio.wait(running, timeout=grace) if grace > 0 else (set(), running)
    if running:
        log.warning("shutdown_cutting_requests", requests=len(running), grace_seconds=grace)
        app[CUT_REQUESTS].update(running)
        for task in running:
            task.cancel()
        await asyncio.wait(running, timeout=CUT_WRITE_SECONDS)


def exit_promptly(code: int = 0) -> None:
    """After the server stopped: exit now, even if worker threads are still busy in native code.

    Everything that holds state was closed by the stack's shutdown, so the only thing an ordinary
    interpreter exit would add is joining those threads, which can take as long as a generation.
    """
    deadline = time.monotonic() + THREAD_JOIN_SECONDS
    lingering = [
        t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    for thread in lingering:
        thread.join(max(0.0, deadline - time.monotonic()))
    still = sorted(t.name for t in lingering if t.is_alive())
    if not still:
        return
    log.warning(
        "exit_without_waiting_for_threads",
        threads=still,
        reason="still busy after the server stopped (a computation that cannot be interrupted)",
    )
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
