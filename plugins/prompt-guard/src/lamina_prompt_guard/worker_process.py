"""The server's side of a jailguard worker process (``worker.py``): start, score, restart, stop.

A batch goes to the process as one JSON line on its stdin and its scores come back as one line on
its stdout. The pipes are raw non-blocking file descriptors watched by the event loop
(``add_reader``), not asyncio streams: the line that answers a batch is parsed in the reader's
callback, which hands the results straight to the batcher (``begin(texts, done)``); no task, stream
reader or lock sits between the process and the request, so an answer reaches its request in one
loop turn. A lone request pays a process hop each way and nothing more.

One batch is in flight per process. A process that dies is restarted on the next batch; one that
does not answer within ``request_timeout`` is killed (its batch fails with that reason) and
restarted on the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from lamina_prompt_guard.engine import ENV_VAR

log = structlog.get_logger(__name__)

#: The protocol's replies are short (a score and a risk per text); anything longer is a broken process.
_MAX_REPLY = 1 << 20

Done = Callable[[Sequence["Scored"] | None, BaseException | None], None]


@dataclass
class Scored:
    score: float
    risk: str


class WorkerError(RuntimeError):
    """The worker process failed to start, died, or answered an error."""


@dataclass
class _InFlight:
    request_id: int
    count: int
    done: Done
    timer: asyncio.TimerHandle


class WorkerProcess:
    """One jailguard worker process, one batch in flight at a time; restarted after a crash."""

    def __init__(
        self,
        model_dir: Path,
        *,
        batch: bool,
        name: str,
        start_timeout: float = 120.0,
        request_timeout: float = 60.0,
    ) -> None:
        self.model_dir = model_dir
        self.batch = batch
        self.name = name
        self.start_timeout = start_timeout
        self.request_timeout = request_timeout
        self.info: dict[str, Any] | None = None
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr_task: asyncio.Task | None = None
        self._to_child: int | None = None  # our end of its stdin (non-blocking)
        self._from_child: int | None = None  # our end of its stdout (non-blocking, watched)
        self._unsent = b""  # what a full pipe did not take yet (watched for writability)
        self._received = bytearray()
        self._ready: asyncio.Future[bytes] | None = None  # start(): waiting for the ready line
        self._in_flight: _InFlight | None = None
        self._next_id = 0
        self._tasks: set[asyncio.Task] = set()  # restarts and stops under way (kept from the GC)

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    # -- start and stop ------------------------------------------------------------------------

    async def start(self) -> dict[str, Any]:
        """Start the process and wait until its model is loaded and warm; WorkerError otherwise."""
        loop = asyncio.get_running_loop()
        env = dict(os.environ, **{ENV_VAR: str(self.model_dir), "RUST_BACKTRACE": "0"})
        cmd = [sys.executable, "-m", "lamina_prompt_guard.worker", "--model-dir", str(self.model_dir)]
        if self.batch:
            cmd.append("--batch")
        child_in, self._to_child = os.pipe()
        self._from_child, child_out = os.pipe()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=child_in, stdout=child_out, stderr=asyncio.subprocess.PIPE, env=env
            )
        except BaseException:
            self._close_pipes()
            raise
        finally:
            os.close(child_in)
            os.close(child_out)
        os.set_blocking(self._to_child, False)
        os.set_blocking(self._from_child, False)
        self._received.clear()
        self._ready = loop.create_future()
        loop.add_reader(self._from_child, self._on_readable)
        self._stderr_task = asyncio.create_task(self._log_stderr(self._proc), name=f"{self.name}-stderr")
        try:
            async with asyncio.timeout(self.start_timeout):
                line = await self._ready
        except TimeoutError:
            await self.close()
            raise WorkerError(
                f"the jailguard worker did not load its model within {self.start_timeout:.0f} s"
            ) from None
        finally:
            self._ready = None
        ready = _parse(line)
        if not ready or not ready.get("ready"):
            await self.close()
            reason = (ready or {}).get("error") or "it exited without a word (see the log for its stderr)"
            raise WorkerError(
                f"the jailguard worker could not load the model from {self.model_dir}: {reason}"
            )
        self.info = ready
        return ready

    async def close(self) -> None:
        """Stop the process (closing its stdin ends it); a batch in flight fails."""
        proc, self._proc = self._proc, None
        self._close_pipes()
        self._fail_in_flight(WorkerError("the jailguard worker was stopped while scoring"))
        if proc is not None and proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._stderr_task is not None:
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(self._stderr_task, 1)
            self._stderr_task = None

    def _close_pipes(self) -> None:
        loop = asyncio.get_running_loop()
        if self._from_child is not None:
            loop.remove_reader(self._from_child)
            os.close(self._from_child)
            self._from_child = None
        if self._to_child is not None:
            loop.remove_writer(self._to_child)
            os.close(self._to_child)
            self._to_child = None
        self._unsent = b""
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(b"")  # start() reads this as "exited without a word"

    # -- scoring -------------------------------------------------------------------------------

    def begin(self, texts: list[str], done: Done) -> None:
        """Send a batch; ``done(scores, None)`` or ``done(None, WorkerError)`` is called on the loop."""
        if self._in_flight is not None:
            raise RuntimeError(f"{self.name}: a batch is already in flight")
        if self.alive and self._to_child is not None:
            self._send(texts, done)
        else:
            self._spawn(self._restart_and_send(texts, done))

    async def score(self, texts: list[str]) -> list[Scored]:
        """The score of each text, in order (one batch; for callers without a batcher)."""
        future: asyncio.Future[list[Scored]] = asyncio.get_running_loop().create_future()

        def done(results: Sequence[Scored] | None, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(list(results or []))

        self.begin(texts, done)
        return await future

    async def _restart_and_send(self, texts: list[str], done: Done) -> None:
        self.restarts += 1
        log.warning("jailguard_worker_restart", worker=self.name, restarts=self.restarts)
        try:
            await self.close()
            await self.start()
        except Exception as exc:
            done(None, exc if isinstance(exc, WorkerError) else WorkerError(str(exc)))
            return
        self._send(texts, done)

    def _send(self, texts: list[str], done: Done) -> None:
        loop = asyncio.get_running_loop()
        self._next_id += 1
        timer = loop.call_later(self.request_timeout, self._timed_out)
        self._in_flight = _InFlight(self._next_id, len(texts), done, timer)
        self._unsent = (json.dumps({"id": self._next_id, "texts": texts}) + "\n").encode()
        self._write()

    def _write(self) -> None:
        """Write what the pipe takes; wait for writability for the rest (a long batch)."""
        assert self._to_child is not None
        try:
            written = os.write(self._to_child, self._unsent)
        except BlockingIOError:
            written = 0
        except (BrokenPipeError, ConnectionResetError):
            self._died()
            return
        self._unsent = self._unsent[written:]
        loop = asyncio.get_running_loop()
        if self._unsent:
            loop.add_writer(self._to_child, self._write)
        else:
            loop.remove_writer(self._to_child)

    def _on_readable(self) -> None:
        try:
            data = os.read(self._from_child, 65536)  # type: ignore[arg-type]
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self._from_child)  # EOF stays readable
            if self._ready is not None:
                if not self._ready.done():
                    self._ready.set_result(b"")  # start() reads this as "exited without a word"
                return
            self._died()
            return
        self._received += data
        while (end := self._received.find(b"\n")) >= 0:
            line = bytes(self._received[:end])
            del self._received[: end + 1]
            self._on_line(line)
        if len(self._received) > _MAX_REPLY:
            self._protocol_broken("an endless line")

    def _on_line(self, line: bytes) -> None:
        if self._ready is not None:
            if not self._ready.done():
                self._ready.set_result(line)
            return
        job, self._in_flight = self._in_flight, None
        if job is None:
            self._protocol_broken("a line nobody asked for")
            return
        job.timer.cancel()
        reply = _parse(line)
        if reply is None or reply.get("id") != job.request_id:
            got = "an unreadable line" if reply is None else f"request {reply.get('id')}"
            self._in_flight = job
            self._protocol_broken(f"{got}, not request {job.request_id}")
            return
        if "error" in reply:
            job.done(None, WorkerError(f"jailguard failed: {reply['error']}"))
            return
        scores, risks = reply.get("scores") or [], reply.get("risks") or []
        if len(scores) != job.count or len(risks) != job.count:
            job.done(
                None, WorkerError(f"the jailguard worker answered {len(scores)} scores for {job.count} texts")
            )
            return
        job.done([Scored(float(s), str(r)) for s, r in zip(scores, risks, strict=True)], None)

    # -- faults --------------------------------------------------------------------------------

    def _fail_in_flight(self, error: WorkerError) -> None:
        job, self._in_flight = self._in_flight, None
        if job is not None:
            job.timer.cancel()
            job.done(None, error)

    def _died(self) -> None:
        """The process closed its stdout (it exited or crashed)."""
        self._stop_soon(
            WorkerError("the jailguard worker process died while scoring (it is restarted on the next call)")
        )

    def _protocol_broken(self, what: str) -> None:
        if self._from_child is not None:
            asyncio.get_running_loop().remove_reader(self._from_child)
        self._stop_soon(
            WorkerError(f"the jailguard worker answered {what}; it is restarted on the next call")
        )

    def _timed_out(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.kill()
        self._stop_soon(
            WorkerError(
                f"the jailguard worker did not answer within {self.request_timeout:g} s "
                "(request_timeout); it was killed and is restarted on the next call"
            )
        )

    def _stop_soon(self, error: WorkerError) -> None:
        """Stop the process, then fail the batch in flight: a failed batch means a process gone."""
        job, self._in_flight = self._in_flight, None
        if job is not None:
            job.timer.cancel()

        async def stop() -> None:
            try:
                await self.close()
            finally:
                if job is not None:
                    job.done(None, error)

        self._spawn(stop())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _log_stderr(self, proc: asyncio.subprocess.Process) -> None:
        while line := await proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            if text:
                log.warning("jailguard_worker_stderr", worker=self.name, line=text[:500])


def _parse(line: bytes) -> dict[str, Any] | None:
    if not line:
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
