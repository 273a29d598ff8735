"""The current span, read and set in OpenTelemetry's context with fewer Python calls.

OpenTelemetry's API reaches the current span through five Python frames (``get_current_span`` ->
``get_value`` -> ``get_current`` -> the runtime context -> a ContextVar) plus an ABC ``isinstance``, and
makes a span current through six (``set_span_in_context``, ``set_value``, ``attach``, ...). A request
does that a dozen times: ~40 Python calls, a fifth of what telemetry cost a chat completion
(bench/telemetry_instructions.py). When the runtime context is OpenTelemetry's default,
``ContextVarsRuntimeContext`` (unless ``OTEL_PYTHON_CONTEXT`` picks another), these functions read and
write its ContextVar directly: the same Context objects, under the same key, so the API's own functions
(``trace.get_current_span``, ``context.attach``, a third-party instrumentation) see exactly what these
set, and the other way round. With any other runtime context they call the public API.

It relies on two names OpenTelemetry does not export (``opentelemetry.context._RUNTIME_CONTEXT`` and
``opentelemetry.trace.propagation._SPAN_KEY``); tests/telemetry/test_context.py checks both ways of
reading and writing agree, so an OpenTelemetry release that changes them fails there, not in production.
"""

from __future__ import annotations

from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context.context import Context
from opentelemetry.trace import INVALID_SPAN, Span, TraceState


def _fast_var() -> Any:
    """The default runtime context's ContextVar, or None (another runtime context: use the API)."""
    try:
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
        from opentelemetry.trace.propagation import _SPAN_KEY  # noqa: F401 - checked to exist

        runtime = otel_context._RUNTIME_CONTEXT  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        return None
    if type(runtime) is not ContextVarsRuntimeContext:
        return None
    return getattr(runtime, "_current_context", None)


_VAR = _fast_var()
if _VAR is not None:
    from opentelemetry.trace.propagation import _SPAN_KEY

    _get = _VAR.get
    _set = _VAR.set
    _reset = _VAR.reset

    def current_span(context: Context | None = None) -> Span:
        """The span current in ``context`` (default: now), or INVALID_SPAN: ``trace.get_current_span``."""
        span = (_get() if context is None else context).get(_SPAN_KEY)
        return span if span is not None else INVALID_SPAN

    def attach_span(span: Span) -> Token[Context]:
        """Make ``span`` current until :func:`detach`: ``attach(set_span_in_context(span))``."""
        return _set(Context({**_get(), _SPAN_KEY: span}))

    def detach(token: Token[Context]) -> None:
        """Undo :func:`attach_span`. A token from another task's context (an async generator closed
        elsewhere) restores nothing here, as OpenTelemetry's ``detach`` (which logs it) does."""
        try:
            _reset(token)
        except ValueError:
            pass

else:  # pragma: no cover - a non-default OTEL_PYTHON_CONTEXT

    def current_span(context: Context | None = None) -> Span:
        return trace.get_current_span(context)

    def attach_span(span: Span) -> Token[Context]:
        return otel_context.attach(trace.set_span_in_context(span))

    def detach(token: Token[Context]) -> None:
        otel_context.detach(token)


FAST = _VAR is not None
# For the few hottest callers (the lean tracer, traceparent): the current Context in one C call, and the key
# its span is under (``current_context().get(SPAN_KEY)`` is :func:`current_span` without its Python call,
# None for no span); None with a non-default runtime context: use current_span.
current_context = _VAR.get if _VAR is not None else None
SPAN_KEY = _SPAN_KEY if _VAR is not None else None
# The trace state of a trace this process starts (the lean tracer's): one object, so a check for it is an
# identity test rather than TraceState's __len__ (a Python call).
EMPTY_TRACE_STATE = TraceState()
