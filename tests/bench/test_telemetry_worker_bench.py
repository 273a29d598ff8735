"""``bench telemetry-worker`` runs, and its two paths encode the same requests to the same OTLP size."""

from __future__ import annotations

import marshal

import pytest

from bench import telemetry_worker


def test_the_records_of_a_chat_completion_are_one_a_request_with_its_inference_span() -> None:
    records = telemetry_worker.make_records(3)
    assert len(records) == 3
    first = marshal.loads(records[0])
    assert first[0] == f"POST {telemetry_worker.ROUTE}" and [r[0] for r in first[16]] != []
    assert first[15]  # deferred attributes: built by the worker paths the bench times


def test_the_bench_runs_both_paths(capsys: pytest.CaptureFixture[str]) -> None:
    assert telemetry_worker.main(["--requests", "40", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "stock: SDK ReadableSpan" in out and "records: flat_records" in out
