"""Start real server processes for tests and benchmarks: lamina itself, llama.cpp, the fake upstream."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """A child process serving HTTP on loopback; stopped with SIGTERM (then SIGKILL)."""

    def __init__(
        self,
        argv: list[str],
        port: int,
        *,
        log_path: Path,
        env: dict[str, str] | None = None,
        ready_path: str = "/v1/health",
        ready_timeout: float = 60.0,
    ) -> None:
        self.argv = argv
        self.port = port
        self.log_path = log_path
        self.env = env
        self.ready_path = ready_path
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[:4]} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=1) as resp:
                    if resp.status < 500:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.argv[:4]} not ready within {self.ready_timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def llamacpp_server(log_dir: Path, *, embedding: bool = False, alias: str = "smollm2") -> ServerProcess:
    port = free_port()
    argv = [sys.executable, "-m", "lamina.testing.llamacpp_server", "--port", str(port), "--alias", alias]
    if embedding:
        argv.append("--embedding")
    return ServerProcess(argv, port, log_path=log_dir / f"llamacpp-{alias}.log", ready_path="/health")


def fake_openai_server(
    log_dir: Path, *, slow_seconds: float = 5.0, chunk_interval: float = 0.0
) -> ServerProcess:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "lamina.testing.fake_openai",
        "--port",
        str(port),
        "--slow-seconds",
        str(slow_seconds),
        "--chunk-interval",
        str(chunk_interval),
    ]
    return ServerProcess(argv, port, log_path=log_dir / "fake-openai.log", ready_path="/v1/models")


def lamina_server(
    run_config: dict[str, Any] | str | Path,
    work_dir: Path,
    *,
    port: int | None = None,
    env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
    name: str = "lamina",
) -> ServerProcess:
    """``lamina run`` on a run config (a dict is written to ``work_dir/run.yaml``)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(run_config, dict):
        path = work_dir / f"{name}-run.yaml"
        path.write_text(yaml.safe_dump(run_config, sort_keys=False))
        target = str(path)
    else:
        target = str(run_config)
    port = port or free_port()
    full_env = {**os.environ, "LAMINA_HOME": str(work_dir / "home"), "LAMINA_LOG_FORMAT": "json"}
    full_env.update(env or {})
    argv = [sys.executable, "-m", "lamina.cli", "run", target, "--port", str(port), *(extra_args or [])]
    return ServerProcess(argv, port, log_path=work_dir / f"{name}.log", env=full_env)
