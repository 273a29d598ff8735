"""Rendering errors as JSON: ``detail`` for llama-stack-client, ``error`` for the OpenAI SDK."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from lamina.envsubst import format_path
from lamina.errors import BadRequestError, LaminaError


def error_response(err: LaminaError) -> web.Response:
    return web.Response(
        status=err.status,
        body=json.dumps(err.to_body()).encode(),
        content_type="application/json",
        headers=err.headers,
    )


def plain_error(status: int, message: str, error_type: str = "invalid_request_error") -> web.Response:
    body = {"detail": message, "error": {"message": message, "type": error_type, "param": None}}
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json")


def validation_error(exc: ValidationError, where: str = "request") -> BadRequestError:
    """A 400 naming every bad field, e.g. ``messages[0].role: Input should be 'user' ...``."""
    problems = []
    first_field = None
    for err in exc.errors()[:10]:
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or "function-" in p)))
        field = format_path(loc) if loc else where
        first_field = first_field or field
        got = "" if err["type"] == "missing" else f" (got {_short(err.get('input'))})"
        problems.append(f"{field}: {err['msg']}{got}")
    more = len(exc.errors()) - 10
    text = "; ".join(problems) + (f"; and {more} more" if more > 0 else "")
    return BadRequestError(f"invalid {where}: {text}", param=first_field)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
