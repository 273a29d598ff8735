"""The leak guard behind the pytest plugin: which child processes of pytest are alive, and who owns them.

A test may leave a child process running only when a longer-lived (class, module, package or
session scoped) fixture that is still set up owns it. A fixture owns the children that appeared
while pytest set it up, and every later process of a ``ServerProcess`` it started (a test that
restarts a module's server runs the new process on the fixture's behalf). When the fixture is
finalized its children must be gone too: whatever is left is reported at the teardown of the test
that ended the fixture, and killed, so one leak is reported once and does not pile up.

Children are read from ``/proc/<pid>/task/*/children`` (or, without that file, from each process's
parent pid). Zombies, dead but not yet reaped by their ``Popen``, count as gone.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from lamina.testing.processes import RUNNING, pid_alive

# Helpers the Python runtime starts on its own and keeps for the whole interpreter's life.
RUNTIME_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver", "semaphore_tracker")
# How long a child that is shutting down (SIGTERM sent by a finalizer, not yet exited) may take.
EXIT_GRACE_SECONDS = 3.0


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:300]


def _child_pids(parent: int) -> set[int]:
    pids: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{parent}/task")
    except OSError:
        return pids
    found_file = False
    for task in tasks:
        try:
            text = Path(f"/proc/{parent}/task/{task}/children").read_text()
        except OSError:
            continue
        found_file = True
        pids.update(int(p) for p in text.split())
    if found_file:
        return pids
    for entry in os.listdir("/proc"):  # kernels without CONFIG_PROC_CHILDREN
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                pids.add(int(entry))
    return pids


def live_children(parent: int | None = None) -> dict[int, str]:
    """pid -> command line of each live child of ``parent`` (this process), runtime helpers left out."""
    out: dict[int, str] = {}
    for pid in _child_pids(parent or os.getpid()):
        if not pid_alive(pid):
            continue
        cmd = cmdline(pid)
        if any(helper in cmd for helper in RUNTIME_HELPERS):
            continue
        out[pid] = cmd
    return out


def kill(pid: int) -> None:
    """SIGKILL the child and its process group (ServerProcess starts each in its own session)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    server = RUNNING.pop(pid, None)
    if server is not None and server.proc is not None:
        server.proc.wait(10)


class ChildGuard:
    """The owners of the children of this pytest process (see the module docstring)."""

    def __init__(self) -> None:
        self.baseline = set(live_children())  # started before the first test (not ours to judge)
        self.active: dict[int, str] = {}  # id(fixturedef) -> "scope fixture 'name'" while set up
        self.owned: dict[int, int] = {}  # child pid -> id(fixturedef)

    def adopt(self, owner: object, label: str, pids: set[int], servers: list[object]) -> None:
        self.active[id(owner)] = label
        for pid in pids:
            self.owned[pid] = id(owner)
        for server in servers:
            server.owner = id(owner)  # type: ignore[attr-defined]

    def release(self, owner: object) -> None:
        self.active.pop(id(owner), None)

    def _allowed(self, pid: int) -> bool:
        if pid in self.baseline or self.owned.get(pid) in self.active:
            return True
        server = RUNNING.get(pid)
        return server is not None and server.owner in self.active

    def leaks(self) -> dict[int, str]:
        """Children no active fixture owns, after giving the ones shutting down a moment to exit."""
        deadline = time.monotonic() + EXIT_GRACE_SECONDS
        while True:
            leaked = {pid: cmd for pid, cmd in live_children().items() if not self._allowed(pid)}
            if not leaked or time.monotonic() >= deadline:
                return leaked
            time.sleep(0.1)

    def report_and_kill(self, leaked: dict[int, str], where: str) -> str:
        for pid in leaked:
            kill(pid)
            self.owned.pop(pid, None)
        lines = "\n".join(f"  pid {pid}: {cmd}" for pid, cmd in sorted(leaked.items()))
        return (
            f"{where} left {len(leaked)} child process(es) running (now killed):\n{lines}\n"
            "Stop every process a test starts before it ends (use `with server:` or the start_lamina "
            "fixture), or start it in a module/session-scoped fixture that stops it."
        )
