"""The inline::meta-reference telemetry provider's config: Llama Stack's fields, then Lamina's own.

Llama Stack's (0.2.12): ``service_name``, ``sinks`` (``otel_trace``, ``otel_metric``, ``sqlite``,
``console``; a list or a comma-separated string, as its run.yaml templates write
``${env.TELEMETRY_SINKS:=console,sqlite}``), ``otel_trace_endpoint``, ``otel_metric_endpoint``,
``sqlite_db_path``. Llama Stack also accepted ``otel``, an older name for both OTLP sinks.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator


class TelemetrySink(StrEnum):
    OTEL_TRACE = "otel_trace"
    OTEL_METRIC = "otel_metric"
    SQLITE = "sqlite"
    CONSOLE = "console"


class TelemetryConfig(BaseModel):
    service_name: str = Field(
        default="lamina",
        description="service.name of every span and metric this server exports",
    )
    sinks: list[TelemetrySink] = Field(
        default=[TelemetrySink.SQLITE],
        description=(
            "where telemetry goes: otel_trace and otel_metric (OTLP/HTTP to the endpoints below), sqlite "
            "(the trace store behind the telemetry API: sqlite_db_path, or trace_store for postgres), "
            "console (spans printed to stderr)"
        ),
    )
    otel_trace_endpoint: str = Field(
        default="http://localhost:4318/v1/traces",
        description="OTLP/HTTP traces endpoint (otel_trace sink)",
    )
    otel_metric_endpoint: str = Field(
        default="http://localhost:4318/v1/metrics",
        description="OTLP/HTTP metrics endpoint (otel_metric sink)",
    )
    sqlite_db_path: str | None = Field(
        default=None,
        description="the sqlite trace store's file (default: trace_store.db in the provider's state dir)",
    )
    # -- Lamina's own ----------------------------------------------------------------------------
    trace_store: dict[str, Any] | None = Field(
        default=None,
        description=(
            "the trace store as a SQL store config ({type: postgres, host, port, db, user, password} or "
            "{type: sqlite, db_path}); overrides sqlite_db_path, so several servers can share one store"
        ),
    )
    ttl_seconds: int = Field(
        default=7 * 86400,
        ge=60,
        description="how long the trace store keeps spans and metric points (log_event's ttl_seconds sets an "
        "event's own); expired rows are pruned at start-up and every 10 minutes",
    )
    sampling_ratio: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="the share of new traces recorded (a caller's sampled traceparent is always followed)",
    )
    capture_content: bool = Field(
        default=False,
        description="put prompt and completion text on spans (off: redacted; they may hold personal data)",
    )
    prometheus: bool = Field(default=True, description="serve GET /metrics in Prometheus' exposition format")
    tracer: Literal["sdk", "lean"] = Field(
        default="lean",
        description="the span implementation: 'lean' (lamina_telemetry.lean_tracer: a third of the SDK's CPU "
        "a span) or 'sdk' (OpenTelemetry's SDK, with its OTEL_SPAN_* limits from the environment); the "
        "console sink always uses the SDK",
    )

    @field_validator("sinks", mode="before")
    @classmethod
    def _split_sinks(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list) and "otel" in value:  # Llama Stack's older name for both OTLP sinks
            value = [v for v in value if v != "otel"] + ["otel_trace", "otel_metric"]
        return value
