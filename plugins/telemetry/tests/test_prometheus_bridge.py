"""The Prometheus bridge (lamina_telemetry.prometheus) over the core's metrics (lamina.telemetry.metrics):
the real OpenTelemetry SDK meter provider, read by the pull reader, rendered by prometheus_client and
parsed back with prometheus_client's own exposition parser."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.trace import NoOpTracerProvider
from prometheus_client.parser import text_string_to_metric_families

from lamina.telemetry import TelemetrySettings, activate, deactivate, http_metrics, metrics
from lamina_telemetry.config import TelemetryConfig
from lamina_telemetry.metrics_setup import LaminaMeterProvider
from lamina_telemetry.prometheus import PrometheusSetup, build_prometheus, metric_name


@pytest.fixture
def prom() -> Iterator[PrometheusSetup]:
    """Telemetry on, with a meter provider whose only reader is the Prometheus one."""
    setup = build_prometheus(TelemetryConfig(sinks=[]))
    assert setup is not None
    provider = LaminaMeterProvider(metric_readers=[setup.reader])
    activate(
        TelemetrySettings(
            tracer_provider=NoOpTracerProvider(),
            meter_provider=provider,
            prometheus_exposition=setup.exposition,
        )
    )
    yield setup
    deactivate()
    provider.shutdown()


def scrape(setup: PrometheusSetup) -> dict[str, list]:
    body, content_type = setup.exposition()
    assert content_type.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    return {name: f for name, f in families.items()}


def samples(family, name: str | None = None, **labels: str) -> list:
    return [
        s
        for s in family.samples
        if (name is None or s.name == name) and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def test_names_are_sanitised_with_their_units() -> None:
    assert (
        metric_name("http.server.request.duration", "s", kind="histogram")
        == "http_server_request_duration_seconds"
    )
    assert (
        metric_name("gen_ai.client.token.usage", "{token}", kind="histogram") == "gen_ai_client_token_usage"
    )
    assert metric_name("lamina.provider.errors", "{error}", kind="counter") == "lamina_provider_errors"
    assert metric_name("cache.hit-rate", "1", kind="gauge") == "cache_hit_rate_ratio"
    assert metric_name("upload.size", "By", kind="histogram") == "upload_size_bytes"
    assert metric_name("net.rate", "By/s", kind="gauge") == "net_rate_bytes_per_second"
    assert metric_name("latency_seconds", "s", kind="histogram") == "latency_seconds"  # no double suffix
    assert metric_name("9lives", "", kind="gauge") == "_9lives"


def test_inference_metrics_become_histograms_with_buckets_count_and_sum(prom: PrometheusSetup) -> None:
    for seconds, ttft in ((0.3, 0.05), (1.5, 0.2), (0.3, None)):
        metrics.record_inference(
            model="llama-3b",
            provider_id="vllm",
            operation="chat",
            stream=ttft is not None,
            input_tokens=10,
            output_tokens=7,
            seconds=seconds,
            ttft_seconds=ttft,
        )
    families = scrape(prom)

    duration = families["gen_ai_client_operation_duration_seconds"]
    assert duration.type == "histogram"
    streamed = dict(gen_ai_request_model="llama-3b", lamina_provider_id="vllm", lamina_stream="true")
    buckets = {s.labels["le"]: s.value for s in samples(duration, duration.name + "_bucket", **streamed)}
    # One streamed call of 0.3 s and one of 1.5 s: cumulative buckets.
    assert buckets["0.16"] == 0 and buckets["0.32"] == 1 and buckets["1.28"] == 1 and buckets["2.56"] == 2
    assert buckets["+Inf"] == 2
    assert samples(duration, duration.name + "_count", **streamed)[0].value == 2
    assert samples(duration, duration.name + "_sum", **streamed)[0].value == pytest.approx(1.8)
    assert samples(duration, duration.name + "_count", lamina_stream="false")[0].value == 1

    tokens = families["gen_ai_client_token_usage"]
    assert samples(tokens, tokens.name + "_sum", gen_ai_token_type="input")[0].value == 30
    assert samples(tokens, tokens.name + "_sum", gen_ai_token_type="output")[0].value == 21

    ttft = families["gen_ai_server_time_to_first_token_seconds"]
    assert samples(ttft, ttft.name + "_count")[0].value == 2  # only the streams have a first token


def test_provider_errors_are_a_counter_and_jobs_a_gauge_by_state(prom: PrometheusSetup) -> None:
    for _ in range(3):
        metrics.record_provider_error(
            provider_id="vllm", provider_type="remote::vllm", api="inference", status=502
        )
    stop = metrics.observe_jobs(lambda: {"scheduled": 2, "in_progress": 1, "completed": 0})
    try:
        families = scrape(prom)
    finally:
        stop()
    errors = families["lamina_provider_errors"]
    assert errors.type == "counter"
    (sample,) = samples(errors, "lamina_provider_errors_total")
    assert sample.value == 3
    assert sample.labels == {
        "lamina_provider_id": "vllm",
        "lamina_provider_type": "remote::vllm",
        "lamina_api": "inference",
        "http_response_status_code": "502",
    }
    jobs = families["lamina_jobs"]
    assert jobs.type == "gauge"
    assert {s.labels["lamina_job_state"]: s.value for s in jobs.samples} == {
        "scheduled": 2,
        "in_progress": 1,
        "completed": 0,
    }
    # Unregistered: the next scrape has no job counts.
    assert "lamina_jobs" not in scrape(prom) or not scrape(prom)["lamina_jobs"].samples


def test_nothing_is_recorded_while_telemetry_is_off() -> None:
    deactivate()
    assert metrics.instruments() is None
    metrics.record_inference(
        model="m", provider_id="p", operation="chat", stream=False, input_tokens=1, output_tokens=1,
        seconds=0.1, ttft_seconds=None,
    )  # fmt: skip
    metrics.record_provider_error(provider_id="p", provider_type="t", api="inference", status=502)
    setup = build_prometheus(TelemetryConfig(sinks=[]))
    assert setup is not None
    provider = LaminaMeterProvider(metric_readers=[setup.reader])
    activate(TelemetrySettings(tracer_provider=NoOpTracerProvider(), meter_provider=provider))
    try:
        body, _ = setup.exposition()
        assert b"gen_ai_client_operation_duration" not in body
        assert b"lamina_provider_errors" not in body
    finally:
        deactivate()
        provider.shutdown()


def test_instruments_are_cached_per_activation() -> None:
    first = LaminaMeterProvider()
    second = LaminaMeterProvider()
    try:
        activate(TelemetrySettings(tracer_provider=NoOpTracerProvider(), meter_provider=first))
        one = metrics.instruments()
        assert one is not None and metrics.instruments() is one
        activate(TelemetrySettings(tracer_provider=NoOpTracerProvider(), meter_provider=second))
        assert metrics.instruments() not in (None, one)
        activate(TelemetrySettings(tracer_provider=NoOpTracerProvider(), meter_provider=None))  # traces only
        assert metrics.instruments() is None
    finally:
        deactivate()
        first.shutdown()
        second.shutdown()


def test_prometheus_off_builds_nothing() -> None:
    assert build_prometheus(TelemetryConfig(sinks=[], prometheus=False)) is None


def test_a_delta_reader_gets_what_each_interval_added_and_a_cumulative_one_the_totals() -> None:
    """The trace store's reader asks for deltas, Prometheus and OTLP for totals: one provider serves both."""
    from opentelemetry.sdk.metrics import Histogram
    from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader

    delta = InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.DELTA})
    cumulative = InMemoryMetricReader()
    provider = LaminaMeterProvider(metric_readers=[delta, cumulative])
    activate(TelemetrySettings(tracer_provider=NoOpTracerProvider(), meter_provider=provider))

    def points(reader: InMemoryMetricReader) -> list:
        data = reader.get_metrics_data()
        return [
            p
            for rm in (data.resource_metrics if data else [])
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "lamina.provider.errors" or m.name == "gen_ai.client.operation.duration"
            for p in m.data.data_points
        ]

    def call(seconds: float) -> None:
        metrics.record_inference(
            model="m", provider_id="p", operation="chat", stream=False, input_tokens=None,
            output_tokens=None, seconds=seconds, ttft_seconds=None,
        )  # fmt: skip

    try:
        call(0.05)
        call(0.5)
        (first,) = points(delta)
        assert (first.count, first.sum) == (2, pytest.approx(0.55))
        call(3.0)
        (second,) = points(delta)
        assert (second.count, second.sum) == (1, pytest.approx(3.0))
        assert second.start_time_unix_nano == first.time_unix_nano
        assert sum(second.bucket_counts) == 1
        assert points(delta) == []  # nothing new: no point
        (total,) = points(cumulative)
        assert (total.count, total.sum) == (3, pytest.approx(3.55))
        assert total.min == pytest.approx(0.05) and total.max == pytest.approx(3.0)
    finally:
        deactivate()
        provider.shutdown()


