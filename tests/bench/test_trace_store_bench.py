"""``bench trace-store`` runs: both layouts take the same requests, each with its own ids."""

from __future__ import annotations

import random

import pytest

from bench import trace_store


def test_a_requests_rows_get_new_ids_and_keep_their_tree() -> None:
    template = trace_store.request_rows()
    assert len(template) == 2 and template[1][2] == template[0][1]  # the inference span under the request's
    batches = list(trace_store._batches(template, 3, 4, random.Random(0)))
    rows = [row for batch in batches for row in batch]
    assert [len(b) for b in batches] == [4, 2]
    assert len({row[1] for row in rows}) == 6 and len({row[0] for row in rows}) == 3
    pairs = zip(rows[::2], rows[1::2], strict=True)
    assert all(child[2] == root[1] and child[0] == root[0] for root, child in pairs)


def test_the_bench_grows_both_stores(capsys: pytest.CaptureFixture[str]) -> None:
    assert trace_store.main(["--requests", "400", "--step", "200"]) == 0
    out = capsys.readouterr().out
    assert "before: primary key" in out and "now: unique (span_id, trace_id)" in out
