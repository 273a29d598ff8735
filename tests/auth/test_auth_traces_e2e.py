"""With telemetry on, the request's SERVER span names the principal (``enduser.id``) and no exported span
carries the bearer key or a provider-data value: a real ``lamina run`` exporting to the test's OTLP
receiver (lamina.testing.otlp_receiver)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from lamina.testing.otlp_receiver import OtlpReceiver
from lamina.testing.processes import ServerProcess

BOOTSTRAP = "bootstrap-admin-key-for-traces-0123456789"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4aaa"

pytestmark = pytest.mark.e2e


def test_spans_name_the_principal_and_hold_no_secret(
    start_lamina: Callable[..., ServerProcess], fake_upstream: ServerProcess, otlp_receiver: OtlpReceiver
) -> None:
    config = {
        "version": 2,
        "image_name": "auth-traces",
        "apis": ["inference", "telemetry"],
        "providers": {
            "inference": [
                {
                    "provider_id": "fake",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{fake_upstream.url}/v1"},
                }
            ],
            "telemetry": [
                {
                    "provider_id": "meta-reference",
                    "provider_type": "inline::meta-reference",
                    "config": {
                        "service_name": "auth-test",
                        "sinks": ["otel_trace"],
                        "otel_trace_endpoint": otlp_receiver.traces_endpoint,
                    },
                }
            ],
        },
        "models": [{"model_id": "ok", "provider_id": "fake", "model_type": "llm"}],
        "server": {"auth": {"provider_type": "api_keys", "config": {"bootstrap_admin_key": BOOTSTRAP}}},
    }
    server = start_lamina(config)
    caller_secret = "sk-provider-data-secret-for-spans-77"
    resp = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "ok", "messages": [{"role": "user", "content": "hi"}]},
        headers={
            "Authorization": f"Bearer {BOOTSTRAP}",
            "X-LlamaStack-Provider-Data": json.dumps({"vllm_api_token": caller_secret}),
            "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01",
        },
    )
    assert resp.status_code == 200, resp.text

    def arrived():
        spans = otlp_receiver.trace(TRACE)
        return spans if any(s.kind == "SERVER" for s in spans) else None

    spans = otlp_receiver.wait_for(arrived, what="the request's server span")
    server_span = next(s for s in spans if s.kind == "SERVER")
    assert server_span.attributes["enduser.id"] == "admin"
    exported = json.dumps([[s.name, s.attributes, s.events] for s in spans], default=str)
    assert BOOTSTRAP not in exported and caller_secret not in exported
