"""Span helpers: the one way the core and plugins open spans.

Every helper starts with one ``active()`` check and does nothing more when telemetry is off: no
attribute dict is built, no tracer is looked up. When on, spans come from the tracer of the active
telemetry provider (cached per activation).

How a call site uses them::

    with spans.span("vector_io.query", {"lamina.resource.id": db_id}) as span:
        result = await query()
        spans.set_attributes(span, {"lamina.vector.hits": len(result.chunks)})  # span is None when off

For attributes that cost something to compute, check ``spans.recording()`` first. A span around an
async iterator (a stream, an agent turn) uses :func:`start_span` and :func:`traced_iterator`: the
span is the current one during each step of the iterator and ends when the iterator ends, fails or
is closed (a client that goes away).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from lamina.redaction import MASK, is_secret_key, redact, scrub_text
from lamina.telemetry import state as _state
from lamina.telemetry.context import attach_span, current_span, detach
from lamina.telemetry.derived import attribute_value
from lamina.telemetry.state import TelemetrySettings, active

TRACER_NAME = "lamina"
_tracers: tuple[TelemetrySettings, trace.Tracer] | None = None

INTERNAL = SpanKind.INTERNAL
SERVER = SpanKind.SERVER
CLIENT = SpanKind.CLIENT
# What a span's attributes may hold (OpenTelemetry refuses None and other types).
AttributeValue = str | bool | int | float | list[str] | list[int] | list[float] | list[bool]


def tracer() -> trace.Tracer | None:
    """The active provider's tracer, or None when telemetry is off."""
    global _tracers
    settings = _state._active  # active() without its call: this runs several times a request
    if settings is None:
        return None
    cached = _tracers
    if cached is not None and cached[0] is settings:
        return cached[1]
    made = settings.tracer_provider.get_tracer(TRACER_NAME)
    _tracers = (settings, made)
    return made


def recording() -> bool:
    """Whether the current span records (telemetry on and this trace sampled): the check to make
    before computing an attribute that costs something."""
    if active() is None:
        return False
    return current_span().is_recording()


def capture_content() -> bool:
    """Whether spans may carry prompt and completion text (the telemetry provider's capture_content)."""
    settings = active()
    return settings is not None and settings.capture_content


def clean(attributes: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """``attributes`` without the None values OpenTelemetry refuses (and warns about per span), values of
    other types as attributes hold them (lamina.telemetry.derived.attribute_value: a dict as its text, a
    list as a tuple), and with secrets masked (lamina.redaction)."""
    out: dict[str, AttributeValue] = {}
    for k, v in attributes.items():
        kind = type(v)
        if kind is str:  # most values: redact()'s string case, without its call
            out[k] = MASK if v and is_secret_key(k) else scrub_text(v)
        elif kind in _NUMBERS:  # a number holds no secret
            out[k] = v
        elif v is not None:
            out[k] = redact(attribute_value(v), k)
    return out


_NUMBERS = frozenset((int, float, bool))


def start_span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    context: otel_context.Context | None = None,
    links: list[trace.Link] | None = None,
) -> Span | None:
    """A started span, child of the current one (or of ``context``), not made current; None when off.
    End it with :func:`end`."""
    tr = tracer()
    if tr is None:
        return None
    return tr.start_span(
        name, context=context, kind=kind, attributes=clean(attributes) if attributes else None, links=links
    )


@contextlib.contextmanager
def span(
    name: str, attributes: Mapping[str, Any] | None = None, *, kind: SpanKind = SpanKind.INTERNAL
) -> Iterator[Span | None]:
    """A span around a block, current inside it; the block's exception is recorded and re-raised.
    Yields None when telemetry is off. Not for blocks that yield (generators): see traced_iterator."""
    tr = tracer()
    if tr is None:
        yield None
        return
    started = tr.start_span(name, kind=kind, attributes=clean(attributes) if attributes else None)
    token = attach_span(started)
    try:
        yield started
    except BaseException as exc:
        record_error(started, exc)
        raise
    finally:
        detach(token)
        started.end()


@contextlib.contextmanager
def current(span_: Span | None) -> Iterator[None]:
    """Make ``span_`` the current span inside the block (nothing when it is None)."""
    if span_ is None:
        yield
        return
    token = attach_span(span_)
    try:
        yield
    finally:
        detach(token)


def set_attributes(span_: Span | None, attributes: Mapping[str, Any]) -> None:
    if span_ is not None and span_.is_recording():
        span_.set_attributes(clean(attributes))


def error_type(exc: BaseException) -> str:
    """error.type of a failure: the HTTP status of a LaminaError (what the client saw), else the
    exception's class name."""
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return str(status)
    return type(exc).__name__


def record_error(span_: Span | None, exc: BaseException) -> None:
    """Mark ``span_`` failed by ``exc``: status ERROR with the exception's message, error.type, and
    the exception event. A cancellation (a client that went away) is not an error: it is noted as
    ``lamina.cancelled`` and the status stays unset."""
    if span_ is None or not span_.is_recording():
        return
    import asyncio

    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        span_.set_attribute("lamina.cancelled", True)
        return
    span_.set_attribute("error.type", error_type(exc))
    span_.set_status(Status(StatusCode.ERROR, _message(exc)))
    span_.record_exception(exc, escaped=True)


def _message(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    return str(message if isinstance(message, str) else exc)[:500]


def end(span_: Span | None, exc: BaseException | None = None) -> None:
    if span_ is None:
        return
    if exc is not None:
        record_error(span_, exc)
    span_.end()


async def traced_iterator(
    span_: Span,
    iterator: AsyncIterator[Any],
    on_item: Callable[[Any], None] | None = None,
    on_end: Callable[[BaseException | None], None] | None = None,
) -> AsyncIterator[Any]:
    """Iterate ``iterator`` with ``span_`` current during each step; end ``span_`` when it ends, fails
    or is closed early. ``on_item`` sees every item (time to first token, usage), ``on_end`` the outcome
    (None: ended normally) before the span ends."""
    failure: BaseException | None = None
    try:
        while True:
            token = attach_span(span_)
            try:
                item = await iterator.__anext__()
            except StopAsyncIteration:
                break
            finally:
                detach(token)
            if on_item is not None:
                on_item(item)
            yield item
    except BaseException as exc:
        failure = exc
        raise
    finally:
        aclose = getattr(iterator, "aclose", None)
        if failure is not None and aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()  # the inner generator's own finally runs now, not at garbage collection
        if on_end is not None:
            try:
                on_end(failure)
            except Exception:  # telemetry never breaks a stream
                pass
        end(span_, failure)
