"""DatasetIO through the API: iterrows rows/s on a generated CSV, deep-page latency, and the server's
peak memory while paging through a large (~1 GB) CSV.

Starts ``lamina run`` with only the ``inline::localfs`` datasetio provider (or uses ``--url`` for the
rows/s part), writes the CSVs into a temporary directory (deleted afterwards), registers them by path
and reads them with ``GET /v1/datasetio/iterrows`` one page after another, as a client iterating a
dataset does. Peak memory is the server process's VmHWM (peak resident set) from /proc, read before
the large file is touched and after it has been read to the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.report import console_table, markdown_table, update_doc

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
MiB = 1024 * 1024


def _row(i: int) -> str:
    return f'{i},"What is {i} plus {i}, exactly?",{2 * i},the answer is {2 * i},{(i % 7) / 7:.3f}\n'


def write_csv(path: Path, rows: int) -> int:
    """A CSV of ``rows`` eval rows (~100 bytes each, one quoted field with a comma); its size."""
    block = 10_000
    with open(path, "w") as f:
        f.write("id,input_query,expected_answer,generated_answer,score\n")
        for base in range(0, rows, block):
            n = min(block, rows - base)
            f.write("".join(_row(i) for i in range(base, base + n)))
    return path.stat().st_size


def write_large_csv(path: Path, size: int) -> int:
    """About ``size`` bytes of the same rows; returns how many rows were written."""
    rows, chunk = 0, 100_000
    with open(path, "w") as f:
        f.write("id,input_query,expected_answer,generated_answer,score\n")
        while f.tell() < size:
            f.write("".join(_row(i) for i in range(rows, rows + chunk)))
            rows += chunk
    return rows


def register(session: requests.Session, url: str, dataset_id: str, path: Path) -> None:
    source = {"type": "uri", "uri": str(path)}
    body = {"dataset_id": dataset_id, "purpose": "eval/question-answer", "source": source}
    response = session.post(f"{url}/v1/datasets", json=body, timeout=600)
    response.raise_for_status()


def iterate(session: requests.Session, url: str, dataset_id: str, page: int) -> tuple[int, float]:
    """Read every row, ``page`` rows per request: (rows, seconds)."""
    start, rows = 0, 0
    started = time.perf_counter()
    while True:
        params = {"start_index": start, "limit": page}
        response = session.get(f"{url}/v1/datasetio/iterrows/{dataset_id}", params=params, timeout=600)
        response.raise_for_status()
        body = response.json()
        rows += len(body["data"])
        start += len(body["data"])
        if not body["has_more"]:
            return rows, time.perf_counter() - started


def page_ms(
    session: requests.Session, url: str, dataset_id: str, starts: list[int], limit: int
) -> list[float]:
    out = []
    for start in starts:
        t = time.perf_counter()
        params = {"start_index": start, "limit": limit}
        response = session.get(f"{url}/v1/datasetio/iterrows/{dataset_id}", params=params, timeout=600)
        response.raise_for_status()
        out.append((time.perf_counter() - t) * 1000)
    return out


def vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _start_lamina(work: Path):
    from lamina.testing.processes import ServerProcess, free_port

    config = work / "run.yaml"
    config.write_text(
        "version: 2\nimage_name: bench-datasets\nproviders:\n  datasetio:\n  - provider_id: localfs\n"
        "    provider_type: inline::localfs\n    config: {}\n"
    )
    port = free_port()
    env = {**os.environ, "LAMINA_HOME": str(work / "home"), "LAMINA_LOG_LEVEL": "warning"}
    argv = [sys.executable, "-m", "lamina.cli", "run", str(config), "--port", str(port)]
    return ServerProcess(argv, port, log_path=work / "lamina.log", env=env)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench datasets", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the rows/s CSV")
    parser.add_argument("--large-mb", type=int, default=1024, help="size of the large CSV in MiB (0: skip)")
    parser.add_argument("--tmp", default=None, help="where to write the CSVs (default: the system temp dir)")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    session = requests.Session()
    rows_table: list[list[str]] = []
    memory_table: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="lamina-bench-datasets-", dir=args.tmp) as tmp:
        work = Path(tmp)
        small = work / "rows.csv"
        size = write_csv(small, args.rows)
        with _start_lamina(work) as lamina:
            url = lamina.url
            register(session, url, "rows", small)
            for page in (100, 1000, 10_000):
                n, seconds = iterate(session, url, "rows", page)
                assert n == args.rows, (n, args.rows)
                name = f"{args.rows:,} rows, {size / MiB:.0f} MiB"
                rows_table.append([name, f"{page:,}", f"{n / seconds:,.0f}", f"{seconds:.2f}"])
                print(console_table(["dataset", "page rows", "rows/s", "seconds"], rows_table[-1:], "lrrr"))
            deep = page_ms(session, url, "rows", [args.rows - 50 - 997 * k for k in range(20)], 10)
            first = page_ms(session, url, "rows", [0] * 20, 10)
            if args.large_mb:
                large = work / "large.csv"
                t = time.perf_counter()
                large_rows = write_large_csv(large, args.large_mb * MiB)
                large_size = large.stat().st_size
                took = time.perf_counter() - t
                print(f"wrote {large_size / MiB:.0f} MiB, {large_rows:,} rows in {took:.0f}s")
                before = vm_hwm(lamina.pid)
                register(session, url, "large", large)
                t = time.perf_counter()
                deep_first = page_ms(session, url, "large", [large_rows - 10], 10)[0]  # builds the row index
                index_s = time.perf_counter() - t
                deep_starts = [large_rows - 10 - 7919 * k for k in range(20)]
                deep_large = page_ms(session, url, "large", deep_starts, 10)
                n, seconds = iterate(session, url, "large", 10_000)
                assert n == large_rows, (n, large_rows)
                after = vm_hwm(lamina.pid)
                memory_table.append(
                    [
                        f"{large_size / MiB:,.0f} MiB, {large_rows:,} rows",
                        f"{before / MiB:.0f}",
                        f"{after / MiB:.0f}",
                        f"{index_s:.1f}",
                        f"{statistics.median(deep_large):.1f}",
                        f"{n / seconds:,.0f}",
                        f"{seconds:.0f}",
                    ]
                )
                print(f"first deep page (index build) {deep_first:.0f} ms")
    headers_rows = ["dataset", "page rows", "rows/s", "seconds"]
    print(console_table(headers_rows, rows_table, "lrrr"))
    latency = (
        f"A page of 10 rows: p50 {statistics.median(first):.1f} ms at row 0, "
        f"{statistics.median(deep):.1f} ms near row {args.rows - 50:,} (the row index built once)."
    )
    print(latency)
    headers_mem = [
        "large CSV",
        "server peak RSS before, MiB",
        "peak RSS after reading it all, MiB",
        "row index build, s",
        "deep page p50, ms",
        "rows/s (pages of 10,000)",
        "seconds",
    ]
    if memory_table:
        print(console_table(headers_mem, memory_table, "lrrrrrr"))
    if not args.no_doc:
        parts = [
            "## Datasets: iterrows through the API (issue 14)",
            "",
            f"Command: `hatch run bench datasets` (`--large-mb 1024`). `lamina run` with only the "
            f"inline::localfs datasetio provider; generated eval CSVs (~100-byte rows, one quoted field "
            f"with a comma) registered by path and read to the end with `GET /v1/datasetio/iterrows`, one "
            f"page after another, by one client (requests; its JSON parsing shares the machine). Machine: "
            f"{os.cpu_count()} CPUs shared with other work, load average {load:.2f} at the start, Python "
            f"{sys.version.split()[0]}.",
            "",
            markdown_table(headers_rows, rows_table, "lrrr"),
            "",
            latency,
        ]
        if memory_table:
            parts += [
                "",
                "Memory on the large CSV: the server's peak resident set (VmHWM) before the file was "
                "registered and after every row was read; the file is deleted afterwards.",
                "",
                markdown_table(headers_mem, memory_table, "lrrrrrr"),
            ]
        update_doc(DOC, "\n".join(parts), section="datasets")
        print(f"\nwrote {DOC}")
    return 0
