"""Job system overhead: submit + complete per job, and the cost of a progress write, on SQLite and PostgreSQL.

``python -m bench.jobs [--jobs N] [--writes N] [--no-postgres]``. Everything runs in this process
against a real store (a SQLite file in a temp dir; a PostgreSQL server started on loopback by
``lamina.testing.postgres``), with a handler that does nothing, so what is measured is the manager and
the database: wall time and this process's CPU time (``time.process_time``; PostgreSQL's own CPU is
not counted). Numbers on a shared 2-core machine are noisy: compare runs made in the same minute.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import structlog

from lamina.jobs import JobContext, JobManager, jobs_store_config, open_jobs_store


async def _noop(ctx: JobContext) -> None:
    return None


async def _writer(ctx: JobContext) -> dict[str, float]:
    """``writes`` flushed progress writes, then ``calls`` throttled progress calls; seconds and CPU each."""
    n, calls = ctx.params["writes"], ctx.params["calls"]
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        await ctx.progress(i + 1, n, checkpoint={"next": i + 1}, flush=True)
    flushed = (time.perf_counter() - wall, time.process_time() - cpu)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(calls):
        await ctx.progress(i + 1, calls, checkpoint={"next": i + 1})
    throttled = (time.perf_counter() - wall, time.process_time() - cpu)
    return {
        "flush_ms": flushed[0] / n * 1000,
        "flush_cpu_ms": flushed[1] / n * 1000,
        "throttled_us": throttled[0] / calls * 1e6,
        "throttled_writes": ctx.writes - n,
    }


async def measure(section: dict[str, Any], jobs: int, writes: int) -> dict[str, float]:
    store = await open_jobs_store(jobs_store_config(section, Path("unused.db")))
    manager = JobManager(store, max_concurrent=4, poll_seconds=2.0)
    manager.register("bench.noop", _noop)
    manager.register("bench.writer", _writer)
    await manager.start()
    try:
        # One at a time: submit, wait until completed (the latency a caller sees).
        n_seq = max(jobs // 5, 10)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n_seq):
            job = await manager.submit("bench.noop")
            await manager.wait(job.id, within=60)
        seq = ((time.perf_counter() - wall) / n_seq, (time.process_time() - cpu) / n_seq)
        # Many at once: submit them all, wait for the last (the throughput of the manager).
        wall, cpu = time.perf_counter(), time.process_time()
        submitted = [await manager.submit("bench.noop") for _ in range(jobs)]
        for job in submitted:
            await manager.wait(job.id, within=600)
        bulk = ((time.perf_counter() - wall) / jobs, (time.process_time() - cpu) / jobs)
        job = await manager.submit("bench.writer", {"writes": writes, "calls": 100_000})
        result = (await manager.wait(job.id, within=600)).result
        return {
            "seq_ms": seq[0] * 1000,
            "seq_cpu_ms": seq[1] * 1000,
            "bulk_ms": bulk[0] * 1000,
            "bulk_cpu_ms": bulk[1] * 1000,
            **result,
        }
    finally:
        await manager.shutdown()
        await store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.jobs", description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=500, help="jobs submitted at once (default 500)")
    parser.add_argument("--writes", type=int, default=500, help="flushed progress writes (default 500)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))  # warnings and up
    tmp = Path(tempfile.mkdtemp(prefix="lamina-bench-jobs-"))
    backends: dict[str, dict[str, Any]] = {"sqlite": {"type": "sqlite", "db_path": str(tmp / "jobs.db")}}
    server = None
    try:
        if not args.no_postgres:
            from lamina.testing.postgres import start_postgres

            pg_dir = Path(tempfile.mkdtemp(prefix="lamina-bench-pg-"))
            pg_dir.chmod(0o755)
            server = start_postgres(pg_dir)
            backends["postgres"] = server.kvstore_config(table_name=f"jobs_{uuid.uuid4().hex[:8]}")
        print(
            "| store | submit+complete, one at a time (wall / CPU) | submitted together (wall / CPU per job) "
            "| flushed progress write (wall / CPU) | throttled progress call |"
        )
        print("|---|---|---|---|---|")
        for name, section in backends.items():
            r = asyncio.run(measure(section, args.jobs, args.writes))
            print(
                f"| {name} | {r['seq_ms']:.2f} ms / {r['seq_cpu_ms']:.2f} ms | {r['bulk_ms']:.2f} ms / "
                f"{r['bulk_cpu_ms']:.2f} ms | {r['flush_ms']:.2f} ms / {r['flush_cpu_ms']:.2f} ms | "
                f"{r['throttled_us']:.1f} µs ({int(r['throttled_writes'])} writes in 100,000 calls) |"
            )
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(server.data_dir.parent, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
