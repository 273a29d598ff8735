"""Local inference through Lamina vs the same runtimes called directly.

``python -m bench local [--tokens N] [--runs N] [--no-doc]`` (``hatch run bench local``):

* tokens/s of one stream: llama.cpp (xllamacpp) called in this process, then the same GGUF, the
  same prompt and the same settings through ``lamina run`` (the ``local`` distribution) over HTTP;
* time to first token, both ways (the difference is what Lamina adds);
* 4 concurrent streams, aggregate tokens/s, both ways;
* embeddings/s at batch 32 (texts of about 64 tokens): the ONNX engine called directly, then
  ``POST /v1/embeddings`` with 32 inputs per request;
* start-up: ``lamina run`` to the first 200 on ``/v1/health``.

Each measurement is the median of ``--runs`` runs after one warm-up. Generation is forced to
exactly ``--tokens`` tokens (llama.cpp's ``ignore_eos``) at temperature 0, so both sides do the same
work. The direct side runs first and is released before Lamina starts: they never share the CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.report import console_table, markdown_table, update_doc

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
MODEL = "SmolLM2-135M-Instruct"
EMBEDDER = "all-MiniLM-L6-v2"
PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."}]
TEXT = (
    "The lighthouse keeper climbed the spiral stairs every evening to light the lamp, watching the "
    "ships pass the rocky headland while the wind rattled the windows and gulls circled overhead."
)


@dataclass
class Stream:
    ttft: float  # seconds to the first content token
    total: float  # seconds to the end
    tokens: int

    @property
    def tps(self) -> float:
        return (self.tokens - 1) / (self.total - self.ttft) if self.total > self.ttft else float("nan")


def _body(tokens: int) -> dict:
    return {
        "messages": PROMPT,
        "max_tokens": tokens,
        "temperature": 0,
        "seed": 1,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


# -- direct ----------------------------------------------------------------------------------------


def _direct_server(parallel: int):
    import xllamacpp

    from lamina_llama_cpp.config import LlamaCppConfig
    from lamina_llama_cpp.runtime import bundled_path

    cfg = LlamaCppConfig(parallel=parallel)
    params = xllamacpp.CommonParams()
    params.model.path = str(bundled_path(MODEL))
    params.n_parallel = parallel
    params.n_ctx = cfg.context_length * parallel
    params.n_batch = cfg.batch_size
    params.cpuparams.n_threads = cfg.threads
    params.cpuparams_batch.n_threads = cfg.threads
    params.use_jinja = True
    params.verbosity = -1
    return xllamacpp.Server(params)


def _direct_stream(server, tokens: int) -> Stream:
    started = time.perf_counter()
    first: list[float] = []
    usage: dict = {}

    def on_chunk(chunk: dict) -> bool:
        for choice in chunk.get("choices") or []:
            if (choice.get("delta") or {}).get("content") and not first:
                first.append(time.perf_counter())
        usage.update(chunk.get("usage") or {})
        return False

    server.handle_chat_completions(_body(tokens), on_chunk)
    end = time.perf_counter()
    return Stream(first[0] - started, end - started, int(usage.get("completion_tokens", tokens)))


def _direct_concurrent(server, tokens: int, n: int) -> tuple[float, list[Stream]]:
    results: list[Stream] = []
    lock = threading.Lock()

    def one() -> None:
        s = _direct_stream(server, tokens)
        with lock:
            results.append(s)

    started = time.perf_counter()
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, results


def _direct_embeddings(batches: int) -> float:
    from lamina_onnx_embeddings.engine import embed_direct

    texts = [f"{i}: {TEXT}" for i in range(32)]
    embed_direct(texts)  # warm-up
    started = time.perf_counter()
    for _ in range(batches):
        embed_direct(texts, max_batch_size=32)
    return 32 * batches / (time.perf_counter() - started)


# -- through Lamina --------------------------------------------------------------------------------


async def _api_stream(session: aiohttp.ClientSession, url: str, tokens: int) -> Stream:
    body = {"model": MODEL, **_body(tokens)}
    started = time.perf_counter()
    first = None
    count = 0
    async with session.post(f"{url}/v1/chat/completions", json=body) as resp:
        resp.raise_for_status()
        async for raw in resp.content:
            line = raw.strip()
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or []:
                if (choice.get("delta") or {}).get("content") and first is None:
                    first = time.perf_counter()
            count = (chunk.get("usage") or {}).get("completion_tokens", count)
    end = time.perf_counter()
    return Stream((first or end) - started, end - started, count or tokens)


async def _api_embeddings(session: aiohttp.ClientSession, url: str, batches: int) -> float:
    texts = [f"{i}: {TEXT}" for i in range(32)]
    body = {"model": EMBEDDER, "input": texts}
    async with session.post(f"{url}/v1/embeddings", json=body) as resp:  # warm-up
        resp.raise_for_status()
    started = time.perf_counter()
    for _ in range(batches):
        async with session.post(f"{url}/v1/embeddings", json=body) as resp:
            resp.raise_for_status()
            await resp.read()
    return 32 * batches / (time.perf_counter() - started)


def _start_lamina(work: Path, parallel: int):
    from lamina.testing.processes import ServerProcess, free_port

    port = free_port()
    env = {
        **os.environ,
        "LAMINA_HOME": str(work / "home"),
        "LAMINA_LOG_LEVEL": "warning",
        "LAMINA_PARALLEL": str(parallel),
    }
    argv = [sys.executable, "-m", "lamina.cli", "run", "--port", str(port)]
    return ServerProcess(argv, port, log_path=work / "lamina.log", env=env)


async def _through_lamina(url: str, args: argparse.Namespace) -> dict:
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await _api_stream(session, url, 8)  # warm-up (the model loads in the background at start-up)
        singles = [await _api_stream(session, url, args.tokens) for _ in range(args.runs)]
        concurrent = []
        for _ in range(args.runs):
            started = time.perf_counter()
            streams = await asyncio.gather(*(_api_stream(session, url, args.tokens) for _ in range(4)))
            concurrent.append((time.perf_counter() - started, list(streams)))
        emb = [await _api_embeddings(session, url, args.batches) for _ in range(args.runs)]
    return {"singles": singles, "concurrent": concurrent, "embeddings": emb}


def _startup(work: Path, runs: int) -> list[float]:
    times = []
    for i in range(runs):
        server = _start_lamina(work / f"startup{i}", 2)
        started = time.perf_counter()
        server.start()
        times.append(time.perf_counter() - started)
        server.stop()
    return times


# -- report ----------------------------------------------------------------------------------------


def _agg(concurrent: list[tuple[float, list[Stream]]]) -> float:
    return statistics.median(sum(s.tokens for s in streams) / wall for wall, streams in concurrent)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench local", description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=128, help="tokens generated per stream")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batches", type=int, default=10, help="batches of 32 texts per embeddings run")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]

    server = _direct_server(parallel=4)
    _direct_stream(server, 8)
    direct_single = [_direct_stream(server, args.tokens) for _ in range(args.runs)]
    direct_conc = [_direct_concurrent(server, args.tokens, 4) for _ in range(args.runs)]
    del server
    direct_emb = [_direct_embeddings(args.batches) for _ in range(args.runs)]

    with tempfile.TemporaryDirectory(prefix="lamina-bench-local-") as tmp:
        work = Path(tmp)
        with _start_lamina(work / "main", parallel=4) as lamina:
            api = asyncio.run(_through_lamina(lamina.url, args))
        startup = _startup(work, args.runs)

    def med(values: list[float]) -> float:
        return statistics.median(values)

    d_tps, a_tps = med([s.tps for s in direct_single]), med([s.tps for s in api["singles"]])
    d_ttft, a_ttft = med([s.ttft for s in direct_single]) * 1000, med([s.ttft for s in api["singles"]]) * 1000
    d_conc, a_conc = _agg(direct_conc), _agg(api["concurrent"])
    d_emb, a_emb = med(direct_emb), med(api["embeddings"])
    rows = [
        ["1 stream: tokens/s", f"{d_tps:.1f}", f"{a_tps:.1f}", f"{100 * a_tps / d_tps:.0f}%", "≥ 90%"],
        [
            "1 stream: time to first token (ms)",
            f"{d_ttft:.1f}",
            f"{a_ttft:.1f}",
            f"+{a_ttft - d_ttft:.1f} ms",
            "",
        ],
        [
            "4 streams: aggregate tokens/s",
            f"{d_conc:.1f}",
            f"{a_conc:.1f}",
            f"{100 * a_conc / d_conc:.0f}%",
            "",
        ],
        ["embeddings/s, batch 32", f"{d_emb:.0f}", f"{a_emb:.0f}", f"{100 * a_emb / d_emb:.0f}%", ""],
        ["start-up to first /v1/health 200 (s)", "", f"{med(startup):.2f}", "", "< 3 s"],
    ]
    headers = ["measure", "direct", "through Lamina", "Lamina / direct", "target"]
    print(console_table(headers, rows, "lrrrr"))
    if not args.no_doc:
        text = "\n".join(
            [
                "## Local inference (issue 3)",
                "",
                f"Command: `hatch run bench local --tokens {args.tokens} --runs {args.runs}`. "
                f"SmolLM2-135M-Instruct Q4_1 on llama.cpp (xllamacpp), {args.tokens} tokens forced per "
                f"stream at temperature 0; all-MiniLM-L6-v2 int8 on ONNX Runtime. Medians of {args.runs} "
                f"runs. "
                f"Machine: {os.cpu_count()} CPUs, load average {load:.2f} at the start, Python "
                f"{sys.version.split()[0]}.",
                "",
                markdown_table(headers, rows, "lrrrr"),
            ]
        )
        update_doc(DOC, text, section="local")
        print(f"\nwrote {DOC}")
    return 0
