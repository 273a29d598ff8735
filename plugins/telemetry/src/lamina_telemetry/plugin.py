"""Hook implementations: the inline::meta-reference telemetry provider.

Imported whenever plugins load: it imports nothing heavy (the OpenTelemetry SDK loads with the provider).
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec

PROVIDER_TYPE = "inline::meta-reference"


@hookimpl
def lamina_telemetry_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.telemetry,
            provider_type=PROVIDER_TYPE,
            config_class="lamina_telemetry.config:TelemetryConfig",
            factory="lamina_telemetry.provider:create_provider",
            # save_spans_to_dataset appends to a dataset through the DatasetIO API when one is served.
            optional_api_dependencies=[Api.datasetio],
            description=(
                "OpenTelemetry traces and metrics of every request: OTLP/HTTP export, a SQL trace store "
                "(sqlite or postgres) behind Llama Stack's telemetry API, console output, Prometheus "
                "/metrics."
            ),
        )
    ]
