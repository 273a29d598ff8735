"""What aiohttp's HTTP protocol logs (its ``aiohttp.server`` logger, replaced through the app's
``handler_args``): a request the HTTP parser refuses (a CR inside a header value, a header over
``max_field_size``, a malformed request line) is one warning line naming the problem, instead of
aiohttp's stack trace quoting the raw bytes, which may hold a bearer token or provider key. Anything
else aiohttp reports keeps its stack trace (a bug to find)."""

from __future__ import annotations

import logging
import re
from typing import Any

import structlog
from aiohttp.http_exceptions import HttpProcessingError

log = structlog.get_logger("lamina.http")
_AIOHTTP = logging.getLogger("aiohttp.server")
_QUOTED_BYTES = re.compile(r"\bb['\"]")


class ProtocolLogger:
    """The ``logger`` aiohttp's request handler calls (``debug`` and ``exception``)."""

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            return  # non-HTTP traffic on the port: aiohttp's own choice of debug, without the bytes
        _AIOHTTP.debug(msg, *args, **kwargs)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            lines = (exc.message or "").strip().splitlines()
            # The first line, cut before any quoted request bytes ("Got more than 65536 bytes when
            # reading: b'...'").
            problem = _QUOTED_BYTES.split(lines[0])[0].rstrip(" :.") if lines else None
            log.warning(
                "bad_http_request",
                status=exc.code,
                error=type(exc).__name__,
                problem=problem,
            )
            return
        _AIOHTTP.exception(msg, *args, **kwargs)

    error = exception
