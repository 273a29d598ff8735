"""A real Ray cluster on this machine, for tests and benches: a head node and ``workers`` more, each on its
own loopback address (127.0.0.2, 127.0.0.3, ...) so that Ray sees separate nodes.

Every Ray process it starts is in one process group of its own (``ray start`` runs in a new session), so
``stop`` ends exactly those (never ``ray stop``, which would stop every Ray cluster of the machine);
``kill_node(n)`` SIGKILLs worker node ``n``'s raylet: Ray then declares that node dead, as when a machine
fails. Usage statistics are off and auth is disabled for each process; the cluster's files live in its
own ``temp_dir`` (keep its path short: Ray's socket paths have a length limit).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from lamina.testing.processes import free_port

HEAD_IP = "127.0.0.2"
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
# Ray's system config through its RAY_<name> variables: a dead node is declared dead after ~3 s instead of
# ~15 s (the GCS health-checks each raylet), so a node-death test does not wait long.
FAST_FAILURE_DETECTION = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def ray_cli() -> str:
    """The ``ray`` command of this Python environment (the workers must run the same one)."""
    local = Path(sys.executable).parent / "ray"
    return str(local) if local.exists() else shutil.which("ray") or "ray"


class LocalRayCluster:
    def __init__(self, temp_dir: str | Path, *, workers: int = 1, cpus_per_node: int = 1) -> None:
        self.temp_dir = Path(temp_dir)
        self.workers = workers
        self.cpus_per_node = cpus_per_node
        self.port = 0
        self._groups: list[int] = []  # process group ids: the head's, then each worker's
        self.env = {**os.environ, **RAY_ENV, **FAST_FAILURE_DETECTION}

    @property
    def address(self) -> str:
        return f"{HEAD_IP}:{self.port}"

    def node_ip(self, worker: int) -> str:
        return f"127.0.0.{3 + worker}"

    def start(self) -> LocalRayCluster:
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._ray_start(
            "--head",
            "--node-ip-address",
            HEAD_IP,
            "--port",
            str(self.port),
            "--include-dashboard=false",
            "--disable-usage-stats",
            "--temp-dir",
            str(self.temp_dir),
        )
        for n in range(self.workers):
            self._ray_start("--address", self.address, "--node-ip-address", self.node_ip(n))
        return self

    def _ray_start(self, *args: str) -> None:
        argv = [ray_cli(), "start", *args, "--num-cpus", str(self.cpus_per_node)]
        log = self.temp_dir / f"ray-start-{len(self._groups)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
            self._groups.append(proc.pid)
            code = proc.wait(timeout=180)
        if code != 0:
            self.stop()
            raise RuntimeError(f"`{' '.join(argv)}` failed ({code}): {log.read_text()[-2000:]}")

    def raylet_pids(self, worker: int) -> list[int]:
        """The raylet process(es) of worker node ``worker``."""
        ip = self.node_ip(worker)
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline and cmdline[0].endswith(b"raylet") and f"--node_ip_address={ip}".encode() in cmdline:
                if os.getpgid(int(proc.name)) in self._groups:
                    found.append(int(proc.name))
        return found

    def kill_node(self, worker: int) -> None:
        """SIGKILL worker node ``worker``'s raylet (its workers exit with it): the node dies."""
        pids = self.raylet_pids(worker)
        if not pids:
            raise RuntimeError(f"no raylet of node {self.node_ip(worker)} is running")
        for pid in pids:
            os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM then SIGKILL every process of the cluster's process groups; its files are removed."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            alive = False
            for group in self._groups:
                try:
                    os.killpg(group, sig)
                    alive = True
                except ProcessLookupError:
                    continue
            if not alive:
                break
            time.sleep(1.0 if sig == signal.SIGTERM else 0.2)
        self._groups.clear()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalRayCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
