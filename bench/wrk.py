"""Drive wrk with a Lua script: POST a JSON body, report req/s and latency percentiles as JSON."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# wrk calls done() once at the end with its own latency histogram (microseconds).
_LUA = """
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "application/json"
%(headers)s
%(delay)s

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%%d,"duration_us":%%d,"bytes":%%d,"err_connect":%%d,"err_read":%%d,' ..
    '"err_write":%%d,"err_status":%%d,"err_timeout":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,' ..
    '"max_us":%%d,"mean_us":%%.2f}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    cpu_s: float  # wrk's own CPU time (user + system)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed; `apt-get install -y wrk` (Debian) and run again")
    return found


def run_wrk(
    url: str,
    body: dict[str, Any],
    *,
    connections: int,
    duration: float,
    threads: int = 1,
    cpus: str | None = None,
    timeout_s: float = 10.0,
    headers: dict[str, str] | None = None,
    delay_ms: int = 0,
) -> WrkResult:
    """Run wrk against ``url`` POSTing ``body`` and return its parsed summary.

    Any connect/read/write/timeout error or non-2xx status is counted in ``errors``; the caller
    decides whether a run with errors is usable. ``delay_ms``: each connection waits that long after
    each answer before its next request (wrk's ``delay()``): a paced load of about
    ``connections / (delay + latency)`` requests a second instead of as many as the server can take.
    """
    text = json.dumps(body, separators=(",", ":"))
    if "]==]" in text:
        raise ValueError("request body cannot be embedded in the Lua script")
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        extra = "\n".join(f'wrk.headers["{k}"] = [==[{v}]==]' for k, v in (headers or {}).items())
        delay = f"delay = function() return {int(delay_ms)} end" if delay_ms > 0 else ""
        script.write_text(_LUA % {"body": text, "headers": extra, "delay": delay})
        argv = [
            wrk_binary(),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            f"{max(1, round(timeout_s))}s",
            "-s",
            str(script),
            url,
        ]
        if cpus is not None:
            argv = ["taskset", "-c", cpus, *argv]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out = proc.stdout.read().decode() if proc.stdout else ""
        err = proc.stderr.read().decode() if proc.stderr else ""
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err or out}")
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}\n{err}")
    doc = json.loads(line[len("BENCH_RESULT ") :])
    errors = sum(doc[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
    return WrkResult(
        requests=doc["requests"],
        duration_s=doc["duration_us"] / 1e6,
        errors=errors,
        p50_ms=doc["p50_us"] / 1000,
        p90_ms=doc["p90_us"] / 1000,
        p99_ms=doc["p99_us"] / 1000,
        max_ms=doc["max_us"] / 1000,
        mean_ms=doc["mean_us"] / 1000,
        cpu_s=usage.ru_utime + usage.ru_stime,
    )
