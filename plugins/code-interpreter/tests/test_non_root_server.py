"""The sandbox as a non-root server runs it: unprivileged bubblewrap, and RLIMIT_NPROC instead of a cgroup.

The tests here run as root, whose provider uses a cgroup (the kernel does not apply RLIMIT_NPROC to
root). This test runs ``sandbox.run_code`` the way the provider does for a non-root server without a
cgroup, in a child process switched to an unused uid with ``setpriv``, on the system's own Python
(the test's environment lives under /root, which other users cannot read). The provider object
itself needs that environment, so the non-root path is driven at the module below it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
SYSTEM_PYTHON = "/usr/bin/python3"
UID = 64123  # no user on this machine should own it

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0
    or shutil.which("bwrap") is None
    or shutil.which("setpriv") is None
    or not os.access(SYSTEM_PYTHON, os.X_OK),
    reason="needs root (to switch to a test uid), bwrap, setpriv and /usr/bin/python3",
)

SCRIPT = """
import asyncio, json, sys
sys.path.insert(0, {src!r})
from lamina_code_interpreter.sandbox import Limits, probe_interpreter, run_code, user_task_count

CODE = {{
    "hello": "import os\\nprint(os.getuid(), os.listdir('/tmp'))",
    "fork_bomb": "import os\\nwhile True:\\n    os.fork()\\n",
}}


async def main():
    interpreter = await probe_interpreter({python!r}, [])
    limits = Limits(timeout_seconds=20, cpu_seconds=5, memory_mb=256, max_processes=8,
                    max_output_bytes=2000, tmp_size_mb=8)
    out = {{}}
    for name, code in CODE.items():
        nproc = user_task_count() + limits.max_processes + 2  # as the provider computes it
        run = await run_code(code.encode(), sandbox="bwrap", bwrap="bwrap", interpreter=interpreter,
                             limits=limits, cgroup_procs=[], nproc=nproc)
        exc = (run.report or {{}}).get("exception") or {{}}
        out[name] = {{"stdout": run.stdout.decode(), "exception": exc.get("type"), "timed_out": run.timed_out,
                      "exit_code": run.exit_code, "seconds": run.duration_seconds}}
    print(json.dumps(out))


asyncio.run(main())
"""


def test_unprivileged_bwrap_and_rlimit_nproc_contain_a_fork_bomb() -> None:
    script = SCRIPT.format(src=str(SRC), python=SYSTEM_PYTHON)
    argv = ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", SYSTEM_PYTHON, "-c", script]
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd="/", env=env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["hello"]["stdout"] == "65534 []\n", out
    bomb = out["fork_bomb"]
    assert bomb["exception"] == "BlockingIOError" and not bomb["timed_out"], bomb
