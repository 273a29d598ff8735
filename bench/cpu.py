"""CPU accounting from /proc: what our processes used during a run, and what everything else did.

The benchmark shares two cores with whatever else runs on the machine. A run during which other
processes burned CPU is not comparable, so every measurement records the "foreign" CPU time.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

_TICK = os.sysconf("SC_CLK_TCK")


def _read_cpu(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    # the command name may contain spaces and parentheses; fields start after the last ')'
    fields = raw[raw.rfind(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return str(pid)
    words = [a.decode(errors="replace").rsplit("/", 1)[-1] for a in argv[:3] if a]
    return " ".join(words)[:60] or str(pid)


def snapshot() -> dict[int, float]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            cpu = _read_cpu(int(name))
            if cpu is not None:
                out[int(name)] = cpu
    return out


@dataclass
class CpuUsage:
    wall_s: float
    ours: dict[str, float] = field(default_factory=dict)  # name -> CPU seconds
    foreign_s: float = 0.0
    foreign_top: list[tuple[str, float]] = field(default_factory=list)  # (command, CPU seconds)

    def pct(self, name: str) -> float:
        """CPU use of one of our processes in percent of one core."""
        return 100.0 * self.ours.get(name, 0.0) / self.wall_s if self.wall_s else 0.0

    @property
    def foreign_pct(self) -> float:
        return 100.0 * self.foreign_s / self.wall_s if self.wall_s else 0.0


class CpuMeter:
    """``with CpuMeter({"lamina": pid, ...}) as meter: ...`` then ``meter.usage``."""

    def __init__(self, ours: dict[str, int], exclude: set[int] | None = None) -> None:
        self.ours = ours
        self.exclude = {os.getpid(), *(exclude or set())}
        self.usage: CpuUsage | None = None

    def __enter__(self) -> CpuMeter:
        self._before = snapshot()
        self._t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        after = snapshot()
        wall = time.monotonic() - self._t0
        ours_pids = set(self.ours.values()) | self.exclude
        usage = CpuUsage(wall_s=wall)
        for name, pid in self.ours.items():
            if pid in after and pid in self._before:
                usage.ours[name] = after[pid] - self._before[pid]
        foreign = []
        for pid, cpu in after.items():
            if pid in ours_pids:
                continue
            used = cpu - self._before.get(pid, 0.0)
            usage.foreign_s += used
            if used > 0:
                foreign.append((used, pid))
        usage.foreign_top = [(_command(pid), used) for used, pid in sorted(foreign, reverse=True)[:3]]
        self.usage = usage

    def describe_foreign(self) -> str:
        """The biggest other CPU users, e.g. ``python (pytest ...) 80%``."""
        usage = self.usage
        if usage is None or not usage.wall_s:
            return ""
        return ", ".join(f"{cmd} {100 * used / usage.wall_s:.0f}%" for cmd, used in usage.foreign_top)
