"""Server-sent events: chunks are written as they arrive, never buffered.

The first item is pulled before the response starts, so a failure before any output (unknown
model, upstream down) still gets its real HTTP status. After that, an error becomes a last
``data: {"error": ...}`` event. On shutdown, open streams get such an event and are closed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel

from lamina.errors import LaminaError
from lamina.server.keys import ACTIVE_STREAMS, SHUTTING_DOWN

log = structlog.get_logger(__name__)
_END = object()
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def encode_event(item: Any) -> bytes:
    if isinstance(item, BaseModel):
        payload = item.model_dump_json().encode()
    else:
        payload = json.dumps(item, separators=(",", ":")).encode()
    return b"data: " + payload + b"\n\n"


def _error_event(message: str, error_type: str, status: int | None = None) -> bytes:
    err: dict[str, Any] = {"message": message, "type": error_type}
    if status is not None:
        err["code"] = status
    return b"data: " + json.dumps({"error": err}).encode() + b"\n\n"


async def stream_response(
    request: web.Request, items: AsyncIterator[Any], *, openai: bool
) -> web.StreamResponse:
    first = await anext(items, _END)  # errors here propagate as ordinary HTTP errors
    response = web.StreamResponse(status=200, headers=SSE_HEADERS)
    await response.prepare(request)
    task = asyncio.current_task()
    active = request.app[ACTIVE_STREAMS]
    if task is not None:
        active.add(task)
    try:
        item = first
        while item is not _END:
            await response.write(encode_event(item))
            item = await anext(items, _END)
        if openai:
            await response.write(b"data: [DONE]\n\n")
    except asyncio.CancelledError:
        if not request.app[SHUTTING_DOWN].is_set():
            raise
        await _try_write(
            response,
            _error_event("the server is shutting down; retry the request", "service_unavailable", 503),
        )
    except (ConnectionResetError, ConnectionError) as exc:
        log.info("stream_client_gone", reason=str(exc))
        return response
    except LaminaError as exc:
        log.warning("stream_failed", status=exc.status, error=exc.message)
        await _try_write(response, _error_event(exc.client_message, exc.error_type, exc.status))
    except Exception as exc:
        log.exception("stream_crashed")
        await _try_write(
            response, _error_event(f"internal error: {type(exc).__name__}: {exc}", "server_error", 500)
        )
    finally:
        if task is not None:
            active.discard(task)
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:  # the upstream is already broken; nothing more to report
                pass
    try:
        await response.write_eof()
    except (ConnectionResetError, ConnectionError):
        pass
    return response


async def _try_write(response: web.StreamResponse, data: bytes) -> None:
    try:
        await response.write(data)
    except (ConnectionResetError, ConnectionError):
        pass


async def close_open_streams(app: web.Application) -> None:
    """on_shutdown: tell every open stream the server is going away."""
    app[SHUTTING_DOWN].set()
    tasks = list(app[ACTIVE_STREAMS])
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=2.0)
