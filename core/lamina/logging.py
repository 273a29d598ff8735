"""structlog set-up: one line per event, with the request id bound for the whole request."""

from __future__ import annotations

import logging
import os
import sys

import structlog

from lamina import redaction


def configure_logging(level: str | None = None, fmt: str | None = None) -> None:
    """``LAMINA_LOG_LEVEL`` (info) and ``LAMINA_LOG_FORMAT`` (console on a tty, else json)."""
    level_name = (level or os.environ.get("LAMINA_LOG_LEVEL") or "info").upper()
    numeric = logging.getLevelNamesMapping().get(level_name, logging.INFO)
    fmt = fmt or os.environ.get("LAMINA_LOG_FORMAT") or ("console" if sys.stderr.isatty() else "json")
    renderer = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redaction.structlog_processor,  # secrets never reach a log line (lamina.redaction)
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=max(numeric, logging.WARNING), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
