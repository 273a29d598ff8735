"""lamina.telemetry.aggregates: the in-process metric aggregates the telemetry provider's readers collect."""

from __future__ import annotations

import threading

from lamina.telemetry import metrics
from lamina.telemetry.aggregates import Histogram, Sum, observe
from lamina.telemetry.state import TelemetrySettings, activate, deactivate


def test_histogram_buckets_are_le_and_count_sum_min_max_follow() -> None:
    h = Histogram("d", "s", "duration", ("route",), (0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        h.record(value, ("/a",))
    h.record(2.0, ("/b",))
    snap = h.snapshot()
    points = {attrs["route"]: state for attrs, state in snap.points}
    a = points["/a"]
    assert a.bucket_counts == (2, 2, 1)  # 0.1 is in the <= 0.1 bucket, 1.0 in the <= 1.0 one
    assert (a.count, a.sum, a.min, a.max) == (5, 8.65, 0.05, 7.0)
    assert points["/b"].bucket_counts == (0, 0, 1) and points["/b"].count == 1


def test_a_series_kept_at_hand_is_reported_once_observed() -> None:
    """Histogram.series + observe (an inference call's four series): the same state record() keeps; a
    series made but never observed (a non-streamed call's time to first token) is not reported."""
    h = Histogram("d", "s", "duration", ("route",), (0.1, 1.0))
    state = h.series(("/a",))
    assert h.snapshot().points == []
    observe(((state, h.bounds, 0.05), (state, h.bounds, None), (state, h.bounds, 3)))
    h.record(0.5, ("/a",))
    ((attrs, point),) = h.snapshot().points
    assert attrs == {"route": "/a"} and point.bucket_counts == (1, 1, 1)
    assert (point.count, point.sum, point.min, point.max) == (3, 3.55, 0.05, 3.0)
    assert all(type(v) is float for v in (point.sum, point.min, point.max))


def test_record_inference_reports_what_a_call_measured() -> None:
    class Collecting:  # a meter provider that reads the aggregates (lamina_telemetry's does)
        collects_lamina_aggregates = True

    provider = Collecting()
    activate(TelemetrySettings(tracer_provider=None, meter_provider=provider))
    try:
        for _ in range(2):
            metrics.record_inference(
                model="m", provider_id="p", operation="chat", stream=False, input_tokens=12,
                output_tokens=None, seconds=0.25, ttft_seconds=None,
            )  # fmt: skip
        by_name = {snap.name: snap.points for snap in metrics.snapshot(provider)}
    finally:
        deactivate()
    ((tokens, used),) = by_name["gen_ai.client.token.usage"]  # no output tokens reported: no series
    assert tokens["gen_ai.token.type"] == "input" and (used.count, used.sum) == (2, 24.0)
    assert by_name["gen_ai.server.time_to_first_token"] == []
    ((call, took),) = by_name["gen_ai.client.operation.duration"]
    assert call == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "m",
        "lamina.provider.id": "p",
        "lamina.stream": False,
    }
    assert (took.count, took.sum, took.max) == (2, 0.5, 0.25)


def test_none_attributes_are_left_out() -> None:
    s = Sum("errors", "1", "errors", ("provider", "status"), monotonic=True)
    s.add(1, ("p", None))
    s.add(2, ("p", None))
    assert s.snapshot().points == [({"provider": "p"}, 3)]


def test_collections_from_another_thread_while_recording_lose_nothing() -> None:
    """Recording takes no lock: a collection in an exporter thread copies each series at once. Every
    snapshot taken while recording is consistent (count = its buckets), never goes backwards, and the
    last one has every measurement."""
    h = Histogram("d", "s", "duration", ("route",), (1.0, 2.0, 3.0))
    s = Sum("n", "1", "requests", ("route",), monotonic=True)
    stop = threading.Event()
    seen: list[tuple[int, float]] = []
    problems: list[str] = []

    def collect() -> None:
        while not stop.is_set():
            for _, state in h.snapshot().points:
                if state.count != sum(state.bucket_counts):
                    problems.append(f"count {state.count} != buckets {state.bucket_counts}")
                seen.append((state.count, 0.0))
            s.snapshot()

    thread = threading.Thread(target=collect)
    thread.start()
    n = 200_000
    for i in range(n):
        h.record(float(i % 4), ("/x",))
        s.add(1, ("/x",))
    stop.set()
    thread.join()
    assert not problems
    counts = [c for c, _ in seen]
    assert counts == sorted(counts) and len(counts) > 1
    ((_, final),) = h.snapshot().points
    assert final.count == n and final.bucket_counts == (n // 2, n // 4, n // 4, 0)
    assert final.sum == sum(float(i % 4) for i in range(n))
    assert s.snapshot().points == [({"route": "/x"}, n)]
