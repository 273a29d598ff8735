"""Measurements behind README.md: latency, throughput, and precision/recall on the labelled set.

Run from the repository root with the project's environment:

    python plugins/prompt-guard/scripts/measure.py latency
    python plugins/prompt-guard/scripts/measure.py throughput
    python plugins/prompt-guard/scripts/measure.py dataset [tests/data/safety_prompts.jsonl]

Everything goes through the provider object (worker process, batcher, windows), not HTTP.
"""

from __future__ import annotations

import asyncio
import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lamina.apis.inference import UserMessage
from lamina.apis.safety import Shield
from lamina.providers import ProviderContext
from lamina.specs import Api
from lamina_prompt_guard.config import PromptGuardConfig
from lamina_prompt_guard.provider import PromptGuardProvider, create_provider

SHIELD = Shield(identifier="jailguard", provider_resource_id="jailguard", provider_id="pg")
SENTENCE = "The quarterly report shows revenue grew by {n} percent, driven by sales in the north. "


def short_text(i: int) -> str:
    return f"Please summarise email number {i} for me and list the action items."


def long_text(i: int) -> str:
    return "".join(SENTENCE.format(n=i + k) for k in range(40))[:2048]


async def start(**config: object) -> PromptGuardProvider:
    context = ProviderContext(
        api=Api.safety,
        provider_id="pg",
        provider_type="inline::prompt-guard",
        state_dir=Path(tempfile.mkdtemp(prefix="pg-measure-")),
    )
    provider = await create_provider(PromptGuardConfig(**config), {}, context)
    await provider.initialize()
    return provider


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def latency(calls: int = 60) -> None:
    for windows in (True, False):
        provider = await start(windows=windows)
        try:
            for name, make in (("short", short_text), ("2KB", long_text)):
                times = []
                before = provider.batcher.items_run
                for i in range(calls):
                    started = time.perf_counter()
                    await provider.run_shield(SHIELD, [UserMessage(content=make(i))], {})
                    times.append((time.perf_counter() - started) * 1000)
                per_call = (provider.batcher.items_run - before) / calls
                print(
                    f"windows={windows!s:5} {name:5}: p50 {pct(times, 0.5):7.1f} ms  "
                    f"p99 {pct(times, 0.99):7.1f} ms ({calls} calls, {per_call:.0f} pieces scored per call)"
                )
        finally:
            await provider.shutdown()


async def throughput(requests: int = 64, rounds: int = 7) -> None:
    """Concurrent single-text requests against each setting; the settings take turns, round after
    round, so a change in the machine's load hits them all alike. Median and best of the rounds."""
    texts = [short_text(i) for i in range(requests)]
    configs = (
        {"max_batch_size": 1},
        {"max_batch_size": 16},
        {"max_batch_size": 4, "use_detect_batch": True},
        {"max_batch_size": 16, "use_detect_batch": True},
        {"max_batch_size": 1, "workers": 2},
    )
    providers = [await start(windows=False, **config) for config in configs]
    rates: list[list[float]] = [[] for _ in configs]
    batches = [0] * len(configs)
    try:
        for _ in range(rounds):
            for k, provider in enumerate(providers):
                before = provider.batcher.batches_run
                started = time.perf_counter()
                await asyncio.gather(
                    *(provider.run_shield(SHIELD, [UserMessage(content=t)], {}) for t in texts)
                )
                rates[k].append(requests / (time.perf_counter() - started))
                batches[k] = provider.batcher.batches_run - before
    finally:
        for provider in providers:
            await provider.shutdown()
    for config, rate, n in zip(configs, rates, batches, strict=True):
        print(
            f"{json.dumps(config):48} median {statistics.median(rate):5.1f} texts/s, best {max(rate):5.1f} "
            f"({requests} concurrent requests in {n} batches)"
        )


async def dataset(rows: list[dict]) -> None:
    positive = [r["label"] in ("injection", "jailbreak") for r in rows]
    for windows in (False, True):
        provider = await start(windows=windows)
        try:
            results = await provider.run_moderation(SHIELD, [r["text"] for r in rows], {"threshold": 0.0})
        finally:
            await provider.shutdown()
        scores = [r.category_scores["prompt_injection"] for r in results]
        print(f"\nwindows={windows}: {sum(positive)} positives (injection + jailbreak), {len(rows)} prompts")
        print("| threshold | precision | recall | F1 | FP | FN | recall injection | recall jailbreak |")
        print("|---|---|---|---|---|---|---|---|")
        for th in (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98):
            hit = [s >= th for s in scores]
            tp = sum(h and p for h, p in zip(hit, positive, strict=True))
            fp = sum(h and not p for h, p in zip(hit, positive, strict=True))
            fn = sum(p and not h for h, p in zip(hit, positive, strict=True))
            precision = tp / (tp + fp) if tp + fp else 0.0
            recall = tp / (tp + fn)
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            by = {
                label: statistics.mean(h for h, r in zip(hit, rows, strict=True) if r["label"] == label)
                for label in ("injection", "jailbreak")
            }
            print(
                f"| {th} | {precision:.2f} | {recall:.2f} | {f1:.2f} | {fp} | {fn} | "
                f"{by['injection']:.2f} | {by['jailbreak']:.2f} |"
            )
        fp_at = collections.Counter(
            f"{r['label']}/{r['subtype']}"
            for r, s, p in zip(rows, scores, positive, strict=True)
            if not p and s >= 0.9
        )
        print("false positives at 0.9:", dict(fp_at))


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else "latency"
    if what == "latency":
        asyncio.run(latency())
    elif what == "throughput":
        asyncio.run(throughput())
    elif what == "dataset":
        path = Path(sys.argv[2] if len(sys.argv) > 2 else "tests/data/safety_prompts.jsonl")
        asyncio.run(dataset([json.loads(line) for line in path.read_text().splitlines() if line.strip()]))
    else:
        raise SystemExit(f"unknown measurement {what!r}: latency, throughput or dataset")


if __name__ == "__main__":
    main()
