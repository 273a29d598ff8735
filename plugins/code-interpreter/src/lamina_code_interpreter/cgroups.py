"""One cgroup per sandbox: a memory limit and a process limit for all of a call's processes together.

rlimits are per process (RLIMIT_AS) or per user (RLIMIT_NPROC, which does not apply to root at all),
so a fork bomb run by a root server, or many processes each under RLIMIT_AS, are bounded only by a
cgroup. cgroup v1 (a ``pids`` and a ``memory`` hierarchy) and cgroup v2 (a delegated subtree with
both controllers enabled) are used when the server may create directories there; otherwise
``CgroupParent.create`` returns None and says why, and the sandbox runs on rlimits alone.

Layout: ``<the server's own cgroup>/lamina-code-<pid>/call-<n>``, created per call and removed after.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

PARENT_PREFIX = "lamina-code-"


def _mounts() -> dict[str, Path]:
    """controller ('pids', 'memory', or '' for the cgroup2 mount) -> mount point."""
    found: dict[str, Path] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, extra = left.split(), right.split()
        if len(fields) < 5 or len(extra) < 3:
            continue
        if extra[0] == "cgroup2":
            found.setdefault("", Path(fields[4]))
        elif extra[0] == "cgroup":
            for option in extra[2].split(","):
                if option in ("pids", "memory"):
                    found.setdefault(option, Path(fields[4]))
    return found


def _own_paths() -> dict[str, str]:
    """controller ('' for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    own: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            own[controller] = path
    return own


def _remove_stale(parent: Path) -> None:
    """Remove the (empty) cgroups a server that died left behind: their pid is gone."""
    for old in parent.glob(f"{PARENT_PREFIX}*"):
        pid = old.name.removeprefix(PARENT_PREFIX)
        if not pid.isdigit() or int(pid) == os.getpid() or Path(f"/proc/{pid}").exists():
            continue
        for call in old.glob("call-*"):
            Cgroup([call]).remove()
        try:
            old.rmdir()
        except OSError:
            pass


@dataclass
class Cgroup:
    dirs: list[Path]

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def memory_events(self) -> int:
        """Processes the memory limit's OOM killer ended (v1 memory.oom_control, v2 memory.events)."""
        total = 0
        for d in self.dirs:
            for name in ("memory.oom_control", "memory.events"):
                try:
                    text = (d / name).read_text()
                except OSError:
                    continue
                for line in text.splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and value.strip().isdigit():
                        total += int(value)
        return total

    def remove(self) -> None:
        """Remove the call's cgroups; the pid namespace's teardown may still be going on: retry."""
        for d in self.dirs:
            for attempt in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    try:
                        for pid in (d / "cgroup.procs").read_text().split():
                            os.kill(int(pid), 9)
                    except (OSError, ValueError):
                        pass
                    time.sleep(0.02 * (attempt + 1) if attempt < 10 else 0.2)


class CgroupParent:
    """The server's parent cgroup(s) for sandboxes; ``create`` makes one call's cgroup."""

    def __init__(self, dirs: dict[str, Path], version: int) -> None:
        self.dirs = dirs
        self.version = version
        self._counter = itertools.count()

    @classmethod
    def create(cls) -> tuple[CgroupParent | None, str]:
        """The parent cgroups, or None and the reason they cannot be used."""
        try:
            mounts, own = _mounts(), _own_paths()
        except OSError as exc:
            return None, f"cannot read this process's cgroups: {exc}"
        name = f"{PARENT_PREFIX}{os.getpid()}"
        if "pids" in mounts and "memory" in mounts:
            dirs = {c: mounts[c] / own.get(c, "/").lstrip("/") / name for c in ("pids", "memory")}
            version = 1
        elif "" in mounts:
            dirs = {"": mounts[""] / own.get("", "/").lstrip("/") / name}
            version = 2
        else:
            return None, "no cgroup pids and memory controllers are mounted"
        try:
            for d in dirs.values():
                _remove_stale(d.parent)
                d.mkdir(exist_ok=True)
            if version == 2:
                (dirs[""] / "cgroup.subtree_control").write_text("+pids +memory")
        except OSError as exc:
            for d in dirs.values():
                try:
                    d.rmdir()
                except OSError:
                    pass
            parents = ", ".join(str(d.parent) for d in dirs.values())
            return None, f"cannot create a cgroup under {parents}: {exc}"
        return cls(dirs, version), f"cgroup v{version} at {', '.join(str(d) for d in dirs.values())}"

    def new_call(self, memory_bytes: int, max_processes: int) -> Cgroup:
        name = f"call-{next(self._counter)}"
        made: list[Path] = []
        try:
            for controller, parent in self.dirs.items():
                d = parent / name
                d.mkdir()
                made.append(d)
                if controller in ("pids", ""):
                    (d / "pids.max").write_text(str(max_processes))
                if controller == "memory":
                    (d / "memory.limit_in_bytes").write_text(str(memory_bytes))
                    if (d / "memory.memsw.limit_in_bytes").exists():
                        (d / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
                elif controller == "":
                    (d / "memory.max").write_text(str(memory_bytes))
                    if (d / "memory.swap.max").exists():
                        (d / "memory.swap.max").write_text("0")
        except OSError:
            Cgroup(made).remove()
            raise
        return Cgroup(made)

    def close(self) -> None:
        for d in self.dirs.values():
            try:
                d.rmdir()
            except OSError:
                pass
