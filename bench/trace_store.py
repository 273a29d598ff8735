"""The trace store's insert CPU per request as the store grows: its layout and write batches now vs before.

``python -m bench trace-store [--requests N] [--step S] [--out docs/benchmarks.md]``. Grows two SQLite
trace stores (lamina_telemetry.store) side by side, a step of S chat completions at a time into each,
alternating, and reports the CPU each step cost a request. A request is the two span rows the export
worker makes of a chat completion (``export_worker.record_rows`` of the records the server's own
telemetry calls make: bench.telemetry_worker.make_records), each request with new random trace and span
ids, as real ones are:

- ``before``: the layout before step 8 of docs/benchmarks.md's "Telemetry cost": primary key
  (trace_id, span_id) plus an index on span_id, SQLite's default page cache and checkpoints, a
  transaction per batch of 512 requests (as the gateway sends them);
- ``now``: the store as it is (one unique index (span_id, trace_id), its pragmas) written as the worker
  writes it when behind: transactions of up to ``export_worker.STORE_ROWS`` rows.

CPU is ``time.process_time`` (aiosqlite's thread and SQLite included). Random ids put each new row on a
random page of every index keyed by them, so the cost grows with the store; what is measured is how fast.
"""

from __future__ import annotations

import argparse
import asyncio
import marshal
import random
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from bench import report

BEFORE_BATCH = 1024  # span rows: 512 requests, the gateway's batch


def _before_store() -> Any:
    from lamina_telemetry.store import SqliteTraceStore

    class Before(SqliteTraceStore):
        pragmas: ClassVar[tuple[str, ...]] = ()

        async def _migrate_sqlite(self, conn: Any) -> None:
            return None

        def _schema_for(self, backend: Any) -> list[str]:
            s, t = self.spans, self.table
            table = self._spans_table(s, backend)
            old = [
                table[:-1] + ", PRIMARY KEY (trace_id, span_id))",
                f"CREATE INDEX {t}_spans_span ON {s} (span_id)",
            ]
            return old + [x for x in super()._schema_for(backend)[1:] if f"{t}_spans_ids" not in x]

    return Before


def request_rows() -> list[tuple[Any, ...]]:
    """The trace store rows of one chat completion, as the export worker makes them."""
    from bench.telemetry_worker import make_records
    from lamina_telemetry.export_worker import flat_records, record_rows

    flat = flat_records(marshal.loads(make_records(1)[0]))
    rows, _ = record_rows(flat, "bench", 10**18)
    return rows


def _batches(template: list[tuple[Any, ...]], requests: int, rows_a_batch: int, rng: random.Random) -> Any:
    """``requests`` requests' rows with new random ids, in batches of ``rows_a_batch`` rows."""
    batch: list[tuple[Any, ...]] = []
    for _ in range(requests):
        trace_id = f"{rng.getrandbits(128):032x}"
        ids = {row[1]: f"{rng.getrandbits(64):016x}" for row in template}
        for row in template:
            batch.append((trace_id, ids[row[1]], ids.get(row[2]), *row[3:]))
        if len(batch) >= rows_a_batch:
            yield batch
            batch = []
    if batch:
        yield batch


async def _grow(store: Any, batches: Any) -> float:
    start = time.process_time()
    for batch in batches:
        await store.add_spans(batch)
    return time.process_time() - start


async def run(
    template: list[tuple[Any, ...]], requests: int, step: int, work: Path
) -> dict[str, list[float]]:
    from lamina_telemetry.export_worker import STORE_ROWS
    from lamina_telemetry.store import SqliteTraceStore, SqliteTraceStoreConfig

    layouts = {"before": (_before_store(), BEFORE_BATCH), "now": (SqliteTraceStore, STORE_ROWS)}
    stores = {}
    for name, (cls, _) in layouts.items():
        stores[name] = cls(SqliteTraceStoreConfig(db_path=str(work / f"{name}.db")))
        await stores[name].initialize()
    costs: dict[str, list[float]] = {name: [] for name in layouts}
    try:
        for k in range(requests // step):
            for name, (_, rows_a_batch) in layouts.items():
                rng = random.Random(k)  # the same ids for both stores
                cpu = await _grow(stores[name], _batches(template, step, rows_a_batch, rng))
                costs[name].append(cpu / step * 1e6)
                print(f"{name:7} {(k + 1) * step:>8,} requests stored: {costs[name][-1]:6.1f} µs a request")
    finally:
        for store in stores.values():
            await store.close()
    return costs


def main(argv: list[str]) -> int:
    from bench.gateway_report import machine
    from lamina_telemetry.export_worker import STORE_ROWS

    parser = argparse.ArgumentParser(prog="bench trace-store", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=204_800, help="requests in all (default 204800)")
    parser.add_argument("--step", type=int, default=20_480, help="requests a step (default 20480)")
    parser.add_argument("--out", type=Path, default=None, help="update this section of this file")
    args = parser.parse_args(argv)
    command = ("hatch run dev:bench trace-store " + shlex.join(argv)).strip()
    with tempfile.TemporaryDirectory(prefix="lamina-bench-store-") as tmp:
        costs = asyncio.run(run(request_rows(), args.requests, args.step, Path(tmp)))
        sizes = {name: (Path(tmp) / f"{name}.db").stat().st_size / 1e6 for name in costs}
    steps = len(costs["now"])
    labels = {
        "before": f"before: primary key + span_id index, default pragmas, {BEFORE_BATCH} rows a transaction",
        "now": f"now: unique (span_id, trace_id), cache and checkpoint pragmas, up to {STORE_ROWS} rows",
    }
    headers = ["trace store layout, writes", *(f"{(k + 1) * args.step // 1000}k" for k in range(steps)), "MB"]
    rows = [
        [labels[name], *(report.fmt_num(c, 0) for c in values), report.fmt_num(sizes[name], 0)]
        for name, values in costs.items()
    ]
    table = report.markdown_table(headers, rows, "l" + "r" * (steps + 1))
    info = machine()
    text = (
        "### The trace store's inserts as it grows\n\n"
        f"`{command}`: {info['date']}; {info['Python']}, git {info['git']}; SQLite (WAL, synchronous "
        "NORMAL); "
        f"CPU µs a request (its two span rows, new random ids) of each step of {args.step:,} requests, by "
        "the number of requests stored at its end; both stores grown in the same process, steps "
        f"alternating; MB: the file at the end.\n\n{table}\n"
    )
    print(text)
    if args.out:
        report.update_doc(args.out, text, section="trace-store")
        print(f"wrote {args.out}")
    return 0
