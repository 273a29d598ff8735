"""GET /metrics of a real ``lamina run`` with the telemetry provider, in front of the fake OpenAI upstream
(lamina.testing.fake_openai), scraped by the test and by a real Prometheus server (Debian's ``prometheus``
package, installed by .ci/run; its test skips when the binary is absent)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from lamina.testing.processes import ServerProcess, free_port, lamina_server

pytestmark = pytest.mark.e2e

HTTP = "http_server_request_duration_seconds"


def run_config(fake: ServerProcess, **telemetry: object) -> dict:
    return {
        "version": 2,
        "image_name": "metrics",
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
            ],
            "telemetry": [
                {
                    "provider_id": "meta-reference",
                    "provider_type": "inline::meta-reference",
                    "config": {"sinks": [], **telemetry},
                }
            ],
        },
        "models": [
            {"model_id": "ok", "provider_id": "fake", "provider_model_id": "ok"},
            {"model_id": "broken", "provider_id": "fake", "provider_model_id": "error500"},
        ],
    }


@pytest.fixture(scope="module")
def lamina(fake_upstream: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with lamina_server(run_config(fake_upstream), tmp_path_factory.mktemp("metrics")) as server:
        yield server


def scrape(server: ServerProcess) -> dict:
    resp = httpx.get(server.url + "/metrics", timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(resp.text)}


def count(families: dict, route: str, status: str, method: str = "GET") -> float:
    family = families.get(HTTP)
    if family is None:
        return 0
    return sum(
        s.value
        for s in family.samples
        if s.name == HTTP + "_count"
        and s.labels.get("http_route") == route
        and s.labels["http_response_status_code"] == status
        and s.labels["http_request_method"] == method
    )


def test_requests_are_counted_by_route_template_and_status(lamina: ServerProcess) -> None:
    before = scrape(lamina)
    oa = OpenAI(base_url=lamina.url + "/v1", api_key="none", max_retries=0)
    for _ in range(3):
        oa.chat.completions.create(model="ok", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    chunks = list(
        oa.chat.completions.create(
            model="ok", messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True
        )
    )
    assert chunks
    for model in ("ok", "broken", "no-such-model-1", "no-such-model-2"):
        httpx.get(f"{lamina.url}/v1/models/{model}", timeout=30)
    assert httpx.post(
        lamina.url + "/v1/chat/completions", json={"model": "broken", "messages": []}
    ).status_code
    httpx.get(lamina.url + "/v1/no/such/route", timeout=30)

    after = scrape(lamina)
    assert (
        count(after, "/v1/chat/completions", "200", "POST")
        - count(before, "/v1/chat/completions", "200", "POST")
        == 4
    )
    # The route template, one series for every model id; the raw ids appear in no label.
    assert count(after, "/v1/models/{model_id}", "200") - count(before, "/v1/models/{model_id}", "200") == 2
    assert count(after, "/v1/models/{model_id}", "404") - count(before, "/v1/models/{model_id}", "404") == 2
    labels = {v for s in after[HTTP].samples for v in s.labels.values()}
    assert not any("no-such-model" in v or "no/such" in v for v in labels), labels
    # A request no route matched: counted, without a route.
    unmatched = [
        s
        for s in after[HTTP].samples
        if s.name == HTTP + "_count"
        and "http_route" not in s.labels
        and s.labels["http_response_status_code"] == "404"
    ]
    assert unmatched and unmatched[0].value >= 1
    # The histogram has its buckets.
    assert any(s.name == HTTP + "_bucket" and s.labels["le"] == "0.005" for s in after[HTTP].samples)
    # In flight now: this scrape itself.
    active = after["http_server_active_requests"]
    assert sum(s.value for s in active.samples) == 1
    assert [s.value for s in after["lamina_streams_active"].samples] == [0]
    # Jobs by state: every state reported (the store of this server holds none).
    states = {s.labels["lamina_job_state"]: s.value for s in after["lamina_jobs"].samples}
    assert set(states) >= {"scheduled", "in_progress", "completed", "failed", "cancelled"}


def test_metrics_is_404_naming_the_field_when_off(
    fake_upstream: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = run_config(fake_upstream, prometheus=False)
    with lamina_server(config, tmp_path_factory.mktemp("prom-off")) as server:
        resp = httpx.get(server.url + "/metrics", timeout=30)
        assert resp.status_code == 404
        assert "prometheus: true" in resp.text and "providers.telemetry" in resp.text
    del config["providers"]["telemetry"]
    with lamina_server(config, tmp_path_factory.mktemp("telemetry-off")) as server:
        resp = httpx.get(server.url + "/metrics", timeout=30)
        assert resp.status_code == 404
        assert "providers.telemetry" in resp.text and "inline::meta-reference" in resp.text


def test_a_real_prometheus_scrapes_the_request_count(lamina: ServerProcess, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus binary is absent (Debian package `prometheus`; .ci/run installs it)")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                "scrape_configs": [
                    {"job_name": "lamina", "static_configs": [{"targets": [f"127.0.0.1:{lamina.port}"]}]}
                ],
            }
        )
    )
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    route = "/v1/models"
    before = count(scrape(lamina), route, "200")
    for _ in range(5):
        assert httpx.get(lamina.url + route, timeout=30).status_code == 200
    query = f'sum({HTTP}_count{{job="lamina",http_route="{route}",http_response_status_code="200"}})'
    with ServerProcess(argv, port, log_path=tmp_path / "prometheus.log", ready_path="/-/ready") as prometheus:
        deadline = time.monotonic() + 60
        value = None
        while time.monotonic() < deadline:
            resp = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": query}, timeout=10)
            assert resp.status_code == 200, resp.text
            result = resp.json()["data"]["result"]
            if result:
                value = float(result[0]["value"][1])
                break
            time.sleep(0.5)
        assert value == before + 5, f"PromQL {query} answered {value}:\n{prometheus.log_tail()}"
        targets = httpx.get(f"{prometheus.url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        assert [t["health"] for t in targets] == ["up"], targets


def test_an_unknown_method_is_one_series_not_one_per_method(lamina: ServerProcess) -> None:
    """HTTP semconv: methods outside the standard set are recorded as _OTHER (a client inventing methods
    must not create series without bound)."""
    for method in ("BREW", "WHEN", "PROPFIND"):
        httpx.request(method, lamina.url + "/v1/models", timeout=30)
    methods = {s.labels.get("http_request_method") for s in scrape(lamina)[HTTP].samples}
    assert not methods & {"BREW", "WHEN", "PROPFIND"}, methods
    assert "_OTHER" in methods


def test_inference_metrics_by_model_tokens_and_time_to_first_token(lamina: ServerProcess) -> None:
    oa = OpenAI(base_url=lamina.url + "/v1", api_key="none", max_retries=0)
    say = [{"role": "user", "content": "hi"}]
    oa.chat.completions.create(model="ok", messages=say, max_tokens=4)
    list(
        oa.chat.completions.create(
            model="ok", messages=say, max_tokens=4, stream=True, stream_options={"include_usage": True}
        )
    )
    with pytest.raises(Exception):  # noqa: B017 - the upstream's 500 reaches the client as a 5xx
        oa.chat.completions.create(model="broken", messages=say, max_tokens=4)
    families = scrape(lamina)

    def samples(name: str, suffix: str, **labels: str) -> list:
        family = families[name]
        return [
            s
            for s in family.samples
            if s.name == name + suffix and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    ops = "gen_ai_client_operation_duration_seconds"
    ok = dict(gen_ai_request_model="ok", lamina_provider_id="fake")
    assert sum(s.value for s in samples(ops, "_count", **ok, lamina_stream="true")) >= 1
    assert sum(s.value for s in samples(ops, "_count", **ok, lamina_stream="false")) >= 1
    assert sum(s.value for s in samples(ops, "_count", gen_ai_request_model="broken")) >= 1
    assert all("error_type" in s.labels for s in samples(ops, "_count", gen_ai_request_model="broken"))
    tokens = "gen_ai_client_token_usage"
    assert sum(s.value for s in samples(tokens, "_sum", **ok, gen_ai_token_type="input")) > 0
    assert sum(s.value for s in samples(tokens, "_sum", **ok, gen_ai_token_type="output")) > 0
    assert sum(s.value for s in samples("gen_ai_server_time_to_first_token_seconds", "_count", **ok)) >= 1
    errors = samples("lamina_provider_errors", "_total", lamina_provider_id="fake")
    assert errors and errors[0].labels["lamina_api"] == "inference", families.get("lamina_provider_errors")
