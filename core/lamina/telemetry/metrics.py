"""The server's metrics: OpenTelemetry instruments on the active telemetry provider's meter provider.

Names follow OpenTelemetry's semantic conventions where they exist (``http.server.*`` for the HTTP
server, ``gen_ai.*`` for inference), ``lamina.*`` for the rest. Prometheus sees them sanitised with
their units (``http.server.request.duration`` in ``s`` -> ``http_server_request_duration_seconds``).

Every function is a no-op while telemetry is off (no provider activated it, or it has no meter
provider): one :func:`lamina.telemetry.active` check. The instruments are created once per activation
and cached against it, so a provider that restarts gets fresh ones from its new meter provider.

Gauges (jobs by state, open streams) are observed: their owners register a callable with
:func:`observe_jobs` / :func:`observe_streams`, read when metrics are collected (a Prometheus scrape,
an OTLP export). Those callables must answer from memory: a scrape storm must never become a query
storm. Registering costs nothing when telemetry is off, and stays in place if it is switched on later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

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


class Instruments:
    """The instruments of one activation (created from its meter provider)."""

    def __init__(self, meter_provider: Any) -> None:
        from opentelemetry.metrics import CallbackOptions, Observation

        meter = meter_provider.get_meter("lamina")
        self.http_duration = meter.create_histogram(
            "http.server.request.duration",
            unit="s",
            description="Duration of HTTP server requests, by method, route template and status",
            explicit_bucket_boundaries_advisory=HTTP_DURATION_BUCKETS,
        )
        self.http_active = meter.create_up_down_counter(
            "http.server.active_requests", unit="{request}", description="HTTP requests in flight"
        )
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Tokens per inference call, by gen_ai.token.type (input, output) and model",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.operation_duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="Duration of inference calls (to the end of the stream when streaming)",
            explicit_bucket_boundaries_advisory=OPERATION_DURATION_BUCKETS,
        )
        self.ttft = meter.create_histogram(
            "gen_ai.server.time_to_first_token",
            unit="s",
            description="Time from the request to the first streamed token",
            explicit_bucket_boundaries_advisory=TTFT_BUCKETS,
        )
        self.provider_errors = meter.create_counter(
            "lamina.provider.errors",
            unit="{error}",
            description="Failed provider calls, by provider, API and the status the caller got",
        )

        def jobs(options: CallbackOptions) -> Iterable[Observation]:
            totals: dict[str, int] = {}
            for source in list(_job_sources):
                for state, n in source().items():
                    totals[state] = totals.get(state, 0) + n
            return [Observation(n, {"lamina.job.state": state}) for state, n in totals.items()]

        def streams(options: CallbackOptions) -> Iterable[Observation]:
            if not _stream_sources:
                return []
            return [Observation(sum(source() for source in list(_stream_sources)))]

        meter.create_observable_gauge(
            "lamina.jobs", callbacks=[jobs], unit="{job}", description="Jobs in the jobs store, by state"
        )
        meter.create_observable_up_down_counter(
            "lamina.streams.active",
            callbacks=[streams],
            unit="{stream}",
            description="Streaming (SSE) responses open",
        )


_cache: tuple[TelemetrySettings, Instruments | None] | None = None
_job_sources: list[Callable[[], dict[str, int]]] = []
_stream_sources: list[Callable[[], int]] = []


def instruments() -> Instruments | None:
    """The active instruments, or None when telemetry (or its metrics) is off."""
    settings = active()
    if settings is None:
        return None
    cached = _cache
    if cached is not None and cached[0] is settings:
        return cached[1]
    return _build(settings)


def _build(settings: TelemetrySettings) -> Instruments | None:
    global _cache
    built = Instruments(settings.meter_provider) if settings.meter_provider is not None else None
    _cache = (settings, built)
    return built


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
    inst = instruments()
    if inst is None:
        return
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": model,
        "lamina.provider.id": provider_id,
    }
    if input_tokens is not None:
        inst.token_usage.record(input_tokens, {**attrs, "gen_ai.token.type": "input"})
    if output_tokens is not None:
        inst.token_usage.record(output_tokens, {**attrs, "gen_ai.token.type": "output"})
    if ttft_seconds is not None:
        inst.ttft.record(ttft_seconds, attrs)
    attrs["lamina.stream"] = stream
    if error is not None:
        attrs["error.type"] = error
    inst.operation_duration.record(seconds, attrs)


def record_provider_error(*, provider_id: str, provider_type: str, api: str, status: int) -> None:
    """A provider call that failed; ``status`` is the HTTP status the caller got (502, 504, ...)."""
    inst = instruments()
    if inst is None:
        return
    inst.provider_errors.add(
        1,
        {
            "lamina.provider.id": provider_id,
            "lamina.provider.type": provider_type,
            "lamina.api": api,
            "http.response.status_code": status,
        },
    )


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
