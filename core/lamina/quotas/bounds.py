"""``server.request_bounds``: limits on the request fields that multiply a request's work (choices,
completion tokens, batch items, dataset rows), checked on every route right after its request is
parsed: a request over a bound is a 400 naming the field, the bound and the setting that raises it.

Sizes have their own settings and answer 413: the JSON body ``server.max_request_body_bytes``, an
upload the files provider's ``max_file_size``, a batch's input lines the batches provider's
``max_lines`` (docs/security.md lists them all).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lamina.errors import BadRequestError


class RequestBounds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_n: int = Field(
        default=16, ge=1, le=128, description="Choices one completion request may ask for (`n`)."
    )
    max_tokens: int = Field(
        default=32768,
        ge=1,
        description="Completion tokens one request may ask for (`max_tokens`, `max_completion_tokens`, "
        "`sampling_params.max_tokens`).",
    )
    batch_inference_max_items: int = Field(
        default=256,
        ge=1,
        le=256,
        description="Items of one batch-completion or batch-chat-completion request (`content_batch`, "
        "`messages_batch`).",
    )
    dataset_append_max_rows: int = Field(
        default=10_000, ge=1, description="Rows one append-rows request may add (`rows`)."
    )
    dataset_iterrows_max_limit: int = Field(
        default=100_000,
        ge=1,
        description="The largest `limit` of one iterrows page (omitted or -1 pages every row, at most "
        "100,000 a page).",
    )


Check = Callable[[Any], None]


def _too_many(field: str, value: int, limit: int, setting: str, what: str) -> BadRequestError:
    return BadRequestError(
        f"{field}: {value} {what} asked; this server allows at most {limit} (server.request_bounds.{setting} "
        f"in the run config raises it)",
        param=field,
        limit=limit,
    )


def _int_at(request: Any, *path: str) -> int | None:
    value = request
    for name in path:
        value = getattr(value, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _field_check(
    path: tuple[str, ...], limit: int, setting: str, what: str, *, length: bool = False
) -> Check:
    field = ".".join(path)

    def check(request: Any) -> None:
        if length:
            items = getattr(request, path[0], None)
            value = len(items) if isinstance(items, list) else None
        else:
            value = _int_at(request, *path)
        if value is not None and value > limit:
            raise _too_many(field, value, limit, setting, what)

    return check


def request_check(model: type[BaseModel] | None, bounds: RequestBounds | None) -> Check | None:
    """The bound checks for a route's request model (None when none of its fields is bounded: no cost)."""
    if model is None or bounds is None:
        return None
    fields = model.model_fields
    checks: list[Check] = []
    if "n" in fields:
        checks.append(_field_check(("n",), bounds.max_n, "max_n", "choices"))
    for name in ("max_tokens", "max_completion_tokens"):
        if name in fields:
            checks.append(_field_check((name,), bounds.max_tokens, "max_tokens", "completion tokens"))
    if "sampling_params" in fields:
        checks.append(
            _field_check(
                ("sampling_params", "max_tokens"), bounds.max_tokens, "max_tokens", "completion tokens"
            )
        )
    for name in ("content_batch", "messages_batch"):
        if name in fields:
            checks.append(
                _field_check(
                    (name,),
                    bounds.batch_inference_max_items,
                    "batch_inference_max_items",
                    "items",
                    length=True,
                )
            )
    if model.__name__ == "AppendRowsRequest":
        checks.append(
            _field_check(
                ("rows",), bounds.dataset_append_max_rows, "dataset_append_max_rows", "rows", length=True
            )
        )
    if model.__name__ == "IterRowsRequest":
        checks.append(
            _field_check(("limit",), bounds.dataset_iterrows_max_limit, "dataset_iterrows_max_limit", "rows")
        )
    if not checks:
        return None

    def check_all(request: Any) -> None:
        for check in checks:
            check(request)

    return check_all
