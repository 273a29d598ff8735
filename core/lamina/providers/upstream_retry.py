"""Retries of upstream HTTP calls: which failures, how long to wait, when to give up.

``lamina.providers.http_upstream.UpstreamClient`` retries a call that failed before its upstream
answered anything useful: HTTP 429, 502, 503 and 504, a refused or reset connection, a connection
the server closed before answering. It waits the upstream's ``Retry-After`` (seconds or an HTTP
date) when it sends one, else an exponential backoff with jitter (``base_delay`` doubled per
attempt, at most ``max_delay``, times a random 0.5-1.0 so that many clients do not retry in step).
Attempts are bounded (``max_retries`` after the first) and so is the time: a retry that would start
later than ``max_seconds`` after the first attempt is not made; the last failure goes to the caller
(a 429 with its ``Retry-After``), so a client learns when to come back rather than waiting here.

Not retried: 4xx other than 429 (the request is wrong), timeouts (the read timeout already waited
long; a retry would double it), names that do not resolve, and a stream that has started (its
chunks reached the client). Health probes turn retries off (``no_retries``): they are bounded to a
few seconds and must say "down" at once.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import aiohttp

from lamina.errors import LaminaError, RateLimitError, UpstreamError

RETRIED_STATUSES = frozenset({429, 502, 503, 504})

_RETRIES_ON: ContextVar[bool] = ContextVar("lamina_upstream_retries_on", default=True)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2  # attempts after the first
    max_seconds: float = 30.0  # no retry starts later than this after the first attempt
    base_delay: float = 0.5
    max_delay: float = 8.0


@contextmanager
def no_retries() -> Iterator[None]:
    """Upstream calls made inside the block are tried once (a bounded probe must not wait out backoffs)."""
    token = _RETRIES_ON.set(False)
    try:
        yield
    finally:
        _RETRIES_ON.reset(token)


def retries_on() -> bool:
    return _RETRIES_ON.get()


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: a number of seconds or an HTTP date; None if absent or
    unreadable (a date in the past is 0)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds == float("inf"):  # NaN, inf
        return None
    return max(seconds, 0.0)


def is_retryable(exc: BaseException) -> bool:
    """Whether a call that failed with ``exc`` (as UpstreamClient maps failures) may be tried again."""
    if isinstance(exc, RateLimitError):
        return True
    if not isinstance(exc, UpstreamError):
        return False
    if exc.upstream_status is not None:
        return exc.upstream_status in RETRIED_STATUSES
    cause = exc.__cause__
    if isinstance(cause, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return False
    if isinstance(cause, aiohttp.ClientConnectorError):
        return not isinstance(cause.os_error, socket.gaierror)  # a name that does not resolve stays so
    return isinstance(cause, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError)


def upstream_retry_after(exc: LaminaError) -> str | None:
    """The ``Retry-After`` header the upstream sent with the failure, if any."""
    return exc.headers.get("Retry-After") or getattr(exc, "upstream_retry_after", None)


def next_wait(exc: LaminaError, retry: int, elapsed: float, policy: RetryPolicy) -> float | None:
    """Seconds to wait before retry number ``retry`` (0-based), or None: give up now."""
    if retry >= policy.max_retries or not is_retryable(exc):
        return None
    wait = retry_after_seconds(upstream_retry_after(exc))
    if wait is None:
        wait = min(policy.max_delay, policy.base_delay * 2**retry) * random.uniform(0.5, 1.0)
    if elapsed + wait > policy.max_seconds:
        return None
    return wait
