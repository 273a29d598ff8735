"""The otel_metric sink: a real ``lamina run`` exports its metrics over OTLP/HTTP to the test's receiver
(lamina.testing.otlp_receiver, decoding the protobuf), and a collector that is down, slow or answering
errors never slows or fails a request. The upstream is the fake OpenAI server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from lamina.testing.otlp_receiver import OtlpReceiver
from lamina.testing.processes import ServerProcess, free_port, lamina_server

pytestmark = pytest.mark.e2e

# OpenTelemetry's PeriodicExportingMetricReader reads its interval from here (default: a minute).
FAST_EXPORT = {"OTEL_METRIC_EXPORT_INTERVAL": "300"}


def run_config(fake: ServerProcess, metrics_endpoint: str) -> dict:
    return {
        "version": 2,
        "image_name": "otlp-metrics",
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
            ],
            "telemetry": [
                {
                    "provider_id": "meta-reference",
                    "provider_type": "inline::meta-reference",
                    "config": {
                        "service_name": "metrics-under-test",
                        "sinks": ["otel_metric"],
                        "otel_metric_endpoint": metrics_endpoint,
                    },
                }
            ],
        },
        "models": [{"model_id": "ok", "provider_id": "fake", "provider_model_id": "ok"}],
    }


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


def test_metrics_arrive_over_otlp_and_decode(
    fake_upstream: ServerProcess, receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = run_config(fake_upstream, receiver.metrics_endpoint)
    with lamina_server(config, tmp_path_factory.mktemp("otlp"), env=FAST_EXPORT) as server:
        for _ in range(3):
            assert httpx.get(server.url + "/v1/models", timeout=30).status_code == 200
        body = {"model": "ok", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        assert httpx.post(server.url + "/v1/chat/completions", json=body, timeout=30).status_code == 200

        def models_route() -> list:
            points = receiver.metric_points("http.server.request.duration")
            return [p for p in points if p.attributes.get("http.route") == "/v1/models" and p.count == 3]

        (point,) = receiver.wait_for(models_route, what="http.server.request.duration points")[-1:]
    assert point.kind == "histogram" and point.unit == "s"
    assert point.attributes == {
        "http.request.method": "GET",
        "http.route": "/v1/models",
        "http.response.status_code": 200,
    }
    assert sum(point.bucket_counts) == 3 and len(point.bucket_counts) == len(point.explicit_bounds) + 1
    assert point.resource["service.name"] == "metrics-under-test"
    assert receiver.decode_errors == []
    assert any(p.name == "http.server.active_requests" for p in receiver.metric_points())


@pytest.mark.parametrize("trouble", ["down", "slow", "erroring"])
def test_a_collector_in_trouble_never_slows_or_fails_a_request(
    trouble: str,
    fake_upstream: ServerProcess,
    receiver: OtlpReceiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    if trouble == "slow":
        receiver.behave(delay=60)  # longer than the whole test: every export hangs
    elif trouble == "erroring":
        receiver.behave(status=503)
    endpoint = (
        f"http://127.0.0.1:{free_port()}/v1/metrics" if trouble == "down" else receiver.metrics_endpoint
    )
    config = run_config(fake_upstream, endpoint)
    body = {"model": "ok", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    with lamina_server(config, tmp_path_factory.mktemp(f"otlp-{trouble}"), env=FAST_EXPORT) as server:
        started = time.monotonic()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            deadline = started + 3.0  # ten export intervals: exports are failing or hanging meanwhile
            served = 0
            while time.monotonic() < deadline or served < 20:
                assert client.post("/v1/chat/completions", json=body).status_code == 200
                assert client.get("/v1/models").status_code == 200
                served += 1
        elapsed = time.monotonic() - started
        if trouble != "down":
            assert receiver.posts["metrics"] >= 1, "the collector was never called: the test proves nothing"
        # "Does not hang" bound: a request waiting on a 60 s export would blow it.
        assert elapsed < 30, f"{served} rounds took {elapsed:.1f} s with the collector {trouble}"
        assert httpx.get(server.url + "/metrics", timeout=30).status_code == 200


def test_a_server_whose_collector_is_down_still_stops_cleanly(
    fake_upstream: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The last export at shutdown retries a dead collector only briefly: SIGTERM ends the server with
    exit code 0 within the harness's 10 s, not SIGKILLed after it (OpenTelemetry's default retry
    window is 10 s, which the server used to sit out)."""
    config = run_config(fake_upstream, f"http://127.0.0.1:{free_port()}/v1/metrics")
    server = lamina_server(config, tmp_path_factory.mktemp("otlp-stop"), env=FAST_EXPORT).start()
    try:
        assert httpx.get(server.url + "/v1/models", timeout=30).status_code == 200
        time.sleep(1.0)  # a few failed exports
    finally:
        code = server.stop(timeout=10)
    assert code == 0, f"exit code {code} (negative: killed by a signal):\n{server.log_tail()}"
