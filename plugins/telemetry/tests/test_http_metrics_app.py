"""The HTTP metrics are recorded by the core's request middleware (one middleware for the request's span,
its metrics and the access log: a second middleware timed every request again); with telemetry off,
recording is one check (the app is built in-process; nothing is started)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lamina.config import parse_run_config
from lamina.plugins import load_plugin_manager
from lamina.server.app import create_app
from lamina.server.middlewares import request_middleware
from lamina.stack import Stack
from lamina.telemetry import http_metrics, state


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


def test_one_core_middleware_with_or_without_a_telemetry_provider(tmp_path: Path) -> None:
    without = app_middlewares(tmp_path / "a", {"inference": INFERENCE})
    with_telemetry = app_middlewares(tmp_path / "b", {"inference": INFERENCE, "telemetry": TELEMETRY})
    assert without == with_telemetry and without[0] is request_middleware


def test_telemetry_off_counts_nothing() -> None:
    assert state.active() is None
    assert http_metrics.request_started("GET") is None
