"""lamina.telemetry.aggregates: the in-process metric aggregates the telemetry provider's readers collect."""

from __future__ import annotations

import threading

from lamina.telemetry.aggregates import Histogram, Sum


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
