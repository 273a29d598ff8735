"""``bench telemetry``'s placement of the export worker: every thread of it, not only its main one."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import telemetry

# A parent (the gateway's stand-in) that starts a child (the export worker's) with a second thread.
_PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import threading, time; "
    "threading.Thread(target=time.sleep, args=(60,), daemon=True).start(); print('ready', flush=True); "
    "time.sleep(60)"], stdout=subprocess.PIPE)
child.stdout.readline()
print(child.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to move threads between")
def test_every_thread_of_the_export_worker_is_moved_to_the_clients_cpu() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True)
    child = 0
    try:
        child = int(parent.stdout.readline())  # type: ignore[union-attr]
        threads = [int(t.name) for t in Path(f"/proc/{child}/task").iterdir()]
        assert len(threads) == 2 and all(os.sched_getaffinity(t) == set(cpus) for t in threads)
        telemetry.move_children(parent.pid, cpus[-1])
        time.sleep(0.05)
        assert {t: os.sched_getaffinity(t) for t in threads} == {t: {cpus[-1]} for t in threads}
    finally:
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        parent.kill()
        parent.wait()
