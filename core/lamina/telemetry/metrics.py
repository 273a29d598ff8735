"""The server's metrics, exported through the active telemetry provider's OpenTelemetry meter provider.

Names follow OpenTelemetry's semantic conventions where they exist (``http.server.*`` for the HTTP
server, ``gen_ai.*`` for inference), ``lamina.*`` for the rest. Prometheus sees them sanitised with
their units (``http.server.request.duration`` in ``s`` -> ``http_server_request_duration_seconds``).

Every function is a no-op while telemetry is off (no provider activated it, or it has no meter
provider): one :func:`lamina.telemetry.active` check. The instruments are created once per activation
and cached against it, so a provider that restarts gets fresh ones from its new meter provider.

The instruments aggregate in-process (lamina.telemetry.aggregates: about a microsecond a measurement,
where the SDK's synchronous instruments cost 7-19 µs) and the meter provider reads them at each
collection through :func:`snapshot`: lamina_telemetry's ``LaminaMeterProvider`` does (it says so with
``collects_lamina_aggregates = True``). Any other meter provider (a third-party telemetry provider's
plain SDK one) gets every measurement through ordinary OpenTelemetry instruments as well: correct, at the
SDK's price.

Gauges (jobs by state, open streams) are observed: their owners register a callable with
:func:`observe_jobs` / :func:`observe_streams`, read when metrics are collected (a Prometheus scrape,
an OTLP export). Those callables must answer from memory: a scrape storm must never become a query
storm. Registering costs nothing when telemetry is off, and stays in place if it is switched on later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lamina.telemetry import aggregates
from lamina.telemetry import state as _state
from lamina.telemetry.aggregates import Histogram, Snapshot, Sum
from lamina.telemetry.state import TelemetrySettings, active

# OpenTelemetry's advisory boundaries for each histogram (semconv's, where it gives them).
HTTP_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
OPERATION_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
# The boundaries as the histograms hold them (aggregates.Histogram.bounds), for aggregates.observe.
TOKEN_BOUNDS = tuple(float(b) for b in TOKEN_BUCKETS)
TTFT_BOUNDS = tuple(float(b) for b in TTFT_BUCKETS)
OPERATION_DURATION_BOUNDS = tuple(float(b) for b in OPERATION_DURATION_BUCKETS)


class Instruments:
    """The instruments of one activation: Lamina's own aggregates (lamina.telemetry.aggregates), read by
    the activation's meter provider at each collection (:func:`snapshot`)."""

    def __init__(self, settings: TelemetrySettings) -> None:
        self.settings = settings
        self.http_duration = Histogram(
            "http.server.request.duration",
            "s",
            "Duration of HTTP server requests, by method, route template and status",
            ("http.request.method", "http.route", "http.response.status_code", "error.type"),
            HTTP_DURATION_BUCKETS,
        )
        self.http_active = Sum(
            "http.server.active_requests",
            "{request}",
            "HTTP requests in flight",
            ("http.request.method",),
            monotonic=False,
        )
        inference = ("gen_ai.operation.name", "gen_ai.request.model", "lamina.provider.id")
        self.token_usage = Histogram(
            "gen_ai.client.token.usage",
            "{token}",
            "Tokens per inference call, by gen_ai.token.type (input, output) and model",
            (*inference, "gen_ai.token.type"),
            TOKEN_BUCKETS,
        )
        self.operation_duration = Histogram(
            "gen_ai.client.operation.duration",
            "s",
            "Duration of inference calls (to the end of the stream when streaming)",
            (*inference, "lamina.stream", "error.type"),
            OPERATION_DURATION_BUCKETS,
        )
        self.ttft = Histogram(
            "gen_ai.server.time_to_first_token",
            "s",
            "Time from the request to the first streamed token",
            inference,
            TTFT_BUCKETS,
        )
        self.provider_errors = Sum(
            "lamina.provider.errors",
            "{error}",
            "Failed provider calls, by provider, API and the status the caller got",
            ("lamina.provider.id", "lamina.provider.type", "lamina.api", "http.response.status_code"),
            monotonic=True,
        )
        self.recorded = (
            self.http_duration,
            self.http_active,
            self.token_usage,
            self.operation_duration,
            self.ttft,
            self.provider_errors,
        )
        # (operation, model, provider id, stream, error type) -> that call's four series (inference_series);
        # (method, route, status) -> the request duration's series (http_series)
        self._inference: dict[tuple[Any, ...], tuple[list[Any], ...] | None] = {}
        self._http: dict[tuple[Any, ...], list[Any] | None] = {}
        self.forwarding = not getattr(settings.meter_provider, "collects_lamina_aggregates", False)
        if self.forwarding:
            self._forward_to(settings.meter_provider)

    def inference_series(self, key: tuple[Any, ...]) -> tuple[list[Any], ...] | None:
        """The series an inference call of ``key`` (operation, model, provider id, stream, error type)
        records into: input tokens, output tokens, time to first token, duration; None while measurements
        are forwarded to OpenTelemetry instruments (they then go through ``record``)."""
        found = self._inference.get(key, False)
        if found is not False:
            return found  # type: ignore[return-value]
        series = None
        if not self.forwarding:
            operation, model, provider_id = key[:3]
            series = (
                self.token_usage.series((operation, model, provider_id, "input")),
                self.token_usage.series((operation, model, provider_id, "output")),
                self.ttft.series((operation, model, provider_id)),
                self.operation_duration.series(key),
            )
        # Bounded like the series themselves: by the models, providers and error types callers name.
        self._inference[key] = series
        return series

    def http_series(self, key: tuple[Any, ...]) -> list[Any] | None:
        """The request duration series of ``key`` (method, route template, status); None while
        forwarded (see inference_series)."""
        found = self._http.get(key, False)
        if found is not False:
            return found  # type: ignore[return-value]
        method, route, status = key
        error = str(status) if status >= 500 else None
        series = None if self.forwarding else self.http_duration.series((method, route, status, error))
        self._http[key] = series
        return series

    def _forward_to(self, meter_provider: Any) -> None:
        """A meter provider that does not read :func:`snapshot`: its own instruments get every measurement,
        and observable ones report the gauges."""
        from opentelemetry.metrics import CallbackOptions, Observation

        meter = meter_provider.get_meter("lamina")
        for instrument in self.recorded:
            if isinstance(instrument, Histogram):
                instrument.forward = meter.create_histogram(
                    instrument.name,
                    unit=instrument.unit,
                    description=instrument.description,
                    explicit_bucket_boundaries_advisory=list(instrument.bounds),
                )
            elif instrument.kind == "counter":
                instrument.forward = meter.create_counter(
                    instrument.name, instrument.unit, instrument.description
                )
            else:
                instrument.forward = meter.create_up_down_counter(
                    instrument.name, instrument.unit, instrument.description
                )

        def observe(name: str) -> Callable[[CallbackOptions], list[Observation]]:
            def callback(options: CallbackOptions) -> list[Observation]:
                return [
                    Observation(value, attrs)
                    for snap in self.snapshot()
                    if snap.name == name
                    for attrs, value in snap.points
                ]

            return callback

        meter.create_observable_gauge(
            "lamina.jobs",
            [observe("lamina.jobs")],
            unit="{job}",
            description="Jobs in the jobs store, by state",
        )
        meter.create_observable_up_down_counter(
            "lamina.streams.active",
            [observe("lamina.streams.active")],
            unit="{stream}",
            description="Streaming (SSE) responses open",
        )

    def snapshot(self) -> list[Snapshot]:
        """Every instrument's series now, the observed gauges read from their sources."""
        out = [instrument.snapshot() for instrument in self.recorded]
        totals: dict[str, int] = {}
        for source in list(_job_sources):
            for state, n in source().items():
                totals[state] = totals.get(state, 0) + n
        if _job_sources:
            points = [({"lamina.job.state": state}, n) for state, n in totals.items()]
            out.append(
                Snapshot("lamina.jobs", "{job}", "Jobs in the jobs store, by state", "gauge", (), points)
            )
        if _stream_sources:
            open_streams = sum(source() for source in list(_stream_sources))
            out.append(
                Snapshot(
                    "lamina.streams.active",
                    "{stream}",
                    "Streaming (SSE) responses open",
                    "updown",
                    (),
                    [({}, open_streams)],
                )
            )
        return out


