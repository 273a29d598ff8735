"""Errors that map to HTTP statuses: raise these anywhere; the server renders them.

Every message says what happened, which input caused it and what to do next.
"""

from __future__ import annotations

from typing import Any


class LaminaError(Exception):
    """Base error with an HTTP status and an OpenAI-style error type."""

    status: int = 500
    error_type: str = "server_error"

    def __init__(self, message: str, *, param: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.extra = extra
        self.headers: dict[str, str] = {}

    def to_body(self) -> dict[str, Any]:
        # `detail` is what llama-stack-client reads; `error` is what the OpenAI SDK reads.
        err: dict[str, Any] = {"message": self.message, "type": self.error_type, "param": self.param}
        err.update(self.extra)
        return {"detail": self.message, "error": err}


class BadRequestError(LaminaError):
    status = 400
    error_type = "invalid_request_error"


class UnauthorizedError(LaminaError):
    status = 401
    error_type = "authentication_error"


class ForbiddenError(LaminaError):
    status = 403
    error_type = "permission_error"


class NotFoundError(LaminaError):
    status = 404
    error_type = "not_found_error"


class ConflictError(LaminaError):
    status = 409
    error_type = "conflict_error"


class PayloadTooLargeError(LaminaError):
    status = 413
    error_type = "invalid_request_error"


class RateLimitError(LaminaError):
    status = 429
    error_type = "rate_limit_error"


class NotImplementedByProviderError(LaminaError):
    status = 501
    error_type = "not_implemented_error"


class UpstreamError(LaminaError):
    """The provider's upstream service failed or answered something unusable."""

    status = 502
    error_type = "upstream_error"

    def __init__(self, provider_id: str, message: str, *, upstream_status: int | None = None) -> None:
        super().__init__(f"provider '{provider_id}': {message}", provider_id=provider_id)
        self.provider_id = provider_id
        self.upstream_status = upstream_status


class UpstreamTimeoutError(UpstreamError):
    status = 504
    error_type = "upstream_timeout"


class ServiceUnavailableError(LaminaError):
    status = 503
    error_type = "service_unavailable"

    def __init__(self, message: str, *, retry_after: int | None = None, **extra: Any) -> None:
        super().__init__(message, **extra)
        if retry_after is not None:
            self.headers["Retry-After"] = str(retry_after)


class ConfigError(Exception):
    """The run config is invalid; raised before any provider starts."""


class PluginError(Exception):
    """Plugins could not be loaded or conflict with each other."""
