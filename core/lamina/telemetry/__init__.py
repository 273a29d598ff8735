"""Telemetry: the one mechanism every span and metric of the server goes through.

The core instruments itself with OpenTelemetry's API only (``opentelemetry-api``, a few hundred KB):
the HTTP middleware, the routers, the provider calls, inference, tools, agents, shields, vector
queries and jobs open spans and record metrics here. Nothing is recorded until a telemetry provider
(``inline::meta-reference`` in plugins/telemetry, or a third party's) calls :func:`activate` with the
OpenTelemetry SDK providers it built (sampler, exporters, sinks); :func:`deactivate` undoes it at
shutdown. Until then every instrumented call costs one check of :func:`active`.

One activation per process: the telemetry provider of the running stack owns it.
"""

from __future__ import annotations

from lamina.telemetry.state import TelemetrySettings, activate, active, deactivate

__all__ = ["TelemetrySettings", "activate", "active", "deactivate"]
