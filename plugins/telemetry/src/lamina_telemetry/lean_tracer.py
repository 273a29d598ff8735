"""A lean tracer: the OpenTelemetry trace API without the SDK's per-span machinery (the default tracer).

Why: with every sink on, the SDK's span objects cost the gateway ~80 µs of CPU per chat request
(TracerProvider/Tracer.start_span, Span.__init__, BoundedAttributes and its lock, attribute cleaning
through ABC isinstance checks; py-spy, docs/benchmarks.md "Telemetry cost"). Here a span is a
``__slots__`` object whose attributes are a plain dict, ids come from ``random.getrandbits`` and an
ended span is handed to the processors as it is: it reads like the SDK's ``ReadableSpan`` (name,
context, parent, kind, start_time, end_time, status, attributes, events, links,
instrumentation_scope, resource), which is all ``export_worker.record`` and ``store_writer``'s rows
read.

Sampling follows the SDK's ParentBased(TraceIdRatioBased(ratio)): a parent's sampled flag is
followed (remote or local); a new trace is sampled when the low 64 bits of its trace id are below
``ratio * 2**64``. A span that is not sampled is a ``NonRecordingSpan`` carrying its context, so W3C
propagation (which goes through the API's ``get_current_span``) keeps working. The parent is read with
``lamina.telemetry.context.current_span`` (OpenTelemetry's context, fewer Python calls).

When every processor is the export worker's, spans are :class:`DeferringLeanSpan`: attributes handed
over as raw values (lamina.telemetry.derived) are built in the worker, and a request's spans travel in
one record.

Span limits are the SDK's defaults (128 attributes, events and links a span; fixed, not read from the
environment). Not supported: the console sink (it needs the SDK's ``ReadableSpan.to_json``:
build_tracer_provider keeps the SDK when it is configured), ``Span.to_json``, SDK-style attribute
validation (values of other types are turned into strings, sequences into tuples, ``None`` dropped).
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    INVALID_SPAN,
    INVALID_SPAN_CONTEXT,
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
)
from opentelemetry.trace.status import Status, StatusCode

from lamina.redaction import REQUEST_SECRETS
from lamina.telemetry.context import EMPTY_TRACE_STATE, SPAN_KEY, current_context, current_span
from lamina.telemetry.derived import attribute_value

_UNSET = Status(StatusCode.UNSET)
_OK = StatusCode.OK
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
# The SDK's default span limits (OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT, ..._EVENT_..., ..._LINK_...): past
# them, new attributes, events and links are dropped (an attribute already set can still change).
MAX_ATTRIBUTES = 128
MAX_EVENTS = 128
MAX_LINKS = 128
_PRIMITIVE_TYPES = frozenset((str, bool, int, float))
_time_ns = time.time_ns
_getrandbits = random.getrandbits
_current_span = current_span
_request_secrets = REQUEST_SECRETS.get
_get_ident = threading.get_ident
_new_tuple = tuple.__new__
_new_object = object.__new__
# Module constants: an Enum member read through its class is a Python-level __getattr__ hook (70 ns).
_SERVER = SpanKind.SERVER
# By the member's id: hashing an Enum member is a Python call (Enum.__hash__), id() is not.
_KIND_VALUES = {id(kind): kind.value for kind in SpanKind}


class Resource(NamedTuple):
    attributes: Mapping[str, Any]


class InstrumentationScope(NamedTuple):
    name: str
    version: str | None = None
    schema_url: str | None = None


class Event(NamedTuple):
    name: str
    timestamp: int
    attributes: Mapping[str, Any] | None


class LeanSpan(trace.Span):
    __slots__ = (
        "_processors",
        "attributes",
        "context",
        "derived",
        "end_time",
        "events",
        "host",
        "instrumentation_scope",
        "kind",
        "links",
        "name",
        "parent",
        "resource",
        "riders",
        "start_time",
        "status",
        "thread",
    )

    # Made by LeanTracer.start_span only, which sets every slot itself (no __init__: a Python __init__ call
    # with ten arguments cost a tenth of the span).
    name: str
    context: SpanContext
    parent: SpanContext | None
    kind: SpanKind
    start_time: int
    end_time: int | None
    status: Status
    attributes: dict[str, Any]
    events: list[Event] | tuple[()]
    links: tuple[Link, ...]
    instrumentation_scope: InstrumentationScope
    resource: Resource
    _processors: tuple[Any, ...]
    # Used by DeferringLeanSpan only (slots here: one set of slots for both).
    derived: list[tuple[str, tuple[Any, ...]]] | None
    host: LeanSpan | None
    riders: list[LeanSpan] | None
    thread: int  # a request span's: the thread it ends on, the only one its riders may end on

    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attribute(self, key: str, value: Any) -> None:
        own = self.attributes
        if self.end_time is None and value is not None and (len(own) < MAX_ATTRIBUTES or key in own):
            own[key] = value if type(value) in _PRIMITIVE_TYPES else attribute_value(value)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self.end_time is None:
            own = self.attributes
            for key, value in attributes.items():
                if value is not None and (len(own) < MAX_ATTRIBUTES or key in own):
                    own[key] = value if type(value) in _PRIMITIVE_TYPES else attribute_value(value)

    def add_event(
        self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None
    ) -> None:
        if self.end_time is not None:
            return
        if not self.events:
            self.events = []
        elif len(self.events) >= MAX_EVENTS:
            return
        attrs = None
        if attributes:
            attrs = {k: attribute_value(v) for k, v in attributes.items() if v is not None}
        self.events.append(Event(name, timestamp or _time_ns(), attrs))  # type: ignore[union-attr]

    def add_link(self, context: SpanContext, attributes: Mapping[str, Any] | None = None) -> None:
        if self.end_time is None and context.is_valid and len(self.links) < MAX_LINKS:
            self.links = (*self.links, Link(context, attributes))

    def update_name(self, name: str) -> None:
        if self.end_time is None:
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self.end_time is not None or self.status.status_code is _OK:
            return  # the SDK's rule: OK is final
        if isinstance(status, Status):
            self.status = status
        else:
            self.status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, Any] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        attrs: dict[str, Any] = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(
                traceback.format_exception(type(exception), exception, exception.__traceback__)
            ),
            "exception.escaped": str(escaped),
        }
        if attributes:
            attrs.update(attributes)
        self.add_event("exception", attrs, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            return  # the SDK warns and ignores a second end
        self.end_time = end_time or _time_ns()
        for processor in self._processors:
            processor.on_end(self)

    def export_record(self) -> tuple[Any, ...]:
        """This ended span as ``lamina_telemetry.export_worker.record`` would make it, read straight
        from the slots and the SpanContext tuple (its properties are Python calls: ~3 µs a span)."""
        ctx = self.context
        parent = self.parent
        state = ctx[4]
        status = self.status
        scope = self.instrumentation_scope
        attributes = self.attributes
        derived = self.derived
        riders = self.riders
        return (
            self.name,
            ctx[0],
            ctx[1],
            ctx[3] & 0xFF,
            "" if state is EMPTY_TRACE_STATE or not state else state.to_header(),
            (parent[1], parent[2]) if parent is not None else None,
            _KIND_VALUES[id(self.kind)],
            self.start_time,
            self.end_time,
            0 if status is _UNSET else status.status_code.value,
            None if status is _UNSET else status.description,
            tuple(attributes.items()) if attributes else None,
            event_records(self.events) if self.events else None,
            link_records(self.links) if self.links else None,
            (scope.name, scope.version, scope.schema_url),
            tuple(derived) if derived else None,
            tuple([rider.export_record() for rider in riders]) if riders else None,
            # The request's own secrets, for the worker's redaction of deferred attributes (the riders'
            # too: they are the same request's, and its secrets only grow).
            _request_secrets() if derived or riders else (),
        )

    def __repr__(self) -> str:
        return f"LeanSpan({self.name!r}, trace_id={self.context.trace_id:032x})"


class DeferringLeanSpan(LeanSpan):
    """A lean span whose processors are all the export worker's (their ``builds_derived`` is true), which
    saves the request path two things:

    - ``lamina.telemetry.derived.derive`` hands it raw values, kept as they are and sent in its export
      record with the request's own secrets; the worker builds and redacts the attributes;
    - a span that ends while the request's SERVER span (its ``host``: the local root, when that is a
      SERVER span) is open, recent and has room rides in the host's record instead of being handed to the
      processors alone: one record a request. A host older than ``RIDE_SECONDS`` (a long
      stream, an agent turn) no longer takes riders, so its children are exported as they end; a span
      ending on another thread than its host's never rides (the host could end meanwhile).
    """

    __slots__ = ()

    def defer(self, name: str, raw: tuple[Any, ...]) -> None:
        if self.end_time is None:
            if self.derived is None:
                self.derived = []
            self.derived.append((name, raw))

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            return
        self.end_time = end = end_time or _time_ns()
        host = self.host
        if host is not None:
            self.host = None  # no reference cycle with the host: both are freed without the collector
            # Only on the host's thread: one ending elsewhere (asyncio.to_thread) could be added after the
            # host's record was made, and be lost.
            if host.end_time is None and end - host.start_time < _RIDE_NS and host.thread == _get_ident():
                riders = host.riders
                if riders is None:
                    host.riders = [self]
                    return
                if len(riders) < MAX_RIDERS:
                    riders.append(self)
                    return
        for processor in self._processors:
            processor.on_end(self)


def event_records(events: Sequence[Any]) -> tuple[tuple[Any, ...], ...]:
    """A span's events as an export record holds them (``(name, timestamp, (key, value) pairs or None)``)."""
    return tuple([(e.name, e.timestamp, _pairs(e.attributes)) for e in events])