def test_a_plain_sdk_meter_provider_gets_the_metrics_through_sdk_instruments() -> None:
    """A third-party telemetry provider's plain MeterProvider does not collect the core's aggregates: the
    core records through ordinary instruments too (slower, still complete)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    activate(TelemetrySettings(tracer_provider=NoOpTracerProvider(), meter_provider=provider))
    stop = metrics.observe_jobs(lambda: {"scheduled": 4})
    try:
        metrics.record_provider_error(provider_id="p", provider_type="remote::x", api="inference", status=504)
        metrics.record_inference(
            model="m", provider_id="p", operation="chat", stream=True, input_tokens=3, output_tokens=2,
            seconds=0.2, ttft_seconds=0.05,
        )  # fmt: skip
        handle = http_metrics.request_started("POST")
        assert handle is not None
        http_metrics.request_ended(handle, "/v1/chat/completions", 502, 0.3)
        found = {
            m.name: m.data.data_points
            for rm in reader.get_metrics_data().resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        }
    finally:
        stop()
        deactivate()
        provider.shutdown()
    assert [p.value for p in found["lamina.provider.errors"]] == [1]
    assert found["lamina.provider.errors"][0].attributes["http.response.status_code"] == 504
    assert [(p.count, p.sum) for p in found["gen_ai.client.operation.duration"]] == [(1, pytest.approx(0.2))]
    assert sorted(p.sum for p in found["gen_ai.client.token.usage"]) == [2, 3]
    assert [(dict(p.attributes), p.value) for p in found["lamina.jobs"]] == [
        ({"lamina.job.state": "scheduled"}, 4)
    ]
    (request,) = found["http.server.request.duration"]
    assert (request.count, dict(request.attributes)) == (
        1,
        {
            "http.request.method": "POST",
            "http.route": "/v1/chat/completions",
            "http.response.status_code": 502,
            "error.type": "502",
        },
    )
    assert [p.value for p in found["http.server.active_requests"]] == [0]
