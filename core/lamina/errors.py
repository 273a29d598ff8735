"""Errors that map to HTTP statuses: raise these anywhere; the server renders them.

Every message says what happened, which input caused it and what to do next.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

# Error messages echo user input (a model id, a path, a field value); a client that sends 1 MB must
# not get 1 MB (or three copies of it) back. Every message and echoed field is cut to this size.
MAX_MESSAGE_CHARS = 2048
MAX_EXTRA_CHARS = 256


def cap_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` cut in the middle to at most ``limit`` characters, keeping its start and its end.

    The start says what happened and the end what to do, so both survive; an echoed value in the
    middle is what gets cut.
    """
    if len(text) <= limit:
        return text
    marker = f" ...[{len(text) - limit} characters cut]... "
    keep = max(limit - len(marker), 0)
    head = keep - keep // 3
    return text[:head] + marker + text[len(text) - (keep - head) :]


def _cap_value(value: Any) -> Any:
    if isinstance(value, str):
        return cap_text(value, MAX_EXTRA_CHARS)
    if isinstance(value, dict):
        return {k: _cap_value(v) for k, v in list(value.items())[:50]}
    if isinstance(value, (list, tuple)):
        return [_cap_value(v) for v in value[:50]]
    return value


class LaminaError(Exception):
    """Base error with an HTTP status and an OpenAI-style error type.

    ``message`` is capped (``cap_text``) however it is set, so no rendering of an error (JSON body,
    SSE error event, log line) carries an unbounded echo of the request.
    """

    status: int = 500
    error_type: str = "server_error"

    def __init__(self, message: str, *, param: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.extra = extra
        self.headers: dict[str, str] = {}

    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, value: str) -> None:
        self._message = cap_text(str(value))
        self.args = (self._message,)

    @property
    def client_message(self) -> str:
        """What the client is told; ``message`` (logged) may say more, e.g. an internal address."""
        return self.message

    def to_body(self) -> dict[str, Any]:
        # `detail` is what llama-stack-client reads; `error` is what the OpenAI SDK reads.
        param = cap_text(self.param, MAX_EXTRA_CHARS) if isinstance(self.param, str) else self.param
        message = self.client_message
        err: dict[str, Any] = {"message": message, "type": self.error_type, "param": param}
        err.update(_cap_value(self.extra))
        return {"detail": message, "error": err}


class BadRequestError(LaminaError):
    """The request is invalid, or asks for something this provider cannot do: name the field in ``param``."""

    status = 400
    error_type = "invalid_request_error"


class UnauthorizedError(LaminaError):
    """The request carries no valid credentials (a missing or bad bearer token)."""

    status = 401
    error_type = "authentication_error"


class ForbiddenError(LaminaError):
    """The caller is known but not allowed to do this (an access rule forbids it)."""

    status = 403
    error_type = "permission_error"


class NotFoundError(LaminaError):
    """The request names a resource (model, shield, file, vector DB, ...) that does not exist."""

    status = 404
    error_type = "not_found_error"


class ConflictError(LaminaError):
    """The request clashes with the current state (an id already taken by something else)."""

    status = 409
    error_type = "conflict_error"


class QuotaExceededError(ConflictError):
    """A stored-data quota is full: the request fits once something is deleted (or the limit raised)."""

    error_type = "quota_exceeded"


class PayloadTooLargeError(LaminaError):
    """The request or an upload is larger than a configured limit: name the limit."""

    status = 413
    error_type = "invalid_request_error"


class RateLimitError(LaminaError):
    """Too many requests; the client may retry later."""

    status = 429
    error_type = "rate_limit_error"


class NotImplementedByProviderError(LaminaError):
    """This provider does not serve this method or feature at all: say what it serves."""

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
    """The provider's upstream did not answer in time."""

    status = 504
    error_type = "upstream_timeout"


class ServiceUnavailableError(LaminaError):
    """Not ready (a provider still starting, or down): the client may retry (``retry_after``)."""

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


# -- pydantic validation errors, described one way ------------------------------------------------


def format_path(path: tuple[Any, ...]) -> str:
    """``("providers", "inference", 0, "config")`` -> ``providers.inference[0].config``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<top level>"


def show_value(value: Any, limit: int = 80) -> str:
    """A value a user sent, short: strings quoted, anything else as JSON."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class FieldProblem:
    """One problem of a pydantic ValidationError: where (``messages[0].role``) and what."""

    path: str
    message: str  # pydantic's message, or "required, but missing"
    got: str | None  # the offending value, shown (None for a missing field)
    type: str  # pydantic's error type, e.g. "missing", "extra_forbidden", "string_type"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" + ("" if self.got is None else f" (got {self.got})")


def field_problems(
    exc: ValidationError,
    prefix: tuple[Any, ...] = (),
    *,
    drop: frozenset[str] = frozenset(),
    top: str = "<top level>",
) -> list[FieldProblem]:
    """Every problem of ``exc`` once, its path under ``prefix`` (``top`` names an empty path).

    Pydantic puts the union member or validator that failed in an error's location (``str``,
    ``function-after[...]``); those are dropped, and so are the location parts in ``drop`` (the tag
    values of a discriminated union, say).
    """
    out: list[FieldProblem] = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not _is_union_tag(p) and p not in drop)
        if err["type"] == "missing":
            message, got = "required, but missing", None
        else:
            message, got = err["msg"].removeprefix("Value error, "), show_value(err.get("input"))
        path = format_path((*prefix, *loc)) if prefix or loc else top
        problem = FieldProblem(path, message, got, err["type"])
        if problem not in out:
            out.append(problem)
    return out


def describe_validation_error(
    exc: ValidationError,
    prefix: tuple[Any, ...] = (),
    *,
    limit: int = 10,
    drop: frozenset[str] = frozenset(),
    top: str = "<top level>",
) -> str:
    """``exc``'s problems on one line: ``a.b: what is wrong (got X); c: ...; and N more``."""
    problems = field_problems(exc, prefix, drop=drop, top=top)
    more = len(problems) - limit
    return "; ".join(map(str, problems[:limit])) + (f"; and {more} more" if more > 0 else "")


def validation_error(
    exc: ValidationError,
    where: str = "request",
    prefix: tuple[Any, ...] = (),
    *,
    limit: int = 10,
    drop: frozenset[str] = frozenset(),
) -> BadRequestError:
    """A 400 naming every bad field of ``where`` (``invalid request body: messages[0].role: ...``);
    ``param`` is the first bad field."""
    problems = field_problems(exc, prefix, drop=drop, top=where)
    first = problems[0].path if problems else where
    text = describe_validation_error(exc, prefix, limit=limit, drop=drop, top=where)
    return BadRequestError(f"invalid {where}: {text}", param=first)


def _is_union_tag(part: Any) -> bool:
    if not isinstance(part, str):
        return False
    return (
        part in ("str", "bool", "int", "float", "none")
        or "[" in part
        or part.startswith(("function-", "constrained-", "lax-"))
    )
