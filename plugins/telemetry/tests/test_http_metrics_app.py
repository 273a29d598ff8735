"""Telemetry off costs nothing: the app gets the HTTP metrics middleware only when the run config has a
telemetry provider (the app is built in-process; nothing is started)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lamina.config import parse_run_config
from lamina.plugins import load_plugin_manager
from lamina.server.app import create_app
from lamina.stack import Stack
from lamina.telemetry.http_metrics import http_metrics_middleware


def app_middlewares(tmp_path: Path, providers: dict[str, Any]) -> list[Any]:
    doc = {
        "version": 2,
        "image_name": "metrics-app",
        "providers": providers,
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "registry.db")},
    }
    stack = Stack.build(parse_run_config(doc, source="metrics.yaml", env={}), load_plugin_manager())
    return list(create_app(stack).middlewares)


INFERENCE = [
    {"provider_id": "up", "provider_type": "remote::vllm", "config": {"url": "http://127.0.0.1:9/v1"}}
]
TELEMETRY = [
    {"provider_id": "meta-reference", "provider_type": "inline::meta-reference", "config": {"sinks": []}}
]


def test_no_telemetry_provider_no_metrics_middleware(tmp_path: Path) -> None:
    assert http_metrics_middleware not in app_middlewares(tmp_path, {"inference": INFERENCE})


def test_a_telemetry_provider_puts_the_metrics_middleware_outermost(tmp_path: Path) -> None:
    middlewares = app_middlewares(tmp_path, {"inference": INFERENCE, "telemetry": TELEMETRY})
    # Outermost: it records the status the client got, after the core's error rendering.
    assert middlewares[0] is http_metrics_middleware