def _pairs(attributes: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...] | None:
    return tuple(attributes.items()) if attributes else None


def link_records(links: Sequence[Link]) -> tuple[tuple[Any, ...], ...]:
    """A span's links as an export record holds them (``(trace id, span id, flags, (key, value) pairs)``)."""
    return tuple(
        [
            (
                lk.context.trace_id,
                lk.context.span_id,
                int(lk.context.trace_flags),
                tuple(lk.attributes.items()) if lk.attributes else (),
            )
            for lk in links
        ]
    )


RIDE_SECONDS = 5
_RIDE_NS = RIDE_SECONDS * 1_000_000_000
MAX_RIDERS = 64


class LeanTracer(trace.Tracer):
    __slots__ = ("_provider", "_scope")

    def __init__(self, provider: LeanTracerProvider, scope: InstrumentationScope) -> None:
        self._provider = provider
        self._scope = scope

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        provider = self._provider
        # SpanContext is a tuple (trace_id, span_id, is_remote, trace_flags, trace_state, is_valid): read
        # by index and built without its validating __new__ (the ids made here are valid by construction).
        if context is None and current_context is not None:
            parent_span = current_context().get(SPAN_KEY)  # current_span() without its call
        else:
            parent_span = _current_span(context)
        parent_type = type(parent_span)
        if parent_type is DeferringLeanSpan:
            parent = parent_span.context
        elif parent_span is None or parent_span is INVALID_SPAN:  # a new trace (the request's SERVER span)
            parent = INVALID_SPAN_CONTEXT
        else:
            parent = parent_span.get_span_context()
        if parent[5]:
            trace_id = parent[0]
            sampled = parent[3] & 1
            state = parent[4]
        else:
            parent = None
            trace_id = _getrandbits(128) or 1
            sampled = (trace_id & 0xFFFFFFFFFFFFFFFF) < provider._bound
            state = EMPTY_TRACE_STATE
        span_context = _new_tuple(
            SpanContext,
            (trace_id, _getrandbits(64) or 1, False, _SAMPLED if sampled else _NOT_SAMPLED, state, True),
        )
        if not sampled or provider._stopped:
            return NonRecordingSpan(span_context)
        if attributes:
            attrs = {
                k: (v if type(v) in _PRIMITIVE_TYPES else attribute_value(v))
                for k, v in attributes.items()
                if v is not None
            }
            if len(attrs) > MAX_ATTRIBUTES:
                attrs = dict(list(attrs.items())[:MAX_ATTRIBUTES])
        else:
            attrs = {}
        cls = provider._span_class
        span = _new_object(cls)
        span.name = name
        span.context = span_context
        span.parent = parent
        span.kind = kind
        span.start_time = start_time or _time_ns()
        span.end_time = None
        span.status = _UNSET
        span.attributes = attrs
        span.events = ()
        span.links = tuple(lk for lk in links if lk.context.is_valid)[:MAX_LINKS] if links else ()
        span.instrumentation_scope = self._scope
        span.resource = provider.resource
        span._processors = provider._processors
        span.derived = None
        span.riders = None
        span.host = None
        span.thread = 0
        if cls is DeferringLeanSpan:
            if parent is not None and parent_type is DeferringLeanSpan:
                # The host is the local root when that is the request's SERVER span (see DeferringLeanSpan).
                span.host = parent_span.host or (parent_span if parent_span.kind is _SERVER else None)
            if kind is _SERVER:
                span.thread = _get_ident()
        return span

    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time)
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


