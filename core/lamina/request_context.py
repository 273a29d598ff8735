"""Per-request context (contextvars): request id and the caller's provider data."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

REQUEST_ID: ContextVar[str | None] = ContextVar("lamina_request_id", default=None)
PROVIDER_DATA: ContextVar[dict[str, Any] | None] = ContextVar("lamina_provider_data", default=None)


def provider_data() -> dict[str, Any]:
    """The ``X-LlamaStack-Provider-Data`` JSON of the current request (empty outside one)."""
    return PROVIDER_DATA.get() or {}
