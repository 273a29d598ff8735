"""The sandbox's command line and its cgroups, on their own."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lamina_code_interpreter.cgroups import PARENT_PREFIX, CgroupParent
from lamina_code_interpreter.sandbox import Interpreter, Limits, build_command, bwrap_args

LIMITS = Limits(
    timeout_seconds=5, cpu_seconds=2, memory_mb=128, max_processes=4, max_output_bytes=1000, tmp_size_mb=8
)
PYTHON = Interpreter(executable=sys.executable, binds=(sys.base_prefix,), import_paths=())


def test_the_sandbox_is_an_empty_read_only_root_with_a_private_tmp() -> None:
    args = bwrap_args("bwrap", PYTHON, LIMITS)
    assert args[:3] == ["bwrap", "--unshare-all", "--unshare-user"]
    for flag in ("--die-with-parent", "--new-session", "--clearenv", "--disable-userns"):
        assert flag in args
    assert args[args.index("--size") + 1] == str(8 * 1024 * 1024)
    assert args[args.index("--tmpfs") + 1] == "/tmp"
    assert args[args.index("--remount-ro") + 1] == "/" and args.index("--remount-ro") > args.index("--tmpfs")
    binds = [args[i + 1] for i, a in enumerate(args) if a in ("--bind", "--ro-bind")]
    assert "--bind" not in args, "nothing of the host is writable"
    assert sys.base_prefix in binds and "/" not in binds


def test_an_older_bwrap_without_size_or_disable_userns_still_gets_a_sandbox() -> None:
    args = bwrap_args("bwrap", PYTHON, LIMITS, frozenset())
    assert "--size" not in args and "--disable-userns" not in args
    assert "--unshare-all" in args and "--tmpfs" in args


def test_limits_are_set_before_bwrap_and_the_cgroup_joined_first() -> None:
    cmd = build_command("bwrap", "bwrap", PYTHON, LIMITS, cgroup_procs=["/cg/a/cgroup.procs"], report_fd=7)
    assert cmd[0] == "/bin/sh" and "/cg/a/cgroup.procs" in cmd
    prlimit = cmd.index("prlimit")
    assert cmd.index("bwrap") > prlimit
    assert f"--as={128 * 1024 * 1024}" in cmd and "--cpu=2:3" in cmd and "--core=0" in cmd
    runner = cmd.index("-S", cmd.index("bwrap"))
    assert cmd[runner - 2 : runner] == [sys.executable, "-I"]
    assert cmd[runner + 1] == "-c" and cmd[runner + 3] == "7", "the report pipe's fd is the runner's argv[1]"


def test_a_dead_servers_cgroups_are_removed() -> None:
    parent, status = CgroupParent.create()
    if parent is None:
        pytest.skip(f"no cgroup here: {status}")
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = [d.parent / f"{PARENT_PREFIX}{dead.pid}" for d in parent.dirs.values()]
    try:
        for d in stale:
            (d / "call-0").mkdir(parents=True)
        parent.close()
        parent, _ = CgroupParent.create()
        assert parent is not None
        assert not any(d.exists() for d in stale), "left behind by a server that is gone"
    finally:
        parent.close()
        for d in stale:
            for sub in (d / "call-0", d):
                if sub.exists():
                    sub.rmdir()


def test_a_call_cgroup_holds_the_limits_and_goes_away() -> None:
    parent, status = CgroupParent.create()
    if parent is None:
        pytest.skip(f"no cgroup here: {status}")
    try:
        call = parent.new_call(64 * 1024 * 1024, 5)
        pids = [d for d in call.dirs if (d / "pids.max").exists()]
        assert pids and (pids[0] / "pids.max").read_text().strip() == "5"
        call.remove()
        assert not any(d.exists() for d in call.dirs)
    finally:
        parent.close()