class LeanTracerProvider(trace.TracerProvider):
    """Implements ``opentelemetry.trace.TracerProvider`` with :class:`LeanSpan` spans; span processors
    are the SDK's interface (``on_start`` is not called: the lean spans are handed over only once
    ended, which is all the plugin's processors use)."""

    def __init__(self, service_name: str, sampling_ratio: float = 1.0) -> None:
        if not 0.0 <= sampling_ratio <= 1.0:
            raise ValueError(f"sampling_ratio must be between 0 and 1, got {sampling_ratio}")
        self.resource = Resource({"service.name": service_name})
        self.sampling_ratio = sampling_ratio
        # The SDK's TraceIdRatioBased bound: the low 64 bits of a sampled trace id are below it.
        self._bound = round(sampling_ratio * (1 << 64))
        self._processors: tuple[Any, ...] = ()
        self._span_class: type[LeanSpan] = DeferringLeanSpan  # no processor yet: nothing reads attributes
        self._tracers: dict[tuple[str, str | None, str | None], LeanTracer] = {}
        self._lock = threading.Lock()
        self._stopped = False

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> trace.Tracer:
        key = (instrumenting_module_name, instrumenting_library_version, schema_url)
        tracer = self._tracers.get(key)
        if tracer is None:
            tracer = self._tracers.setdefault(key, LeanTracer(self, InstrumentationScope(*key)))
        return tracer

    def add_span_processor(self, processor: Any) -> None:
        with self._lock:
            self._processors = (*self._processors, processor)  # spans keep the tuple they started with
            # Derived attributes wait for the export worker only when every processor builds them there.
            deferring = all(getattr(p, "builds_derived", False) for p in self._processors)
            self._span_class = DeferringLeanSpan if deferring else LeanSpan

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return all(p.force_flush(timeout_millis) for p in self._processors)

    def shutdown(self) -> None:
        self._stopped = True
        for processor in self._processors:
            processor.shutdown()
