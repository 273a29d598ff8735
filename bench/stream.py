"""Streamed-chunk latency: how long after the upstream sent a chunk does the client have it?

The bench upstream stamps every content chunk with ``time.time_ns()`` taken just before the
chunk goes to its socket. This client reads the server-sent events line by line as they arrive
and records ``time.time_ns()`` when each data line is available, so the difference is the
chunk's transit time through whatever sits between the two (nothing, or Lamina). Both ends read
CLOCK_REALTIME on the same machine, so the clocks agree.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field

import aiohttp

_STAMP = re.compile(rb'"content":\s*"t(\d+) ')


@dataclass
class StreamResult:
    latencies_ms: list[float] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)  # each stream's first chunk (also in latencies_ms)
    streams: int = 0
    failed: int = 0
    chunks_expected: int = 0
    first_error: str | None = None

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100.0 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def _one_stream(session: aiohttp.ClientSession, url: str, body: dict, result: StreamResult) -> None:
    got = []
    async with session.post(url, json=body) as resp:
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {(await resp.text())[:200]}")
        async for line in resp.content:
            now = time.time_ns()
            match = _STAMP.search(line)
            if match is not None:
                got.append((now - int(match.group(1))) / 1e6)
            elif line.startswith(b"data: [DONE]"):
                break
    if len(got) != body["bench_chunks"]:
        raise RuntimeError(f"expected {body['bench_chunks']} stamped chunks, got {len(got)}")
    result.latencies_ms.extend(got)
    result.first_ms.append(got[0])


async def measure(
    url: str,
    model: str,
    *,
    streams: int,
    chunks: int,
    interval_ms: float,
    concurrency: int = 1,
    warmup: int = 3,
) -> StreamResult:
    """Run ``streams`` streamed chat completions (``concurrency`` at a time) against ``url``."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "stream please"}],
        "stream": True,
        "bench_chunks": chunks,
        "bench_interval_ms": interval_ms,
    }
    result = StreamResult(chunks_expected=streams * chunks)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        scratch = StreamResult()
        for _ in range(warmup):  # open connections, warm caches; not recorded
            await _one_stream(session, url, body, scratch)
        remaining = streams

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                try:
                    await _one_stream(session, url, body, result)
                    result.streams += 1
                except Exception as exc:  # recorded, and reported by the caller
                    result.failed += 1
                    result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return result


def run(url: str, model: str, **kwargs) -> StreamResult:
    return asyncio.run(measure(url, model, **kwargs))
