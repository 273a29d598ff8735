"""The inline::meta-reference telemetry provider: builds the OpenTelemetry SDK providers from its config
and activates the core's telemetry with them (lamina.telemetry); serves Llama Stack's telemetry API from
its trace store."""

from __future__ import annotations

from typing import Any

from lamina.providers import ProviderBase, ProviderContext
from lamina.telemetry import TelemetrySettings, activate, deactivate
from lamina_telemetry.config import TelemetryConfig
from lamina_telemetry.metrics_setup import build_meter_provider
from lamina_telemetry.prometheus import build_prometheus
from lamina_telemetry.tracing_setup import build_tracer_provider


async def create_provider(
    config: TelemetryConfig, deps: dict[Any, Any], context: ProviderContext
) -> TelemetryProvider:
    return TelemetryProvider(config, deps, context)


class TelemetryProvider(ProviderBase):
    def __init__(self, config: TelemetryConfig, deps: dict[Any, Any], context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        self.deps = deps
        self.tracer_provider: Any = None
        self.meter_provider: Any = None

    async def initialize(self) -> None:
        self.tracer_provider = build_tracer_provider(self.config)
        prometheus = build_prometheus(self.config)
        self.meter_provider = build_meter_provider(self.config, [prometheus.reader] if prometheus else [])
        activate(
            TelemetrySettings(
                tracer_provider=self.tracer_provider,
                meter_provider=self.meter_provider,
                capture_content=self.config.capture_content,
                service_name=self.config.service_name,
                prometheus_exposition=prometheus.exposition if prometheus else None,
            )
        )

    async def shutdown(self) -> None:
        deactivate()
        # Flushes what the batch processors hold (bounded by their export timeouts).
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()
