"""Span attributes built from raw values wherever that is cheapest: on the request path, or in the
export worker.

A call site that knows a span's facts as plain values (token counts, ids, finish reasons) hands them to
:func:`derive` with the name of the function that turns them into attributes (:func:`builders`). A span
that can defer them (``defer``: a lean span whose every processor is the export worker's) keeps the raw
values and its export record carries them, with the request's own secrets as they are when it ends;
the worker process builds, redacts and adds the attributes there (:func:`build`). Any other span (the
SDK tracer, in-process processors) gets the same attributes at once, through the same function and the
same redaction. So the attributes are identical either way; only where their dicts are made, cleaned and
marshalled changes (docs/benchmarks.md, "Telemetry cost").

Raw values should be what ``marshal`` takes (str, int, float, bool, None, and tuples, lists and dicts of
them): a record holding another value is built in the gateway instead (slower, same attributes). Tuples
rather than lists and dicts: a record of tuples and atoms only is untracked by the garbage collector while
it waits for its batch. They must not change once handed over: the export processor reads them when it
marshals the record's batch (up to a second after the span ended).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from lamina.redaction import REQUEST_SECRETS

Builder = Callable[..., dict[str, Any]]
_builders: dict[str, Builder] | None = None


def builders() -> dict[str, Builder]:
    """Name -> function (raw values -> attributes, None values allowed: they are dropped)."""
    global _builders
    if _builders is None:
        from lamina.telemetry import genai, http_spans

        _builders = {
            "genai.call": genai.call_attributes,
            "http.server": http_spans.server_attributes,
        }
    return _builders


def derive(span: Any, name: str, *raw: Any) -> None:
    """Give ``span`` the attributes ``builders()[name](*raw)`` makes: now, or in the export worker."""
    defer = getattr(span, "defer", None)
    if defer is not None:
        defer(name, raw)
    elif span.is_recording():
        span.set_attributes(build([(name, raw)], REQUEST_SECRETS.get()))


def attribute_value(value: Any) -> Any:
    """``value`` as a span attribute holds it: str, bool, int, float, or a tuple of them; anything else as
    its text (made before redaction, so a secret in that text is masked too)."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, list | tuple):
        return tuple(v if isinstance(v, _SCALARS) else str(v) for v in value)
    return str(value)


_SCALARS = (str, bool, int, float)


def build(deferred: Iterable[tuple[str, tuple[Any, ...]]], secrets: Iterable[str] = ()) -> dict[str, Any]:
    """The attributes of a span's deferred ``(name, raw values)`` entries, made span attributes and
    redacted by ``spans.clean`` as on the request path (None dropped, other values by
    :func:`attribute_value`), with that request's own ``secrets`` (its token, its provider data:
    ``lamina.redaction.REQUEST_SECRETS`` where the span ended) and the process's known ones."""
    from lamina.telemetry.spans import clean

    out: dict[str, Any] = {}
    table = builders()
    token = REQUEST_SECRETS.set(tuple(secrets))
    try:
        for name, raw in deferred:
            out.update(clean(table[name](*raw)))
    finally:
        REQUEST_SECRETS.reset(token)
    return out
