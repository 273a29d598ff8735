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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

# pid -> the ServerProcess running it (dropped on stop()); read by lamina.testing.pytest_plugin.
RUNNING: dict[int, ServerProcess] = {}


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def until(check: Callable[[], Any], what: str, timeout: float = 60.0, interval: float = 0.05) -> Any:
    """Call ``check`` every ``interval`` seconds until it answers something truthy, and return that; an
    AssertionError naming ``what`` after ``timeout`` seconds (a test waiting on a server's state)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class ServerProcess:
    """A child process serving HTTP on loopback; stopped with SIGTERM (then SIGKILL).

    One process at a time: ``start()`` while it runs is an error (a second start used to orphan the
    first process, which kept serving the tests). ``restart()`` proves that a new process answers.
    Every running instance is in ``RUNNING`` so the pytest plugin can tell whose child a process is.
    """

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
        # Set by the pytest plugin: the longer-lived fixture that owns this server (its restarts too).
        self.owner: object | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> ServerProcess:
        if self.running:
            assert self.proc is not None
            raise RuntimeError(
                f"{self.argv[:4]} is already running (pid {self.proc.pid} on port {self.port}); "
                "call stop() first, or restart(); `with server.start():` starts it twice, use `with server:`"
            )
        if port_open(self.port):
            # wait_ready would take the other process's answers for this one's (a double start once
            # let a test talk to an orphaned server while the one it "restarted" had died).
            raise RuntimeError(
                f"port {self.port} already accepts connections before {self.argv[:4]} started; "
                "another process (an earlier server not stopped?) is listening there"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        RUNNING[self.proc.pid] = self
        self.wait_ready()
        return self

    def restart(self, timeout: float = 10.0) -> ServerProcess:
        """Stop the process and start a new one on the same port; fails unless the old one is gone."""
        if self.proc is None:
            raise RuntimeError(f"{self.argv[:4]} was never started; nothing to restart")
        old = self.proc
        self.stop(timeout)
        if old.poll() is None or pid_alive(old.pid):
            raise RuntimeError(f"{self.argv[:4]}: pid {old.pid} still runs after stop(); not restarted")
        self.start()
        assert self.proc is not None and self.proc.pid != old.pid
        return self

    def kill(self, timeout: float = 10.0) -> int:
        """SIGKILL the process (and its process group), as a crash would; returns the dead pid."""
        if not self.running:
            raise RuntimeError(f"{self.argv[:4]} is not running; nothing to kill")
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout)
        RUNNING.pop(self.proc.pid, None)
        return self.proc.pid

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                RUNNING.pop(self.proc.pid, None)
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
        if self.proc is None:
            return None
        try:
            if self.proc.poll() is not None:
                return self.proc.returncode
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is not None:
                RUNNING.pop(self.proc.pid, None)

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
