"""Server-sent events: chunks are written as they arrive, never buffered.

The first item is pulled before the response starts, so a failure before any output (unknown
model, upstream down) still gets its real HTTP status. After that, an error becomes a last
``data: {"error": ...}`` event. On shutdown, open streams get such an event and are closed.

An OpenAI stream that ends normally ends with ``data: [DONE]``, as OpenAI's do, except for
llama-stack-client (``ends_with_done``): the one place that decides it, per request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel

from lamina import fast_json
from lamina.errors import LaminaError
from lamina.server.keys import ACTIVE_STREAMS, SHUTTING_DOWN

log = structlog.get_logger(__name__)
_END = object()
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


DONE_EVENT = b"data: [DONE]\n\n"
# The User-Agent of llama-stack-client (Python: "<class name>/Python <version>"; JS: "LlamaStackClient/JS").
LLAMA_STACK_CLIENT_AGENTS = ("LlamaStackClient/", "AsyncLlamaStackClient/")


def ends_with_done(headers: Mapping[str, str]) -> bool:
    """Whether an OpenAI stream to the client that sent these request headers ends with ``data: [DONE]``.

    OpenAI ends its streams so, and the OpenAI SDKs, curl users and most OpenAI clients expect it;
    clients that say nothing about themselves get it. llama-stack-client does not: its releases from
    0.2 to 0.5 (0.2.12 included) parse each event's data as JSON and fail on ``[DONE]`` (a
    JSONDecodeError), Llama Stack's own server never sends it, and no release needs it (a stream ends
    with its response). That client names itself in its User-Agent (``LlamaStackClient/Python 0.2.12``,
    ``AsyncLlamaStackClient/Python ...``) and in ``X-LlamaStack-Client-Version``; the header alone
    is not enough when the User-Agent is an OpenAI SDK's (``OpenAI/Python 1.x``, ``AsyncOpenAI/...``).
    """
    agent = headers.get("User-Agent", "")
    if agent.startswith(LLAMA_STACK_CLIENT_AGENTS):
        return False
    return "X-LlamaStack-Client-Version" not in headers or "OpenAI/" in agent


def encode_event(item: Any) -> bytes:
    if isinstance(item, BaseModel):
        payload = item.model_dump_json().encode()
    else:
        payload = fast_json.dumps(item)  # ~10x json.dumps on float-heavy chunks (lamina.fast_json)
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
    done = openai and ends_with_done(request.headers)
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
        if done:
            await response.write(DONE_EVENT)
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