_cache: tuple[TelemetrySettings, Instruments | None] | None = None
_job_sources: list[Callable[[], dict[str, int]]] = []
_stream_sources: list[Callable[[], int]] = []


def instruments() -> Instruments | None:
    """The active instruments, or None when telemetry (or its metrics) is off."""
    settings = _state._active  # active(), without its call: several times a request
    if settings is None:
        return None
    cached = _cache
    if cached is not None and cached[0] is settings:
        return cached[1]
    return _build(settings)


def _build(settings: TelemetrySettings) -> Instruments | None:
    global _cache
    built = Instruments(settings) if settings.meter_provider is not None else None
    _cache = (settings, built)
    return built


def snapshot(meter_provider: Any) -> list[Snapshot]:
    """What the instruments of the activation with ``meter_provider`` hold now (the meter provider's
    collections call this; also after deactivation, for the last export at shutdown)."""
    cached = _cache
    if cached is None or cached[0].meter_provider is not meter_provider:
        settings = active()
        if settings is None or settings.meter_provider is not meter_provider:
            return []
        instruments()  # first collection before any measurement: the gauges are still worth reporting
        cached = _cache
    return cached[1].snapshot() if cached is not None and cached[1] is not None else []


def record_inference(
    *,
    model: str,
    provider_id: str,
    operation: str,
    stream: bool,
    input_tokens: int | None,
    output_tokens: int | None,
    seconds: float,
    ttft_seconds: float | None,
    error: str | None = None,
) -> None:
    """One inference call (``operation``: chat, text_completion, embeddings): its duration, tokens in and
    out (when the provider reported them), time to first token (streams), and its error type if any."""
    settings = _state._active
    if settings is None:
        return
    cached = _cache  # instruments() without its call when they are made for these settings
    inst = cached[1] if cached is not None and cached[0] is settings else instruments()
    if inst is None:
        return
    key = (operation, model, provider_id, stream, error)
    series = inst._inference.get(key) or inst.inference_series(key)
    if series is None:  # forwarded: each measurement through its instrument
        if input_tokens is not None:
            inst.token_usage.record(input_tokens, (operation, model, provider_id, "input"))
        if output_tokens is not None:
            inst.token_usage.record(output_tokens, (operation, model, provider_id, "output"))
        if ttft_seconds is not None:
            inst.ttft.record(ttft_seconds, (operation, model, provider_id))
        inst.operation_duration.record(seconds, key)
        return
    # The call's four series at hand, recorded in one call: no key tuple, lookup or Python call a
    # measurement (two thirds of what four record() calls cost).
    aggregates.observe(
        (
            (series[0], TOKEN_BOUNDS, input_tokens),
            (series[1], TOKEN_BOUNDS, output_tokens),
            (series[2], TTFT_BOUNDS, ttft_seconds),
            (series[3], OPERATION_DURATION_BOUNDS, seconds),
        )
    )


def record_provider_error(*, provider_id: str, provider_type: str, api: str, status: int) -> None:
    """A provider call that failed; ``status`` is the HTTP status the caller got (502, 504, ...)."""
    inst = instruments()
    if inst is None:
        return
    inst.provider_errors.add(1, (provider_id, provider_type, api, status))


def observe_jobs(counts: Callable[[], dict[str, int]]) -> Callable[[], None]:
    """Report ``counts()`` (jobs by state, from memory) as the ``lamina.jobs`` gauge; returns the call that
    stops reporting it (a job manager's shutdown)."""
    _job_sources.append(counts)
    return lambda: _job_sources.remove(counts) if counts in _job_sources else None


def observe_streams(count: Callable[[], int]) -> Callable[[], None]:
    """Report ``count()`` (open streaming responses) as ``lamina.streams.active``; returns the call that
    stops reporting it (the app's cleanup)."""
    _stream_sources.append(count)
    return lambda: _stream_sources.remove(count) if count in _stream_sources else None
