"""The inline::code-interpreter provider: the ``code_interpreter`` tool of ``builtin::code_interpreter``.

Each call runs its ``code`` once in a fresh sandbox (``sandbox.py``) and returns what Llama Stack
0.2.4's code interpreter returned as ``content`` (the process status, then ``[stdout]`` and
``[stderr]`` blocks), preceded by the reason when a limit or an exception ended the code, plus
``metadata`` with each part on its own (``process_status``, ``exit_code``, ``signal``, ``limit``,
``reason``, ``exception``: type, message, traceback, ``stdout``, ``stderr``, truncation counts,
``duration_seconds``) and ``error_message``/``error_code`` when the code did not end cleanly.

At most ``max_concurrent`` sandboxes run at once; further calls wait for a free one (an
``asyncio.Semaphore``), and everything is asyncio subprocesses and pipes: the event loop never
waits on the code.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from typing import Any

import structlog

from lamina.apis.tools import ToolDef, ToolGroup, ToolInvocationResult, ToolParameter
from lamina.errors import BadRequestError, ConfigError, ServiceUnavailableError
from lamina.providers import ProviderBase, ProviderContext
from lamina_code_interpreter.cgroups import Cgroup, CgroupParent
from lamina_code_interpreter.config import CodeInterpreterToolConfig
from lamina_code_interpreter.sandbox import (
    Interpreter,
    Limits,
    RunResult,
    SandboxUnavailable,
    bwrap_options,
    probe_interpreter,
    run_code,
    user_task_count,
)

log = structlog.get_logger(__name__)

TOOL_NAME = "code_interpreter"
TOOL_DEF = ToolDef(
    name=TOOL_NAME,
    description="Execute code",
    parameters=[ToolParameter(name="code", description="The code to execute", parameter_type="string")],
)
# Per-call limits a caller may pass next to `code` (lower than the config's, never higher).
CALL_LIMITS = ("timeout_seconds", "cpu_seconds", "memory_mb", "max_processes", "max_output_bytes")
# bwrap's own processes in a sandbox (its monitor and the pid namespace's init), on top of the code's.
BWRAP_PROCESSES = 2
PRLIMIT_MISSING = (
    "`prlimit` (util-linux) is not on PATH; it sets the sandbox's resource limits: install util-linux"
)
BWRAP_HELP = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) and allow user namespaces "
    "(sysctl kernel.unprivileged_userns_clone=1 for a non-root server), or set the provider's "
    "`sandbox: none` to run code WITHOUT network and file isolation (trusted code only)"
)


async def create_provider(
    config: CodeInterpreterToolConfig, deps: dict[Any, Any], context: ProviderContext
) -> CodeInterpreterProvider:
    return CodeInterpreterProvider(config, context)


class CodeInterpreterProvider(ProviderBase):
    def __init__(self, config: CodeInterpreterToolConfig, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        self.interpreter: Interpreter | None = None
        self.bwrap = config.bwrap_path
        self.bwrap_options: frozenset[str] = frozenset()
        self.cgroups: CgroupParent | None = None
        self.cgroup_status = "not used"
        self.slots = asyncio.Semaphore(config.max_concurrent)
        self.running = 0
        self.waiting = 0
        self.unavailable: str | None = None  # why calls are refused (require_sandbox: false)

    # -- lifecycle -------------------------------------------------------------------------------

    async def initialize(self) -> None:
        if not sys.platform.startswith("linux"):
            raise ConfigError(f"provider '{self.provider_id}' (inline::code-interpreter) needs Linux")
        try:
            self.interpreter = await probe_interpreter(
                self.config.python_executable or sys.executable, self.config.import_paths
            )
        except SandboxUnavailable as exc:
            raise ConfigError(f"provider '{self.provider_id}': {exc}") from None
        if self.config.use_cgroup:
            self.cgroups, self.cgroup_status = await asyncio.to_thread(CgroupParent.create)
        if self.config.sandbox == "none":
            problem = PRLIMIT_MISSING if shutil.which("prlimit") is None else None
        else:
            problem = await self._check_bwrap()
        if problem is not None and (self.config.require_sandbox or self.config.sandbox == "none"):
            await self.shutdown()  # the server will not start: leave no cgroup behind
            raise ConfigError(f"provider '{self.provider_id}': {problem}")
        if problem is not None:  # require_sandbox: false
            self.unavailable = problem
            log.warning("code_interpreter_unavailable", provider_id=self.provider_id, reason=problem)
            return
        if self.config.sandbox == "none":
            log.warning(
                "code_interpreter_unsandboxed",
                provider_id=self.provider_id,
                detail="sandbox: none - code runs with the server's network and files; resource limits only",
            )
        if self.cgroups is None:
            log.warning(
                "code_interpreter_no_cgroup",
                provider_id=self.provider_id,
                reason=self.cgroup_status,
                detail="memory is limited per process and processes by RLIMIT_NPROC (not enforced for root)",
            )
        log.info(
            "code_interpreter_ready",
            provider_id=self.provider_id,
            sandbox=self.config.sandbox,
            python=self.interpreter.executable,
            cgroup=self.cgroup_status,
            bwrap_options=sorted(self.bwrap_options),
        )

    async def _check_bwrap(self) -> str | None:
        """None when a bwrap sandbox runs here, else what is wrong and how to fix it."""
        if shutil.which("prlimit") is None:
            return PRLIMIT_MISSING
        bwrap = shutil.which(self.config.bwrap_path)
        if bwrap is None:
            return (
                f"bubblewrap ({self.config.bwrap_path!r}) is not on PATH, and code is never run "
                f"unsandboxed unless the config says so: {BWRAP_HELP}"
            )
        self.bwrap = bwrap
        try:
            self.bwrap_options = await bwrap_options(bwrap)
        except (OSError, TimeoutError) as exc:
            return f"{bwrap} --help failed ({exc}): {BWRAP_HELP}"
        probe = await self._run(b"print(6 * 7)", self._limits({}))
        if probe.stdout.strip() != b"42":
            return (
                f"bubblewrap cannot start a sandbox here (exit {probe.exit_code}, signal {probe.signal}): "
                f"{probe.stderr.decode(errors='replace').strip()[:500]}; {BWRAP_HELP}"
            )
        return None

    async def shutdown(self) -> None:
        if self.cgroups is not None:
            await asyncio.to_thread(self.cgroups.close)

    async def health(self) -> dict[str, Any]:
        if self.unavailable:
            return {"status": "Error", "message": self.unavailable}
        return {
            "status": "OK",
            "sandbox": self.config.sandbox,
            "cgroup": self.cgroup_status,
            "running": self.running,
            "waiting": self.waiting,
        }

    # -- tool groups -----------------------------------------------------------------------------

    async def register_toolgroup(self, tool_group: ToolGroup) -> None:
        if tool_group.mcp_endpoint is not None:
            raise BadRequestError(
                f"tool group '{tool_group.identifier}': {self.context.provider_type} runs Python code, "
                "it does not serve MCP endpoints",
                param="mcp_endpoint",
            )

    async def list_runtime_tools(self, tool_group: ToolGroup) -> list[ToolDef]:
        return [TOOL_DEF]

    async def invoke_tool(
        self, tool_group: ToolGroup, tool_name: str, kwargs: dict[str, Any]
    ) -> ToolInvocationResult:
        if tool_name != TOOL_NAME:
            raise BadRequestError(
                f"tool group '{tool_group.identifier}' has no tool '{tool_name}'; it has {TOOL_NAME}",
                param="tool_name",
            )
        code = kwargs.get("code")
        if not isinstance(code, str):
            raise BadRequestError(
                f"kwargs.code: give the Python code to run as a string, got {type(code).__name__}",
                param="kwargs.code",
            )
        source = code.encode("utf-8", errors="surrogatepass")
        if len(source) > self.config.max_code_bytes:
            raise BadRequestError(
                f"kwargs.code: {len(source)} bytes is more than this server runs "
                f"(max_code_bytes {self.config.max_code_bytes})",
                param="kwargs.code",
            )
        limits = self._limits(kwargs)
        if self.unavailable:
            raise ServiceUnavailableError(
                f"provider '{self.provider_id}' cannot run code: {self.unavailable}. (The server started "
                "without it because the provider's config has require_sandbox: false.)"
            )
        self.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            run = await self._run(source, limits)
        finally:
            self.running -= 1
            self.slots.release()
        return _result(run, limits, self.config.sandbox)

    # -- running ---------------------------------------------------------------------------------

    def _limits(self, kwargs: dict[str, Any]) -> Limits:
        values: dict[str, Any] = {name: getattr(self.config, name) for name in CALL_LIMITS}
        for name in CALL_LIMITS:
            if kwargs.get(name) is None:
                continue
            value, most = kwargs[name], values[name]
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or value <= 0 or (name != "timeout_seconds" and value != int(value)):
                kind = "a positive number" if name == "timeout_seconds" else "a positive integer"
                raise BadRequestError(
                    f"kwargs.{name}: expected {kind}, got {value!r:.40}", param=f"kwargs.{name}"
                )
            if value > most:
                raise BadRequestError(
                    f"kwargs.{name}: {value} is above this server's limit of {most}; a call may only "
                    f"lower it (the provider config's `{name}` sets the limit)",
                    param=f"kwargs.{name}",
                )
            values[name] = value if name == "timeout_seconds" else int(value)
        return Limits(tmp_size_mb=self.config.tmp_size_mb, **values)

    async def _run(self, source: bytes, limits: Limits) -> RunResult:
        assert self.interpreter is not None
        cgroup: Cgroup | None = None
        nproc = None
        if self.cgroups is not None:
            extra = BWRAP_PROCESSES if self.config.sandbox == "bwrap" else 0
            cgroup = await asyncio.to_thread(
                self.cgroups.new_call, limits.memory_mb * 1024 * 1024, limits.max_processes + extra
            )
        elif os.geteuid() != 0:
            # RLIMIT_NPROC counts every task of the server's user: allow what runs now, plus the call's.
            nproc = await asyncio.to_thread(user_task_count) + limits.max_processes + BWRAP_PROCESSES
        try:
            run = await run_code(
                source,
                sandbox=self.config.sandbox,
                bwrap=self.bwrap,
                interpreter=self.interpreter,
                limits=limits,
                cgroup_procs=cgroup.procs_files if cgroup else [],
                nproc=nproc,
                options=self.bwrap_options,
            )
            if cgroup is not None:
                run.memory_events = await asyncio.to_thread(cgroup.memory_events)
        finally:
            if cgroup is not None:
                await asyncio.to_thread(cgroup.remove)
        return run


# -- the result --------------------------------------------------------------------------------


def _classify(run: RunResult, limits: Limits) -> tuple[str, str | None, str | None]:
    """(process_status, limit hit or None, reason or None)."""
    exc = (run.report or {}).get("exception") if isinstance(run.report, dict) else None
    exc = exc if isinstance(exc, dict) else None
    if run.timed_out:
        return (
            "timeout",
            "timeout_seconds",
            f"wall-time limit of {limits.timeout_seconds:g} s reached: the code was stopped",
        )
    if run.output_killed:
        return "error", "max_output_bytes", "the code kept writing output far past the output limit: stopped"
    if run.signal is not None:
        if run.signal == signal.SIGXCPU:
            reason = f"CPU-time limit of {limits.cpu_seconds} s reached: the code was stopped"
            return "error", "cpu_seconds", reason
        if run.memory_events:
            reason = f"memory limit of {limits.memory_mb} MiB reached: the code was killed"
            return "error", "memory_mb", reason
        if run.signal == signal.SIGKILL:
            return (
                "error",
                None,
                f"killed by SIGKILL (the CPU-time hard limit of {limits.cpu_seconds + 1} s, or the memory "
                f"limit of {limits.memory_mb} MiB)",
            )
        try:
            name = signal.Signals(run.signal).name
        except ValueError:
            name = str(run.signal)
        return "error", None, f"the code died of signal {name}"
    if exc is not None:
        kind, message = str(exc.get("type", "")), str(exc.get("message", ""))
        if kind == "MemoryError":
            return "error", "memory_mb", f"memory limit of {limits.memory_mb} MiB reached (MemoryError)"
        if kind == "BlockingIOError" or (kind == "RuntimeError" and "can't start new thread" in message):
            return (
                "error",
                "max_processes",
                f"process limit of {limits.max_processes} reached: {kind}: {message}",
            )
        return "error", None, f"{kind}: {message}" if message else kind
    if run.exit_code not in (0, None):
        return "error", None, f"the code exited with status {run.exit_code}"
    if run.exit_code is None:
        return "error", None, "the code's process did not report an exit status"
    if run.memory_events:
        run.notes.append(f"the memory limit ({limits.memory_mb} MiB) killed {run.memory_events} process(es)")
    return "completed", None, None


def _text(data: bytes, dropped: int, limit: int, name: str) -> str:
    text = data.decode("utf-8", errors="replace")
    if dropped:
        text += f"\n[... {dropped} more bytes of {name} not shown: the limit is {limit} bytes per stream]"
    return text


def _result(run: RunResult, limits: Limits, sandbox: str) -> ToolInvocationResult:
    status, limit, reason = _classify(run, limits)
    stdout = _text(run.stdout, run.stdout_dropped, limits.max_output_bytes, "stdout")
    stderr = _text(run.stderr, run.stderr_dropped, limits.max_output_bytes, "stderr")
    pieces = [status]
    if reason:
        pieces.append(reason)
    for name, text in (("stdout", stdout), ("stderr", stderr)):
        if text:
            pieces += [f"[{name}]", text, f"[/{name}]"]
    report = run.report if isinstance(run.report, dict) else {}
    exception = report.get("exception") if isinstance(report.get("exception"), dict) else None
    metadata = {
        "process_status": status,
        "exit_code": run.exit_code,
        "signal": run.signal,
        "limit": limit,
        "reason": reason,
        "exception": exception,
        "stdout": stdout,
        "stderr": stderr,
        "stdout_truncated_bytes": run.stdout_dropped,
        "stderr_truncated_bytes": run.stderr_dropped,
        "duration_seconds": round(run.duration_seconds, 3),
        "sandbox": sandbox,
        "oom_kills": run.memory_events,
        "notes": run.notes,
    }
    error_code = None
    if status != "completed":
        if run.timed_out:
            error_code = 124  # as timeout(1)
        elif run.signal is not None:
            error_code = 128 + run.signal
        else:
            error_code = run.exit_code or 1
    return ToolInvocationResult(
        content="\n".join(pieces),
        error_message=reason,
        error_code=error_code,
        metadata=metadata,
    )
