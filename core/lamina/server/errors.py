"""Rendering errors as JSON: ``detail`` for llama-stack-client, ``error`` for the OpenAI SDK."""

from __future__ import annotations

import json

from aiohttp import web

from lamina.errors import LaminaError


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
