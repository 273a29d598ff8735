"""Shields on the labelled prompt set: precision, recall and run-shield latency through the API.

Starts ``lamina run`` on the embedded ``local`` distribution (or uses ``--url``), sends every prompt
of ``tests/data/safety_prompts.jsonl`` to ``POST /v1/safety/run-shield`` of each shield, one call at
a time, and scores the verdicts against the labels: a shield's positives are the labels it is
meant to catch (``POSITIVES``); a violation of level warn or error counts as flagged. A call that
fails (a guard model answering something that is not a verdict: HTTP 502) is counted apart, not
as safe.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.report import console_table, markdown_table, update_doc

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
DATA = ROOT / "tests" / "data" / "safety_prompts.jsonl"

# shield id (in the local distribution) -> the labels it should flag
POSITIVES: dict[str, set[str]] = {
    "prompt-guard": {"injection", "jailbreak"},
    "pii": {"pii"},
    "llama-guard": {"harmful"},
}
LABELS = ("benign", "injection", "jailbreak", "pii", "harmful")


@dataclass
class ShieldRun:
    shield: str
    flagged: dict[str, int] = field(default_factory=dict)  # label -> prompts flagged
    errors: dict[str, int] = field(default_factory=dict)  # label -> calls that failed
    latencies: list[float] = field(default_factory=list)  # seconds, successful calls
    error_samples: list[str] = field(default_factory=list)

    def score(self, counts: dict[str, int]) -> tuple[float, float, int, int]:
        positives = POSITIVES[self.shield]
        tp = sum(self.flagged.get(label, 0) for label in positives)
        fp = sum(n for label, n in self.flagged.items() if label not in positives)
        answered_pos = sum(counts[label] - self.errors.get(label, 0) for label in positives)
        precision = tp / (tp + fp) if tp + fp else float("nan")
        recall = tp / answered_pos if answered_pos else float("nan")
        return precision, recall, fp, sum(self.errors.values())


def load_prompts() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]


def run_shield(session: requests.Session, url: str, shield: str, prompts: list[dict]) -> ShieldRun:
    result = ShieldRun(shield)
    for p in prompts:
        body = {"shield_id": shield, "messages": [{"role": "user", "content": p["text"]}], "params": {}}
        started = time.perf_counter()
        response = session.post(f"{url}/v1/safety/run-shield", json=body, timeout=300)
        elapsed = time.perf_counter() - started
        label = p["label"]
        if response.status_code != 200:
            result.errors[label] = result.errors.get(label, 0) + 1
            if len(result.error_samples) < 3:
                result.error_samples.append(f"{response.status_code}: {response.text[:200]}")
            continue
        result.latencies.append(elapsed)
        violation = response.json().get("violation")
        if violation and violation["violation_level"] in ("warn", "error"):
            result.flagged[label] = result.flagged.get(label, 0) + 1
    return result


def _start_lamina(work: Path):
    from lamina.testing.processes import ServerProcess, free_port

    port = free_port()
    env = {**os.environ, "LAMINA_HOME": str(work / "home"), "LAMINA_LOG_LEVEL": "warning"}
    argv = [sys.executable, "-m", "lamina.cli", "run", "--port", str(port)]
    return ServerProcess(argv, port, log_path=work / "lamina.log", env=env)


def _pct(value: float) -> str:
    return "-" if value != value else f"{100 * value:.1f}%"  # NaN-safe


def measure(url: str, shields: list[str], prompts: list[dict]) -> list[ShieldRun]:
    session = requests.Session()
    runs = []
    for shield in shields:
        run_shield(session, url, shield, prompts[:3])  # warm-up
        runs.append(run_shield(session, url, shield, prompts))
    return runs


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench safety", description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running Lamina server (default: start the local distribution)")
    parser.add_argument("--shields", default=",".join(POSITIVES), help="comma-separated shield ids")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    shields = [s for s in args.shields.split(",") if s]
    unknown = [s for s in shields if s not in POSITIVES]
    if unknown:
        parser.error(f"no labels are known for shields {unknown}; known: {', '.join(POSITIVES)}")
    prompts = load_prompts()
    counts = {label: sum(p["label"] == label for p in prompts) for label in LABELS}
    load = os.getloadavg()[0]
    if args.url:
        runs = measure(args.url, shields, prompts)
    else:
        with tempfile.TemporaryDirectory(prefix="lamina-bench-safety-") as tmp:
            with _start_lamina(Path(tmp)) as lamina:
                runs = measure(lamina.url, shields, prompts)

    headers = ["shield", "catches", "precision", "recall", "false positives", "errors", "p50 ms", "p99 ms"]
    headers += [f"flagged {label} (of {counts[label]})" for label in LABELS]
    rows = []
    for run in runs:
        precision, recall, fp, errors = run.score(counts)
        lat = sorted(run.latencies)
        p50 = statistics.median(lat) * 1000 if lat else float("nan")
        p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))] * 1000 if lat else float("nan")
        rows.append(
            [
                run.shield,
                " + ".join(sorted(POSITIVES[run.shield])),
                _pct(precision),
                _pct(recall),
                str(fp),
                str(errors),
                f"{p50:.1f}",
                f"{p99:.1f}",
                *(str(run.flagged.get(label, 0)) for label in LABELS),
            ]
        )
        for sample in run.error_samples:
            print(f"{run.shield} error sample: {sample}")
    align = "ll" + "r" * (len(headers) - 2)
    print(console_table(headers, rows, align))
    if not args.no_doc:
        mix = ", ".join(f"{counts[k]} {k}" for k in LABELS)
        text = "\n".join(
            [
                "## Safety shields (issue 5)",
                "",
                f"Command: `hatch run bench safety`. The {len(prompts)} labelled prompts of "
                f"`tests/data/safety_prompts.jsonl` ({mix}) sent one at a time to "
                "`POST /v1/safety/run-shield` of each shield of the `local` distribution; flagged = a "
                "violation of level warn or error; precision and recall against the labels each shield "
                "is meant to catch; errors = calls that got no verdict (left out of recall). Latency: "
                f"wall time of each call seen by the client. Machine: {os.cpu_count()} CPUs, load average "
                f"{load:.2f} at the start, Python {sys.version.split()[0]}.",
                "",
                markdown_table(headers, rows, align),
            ]
        )
        update_doc(DOC, text, section="safety")
        print(f"\nwrote {DOC}")
    return 0
