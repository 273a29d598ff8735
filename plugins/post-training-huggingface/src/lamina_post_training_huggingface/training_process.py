"""``runs_in: subprocess``: jobs train in a child process of the server, so the trainer's Python loop never
holds the server's GIL (what that costs requests: docs/benchmarks.md, "Post training").

``TrainingWorker`` keeps one child (``python -m lamina_post_training_huggingface.training_process``),
started by the first job and reused by the next ones (torch, transformers and trl are imported once: ~8 s
of CPU), one job at a time. For a job the parent writes what it trains to a file in the job's output
directory (mode 0600, removed when the job ends) and sends ``job <file>`` on the child's stdin; the child
runs ``training.train`` in a thread and talks back with one JSON line per event on its stdout
(``logged``, ``saved``, then ``done`` or ``error``), which the parent turns into the job's progress and
checkpoint. The parent sends ``ack`` once a saved checkpoint is recorded (the trainer waits for it, as in a
thread, so a checkpoint is in the job's record before training goes on) and ``stop`` to cancel: the
trainer stops before its next step; a child that has not answered within two minutes is killed (the next
job starts another). A child whose stdin closes (the server stopped or died) stops training and exits.
Anything else the child prints goes to the server's stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import structlog

from lamina_post_training_huggingface.config import HuggingFacePostTrainingConfig

log = structlog.get_logger(__name__)

_STOP_WAIT = 120.0  # seconds a stopped job may take to finish its step before the child is killed
_ACK_WAIT = 60.0  # seconds the child waits for a saved checkpoint to be recorded
_MODULE = "lamina_post_training_huggingface.training_process"


def job_spec(
    plan: Any,
    rows: list[dict],
    validation: list[dict] | None,
    config: HuggingFacePostTrainingConfig,
    resume_from: str | None,
) -> dict[str, Any]:
    """What a job trains, as JSON: for the child process or a Ray actor."""
    return {
        "plan": dict(plan.__dict__),
        "rows": rows,
        "validation": validation,
        # The kvstore is the server's business (and may hold a password): not sent with the job.
        "config": config.model_dump(mode="json", exclude={"kvstore"}),
        "resume_from": resume_from,
    }


async def relay(message: dict[str, Any], report: Any) -> bool:
    """Hand one event of the trainer to ``report``; True when the trainer waits for an ack (a checkpoint)."""
    event = message["event"]
    fields = {k: v for k, v in message.items() if k != "event"}
    if event == "logged":
        await report.logged(**fields)
    elif event == "saved":
        await report.saved(**fields)
        return True
    return False


def rebuilt(failure: dict[str, Any]) -> BaseException:
    """The trainer's exception as the job's error: ValueError (bad input) keeps its type, others are named."""
    kind, message = failure.get("type", "Exception"), failure.get("message", "")
    if kind == "ValueError":
        return ValueError(message)
    return RuntimeError(f"{kind}: {message}")


def run_spec(spec: dict[str, Any], events: Any) -> dict[str, Any]:
    """Train what ``spec`` says, reporting to ``events``; the last event: ``done`` or ``error``."""
    from lamina_post_training_huggingface.training import Plan, train

    try:
        config = HuggingFacePostTrainingConfig.model_validate(spec["config"])
        summary = train(
            Plan(**spec["plan"]), spec["rows"], spec["validation"], config, events, spec["resume_from"]
        )
    except Exception as exc:
        return {"event": "error", "type": type(exc).__name__, "message": str(exc)}
    return {"event": "done", "summary": summary}


class TrainingWorker:
    """The server's training child process: started on first use, one job at a time, closed at shutdown."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def train(
        self,
        plan: Any,
        rows: list[dict],
        validation: list[dict] | None,
        config: HuggingFacePostTrainingConfig,
        report: Any,
        resume_from: str | None,
    ) -> dict[str, Any]:
        """Train ``plan`` in the child; ``report`` gets its events (``logged``/``saved``, awaited). Returns
        the trainer's summary ({steps, total_steps, stopped}); raises what the trainer raised."""
        path = Path(plan.output_dir) / f".job-input-{uuid.uuid4().hex}.json"
        spec = json.dumps(job_spec(plan, rows, validation, config, resume_from))
        await asyncio.to_thread(_write_private, path, spec)
        try:
            async with self._lock:
                proc = await self._started()
                try:
                    await _send(proc, f"job {path}")
                    last = await self._events(proc, report)
                except BaseException:  # cancelled, the job lost (JobLost), the child gone: stop the job
                    await self._stop_job(proc)
                    raise
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)
        if last["event"] == "error":
            raise rebuilt(last)
        return last["summary"]

    async def close(self) -> None:
        """Close the child's stdin (it stops what it trains and exits); kill it if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(Exception):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            await asyncio.wait_for(_drained(proc), _STOP_WAIT)
        except (TimeoutError, asyncio.CancelledError):
            _kill(proc)
            await proc.wait()

    async def _started(self) -> asyncio.subprocess.Process:
        if self._proc is None or self._proc.returncode is not None:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                _MODULE,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=16 * 1024 * 1024,
            )
            log.info("post_training_worker_started", pid=self._proc.pid)
        return self._proc

    async def _events(self, proc: asyncio.subprocess.Process, report: Any) -> dict[str, Any]:
        assert proc.stdout is not None
        while True:
            line = await proc.stdout.readline()
            if not line:
                code = await proc.wait()
                self._proc = None
                raise RuntimeError(
                    f"the training process exited with code {code} before finishing (killed, out of "
                    "memory, or a crash in torch); its output is in the server's log"
                )
            message = json.loads(line)
            if await relay(message, report):
                await _send(proc, "ack")
            if message["event"] in ("done", "error"):
                return message

    async def _stop_job(self, proc: asyncio.subprocess.Process) -> None:
        """Stop the running job and wait for its last event; kill the child if it does not come."""
        if proc.returncode is not None:
            self._proc = None
            return

        async def last_event() -> None:
            assert proc.stdout is not None
            while line := await proc.stdout.readline():
                if json.loads(line)["event"] in ("done", "error"):
                    return
            raise EOFError

        try:
            await _send(proc, "stop")
            await asyncio.wait_for(asyncio.shield(last_event()), _STOP_WAIT)
        except BaseException:  # no answer in time, the child gone, or cancelled again: kill it
            self._proc = None
            _kill(proc)
            await proc.wait()


async def _send(proc: asyncio.subprocess.Process, command: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(command.encode() + b"\n")
    await proc.stdin.drain()


async def _drained(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    while await proc.stdout.readline():
        pass
    await proc.wait()


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


# -- the child -----------------------------------------------------------------------------------------


class _PipeEvents:
    """The child's TrainingEvents: events as JSON lines on the protocol stream; stop and ack from stdin."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.stop = threading.Event()
        self.ack = threading.Event()
        self.lock = threading.Lock()

    def stop_requested(self) -> bool:
        return self.stop.is_set()

    def send(self, message: dict[str, Any]) -> None:
        try:
            with self.lock:
                self.out.write(json.dumps(message) + "\n")
                self.out.flush()
        except (BrokenPipeError, ValueError, OSError):
            self.stop.set()

    def logged(self, step: int, total: int, metrics: dict[str, float]) -> None:
        self.send({"event": "logged", "step": step, "total": total, "metrics": metrics})

    def saved(self, step: int, total: int, path: str, epoch: int, metrics: dict[str, float]) -> None:
        self.ack.clear()
        self.send(
            {"event": "saved", "step": step, "total": total, "path": path, "epoch": epoch, "metrics": metrics}
        )
        self.ack.wait(_ACK_WAIT)


def main() -> int:
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the libraries' prints go to stderr; stdout carries only events
    events = _PipeEvents(out)
    jobs: queue.Queue[str | None] = queue.Queue()

    def run_jobs() -> None:
        while (path := jobs.get()) is not None:
            events.send(run_spec(json.loads(Path(path).read_text()), events))

    trainer = threading.Thread(target=run_jobs, name="trainer", daemon=True)
    trainer.start()
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "job":
            events.stop.clear()
            events.ack.clear()
            jobs.put(argument)
        elif command == "ack":
            events.ack.set()
        elif command == "stop":
            events.stop.set()
            events.ack.set()
    # stdin closed: the server stopped or died; stop what is training and exit
    events.stop.set()
    events.ack.set()
    jobs.put(None)
    trainer.join(_STOP_WAIT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
