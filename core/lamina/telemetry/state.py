"""The process's telemetry switch: which tracer and meter providers record, and what spans may carry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TelemetrySettings:
    """What a telemetry provider hands the core when it starts.

    ``tracer_provider`` is an ``opentelemetry.trace.TracerProvider`` (the SDK's, with the provider's
    sampler, processors and exporters); ``meter_provider`` an ``opentelemetry.metrics.MeterProvider``
    or None when metrics are off. ``capture_content`` lets spans carry prompt and completion text
    (off by default: redacted). ``prometheus_exposition`` renders the provider's metrics in Prometheus'
    exposition format, returning ``(body, content_type)``: the core's ``GET /metrics`` serves it (None:
    the provider serves no Prometheus metrics, and the route answers 404).
    """

    tracer_provider: Any
    meter_provider: Any | None = None
    capture_content: bool = False
    service_name: str = "lamina"
    prometheus_exposition: Callable[[], tuple[bytes, str]] | None = None


_active: TelemetrySettings | None = None


def activate(settings: TelemetrySettings) -> None:
    """Start recording through ``settings``' providers (the telemetry provider calls this once)."""
    global _active
    _active = settings


def deactivate() -> None:
    """Stop recording: instrumented calls are no-ops again (the telemetry provider's shutdown)."""
    global _active
    _active = None


def active() -> TelemetrySettings | None:
    """The settings in force, or None when telemetry is off."""
    return _active
