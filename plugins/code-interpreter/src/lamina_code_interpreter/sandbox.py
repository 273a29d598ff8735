"""Running one piece of Python code in a sandbox: the command line, the limits, the captured output.

The command, outermost first (each step execs the next, so the server holds one pid per call):

1. ``sh -c`` writes its own pid into the call's cgroups (``cgroups.py``: memory and process count of
   the whole call), when the server may create them;
2. ``prlimit`` sets RLIMIT_AS (memory), RLIMIT_CPU (soft: SIGXCPU, hard one second later: SIGKILL),
   RLIMIT_NPROC (processes and threads; the kernel does not apply it to root, hence the cgroup),
   RLIMIT_FSIZE, RLIMIT_NOFILE and RLIMIT_CORE=0;
3. ``bwrap`` (sandbox "bwrap") unshares every namespace (user, mount, pid, net with only its own
   loopback, ipc, uts, cgroup), mounts an empty root with read-only binds of /usr and the
   interpreter's installation and import paths only, a fresh /proc and /dev, and a private size-capped
   tmpfs /tmp as the working directory; it dies with the server (``--die-with-parent``), starts a new
   session (no TIOCSTI into the server's terminal), drops every capability and clears the
   environment. When the code's first process ends, bwrap's pid 1 ends and the kernel kills every
   process left in the sandbox's pid namespace;
4. ``python -I -S -c <sandbox_runner.py>``: reads the code from stdin and reports its exception.

The wall-time limit is the provider's: on expiry the process group is killed (bwrap's pid 1 follows
through --die-with-parent). stdout and stderr are read as they come; past ``max_output_bytes`` the
rest is counted and dropped, and a call that keeps writing (``OUTPUT_KILL_BYTES`` dropped) is
killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RUNNER_SOURCE = (Path(__file__).parent / "sandbox_runner.py").read_text()
MAX_REPORT_BYTES = 1024 * 1024
OUTPUT_KILL_BYTES = 16 * 1024 * 1024  # dropped output after which a call is stopped
# After the process ended (or was killed), how long its pipes may take to close: only a process that
# escaped the sandbox's process group (sandbox "none") can hold them open longer.
PIPE_GRACE_SECONDS = 5.0
SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "PYTHONIOENCODING": "utf-8",
    "MPLBACKEND": "Agg",
    # One thread per BLAS/OpenMP pool: a pool per core would eat the process limit on import.
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
_PROBE = (
    "import json, os, sys, sysconfig; p = sysconfig.get_paths(); print(json.dumps({"
    "'executable': os.path.realpath(sys.executable), 'base_prefix': sys.base_prefix, "
    "'base_exec_prefix': sys.base_exec_prefix, 'site': [p['purelib'], p['platlib']]}))"
)


class SandboxUnavailable(Exception):
    """The sandbox cannot run here; the message says why and what to do."""


@dataclass(frozen=True)
class Limits:
    timeout_seconds: float
    cpu_seconds: int
    memory_mb: int
    max_processes: int
    max_output_bytes: int
    tmp_size_mb: int


@dataclass(frozen=True)
class Interpreter:
    executable: str
    binds: tuple[str, ...]
    import_paths: tuple[str, ...]


@dataclass
class RunResult:
    exit_code: int | None = None
    signal: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_dropped: int = 0
    stderr_dropped: int = 0
    report: dict | None = None
    timed_out: bool = False
    output_killed: bool = False
    memory_events: int = 0  # times the call's cgroup hit its memory limit
    duration_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


async def probe_interpreter(python: str, import_paths: list[str] | None) -> Interpreter:
    """Ask the interpreter where it lives: what to bind read-only, and its site-packages."""
    exe = shutil.which(python) or python
    try:
        proc = await asyncio.create_subprocess_exec(
            exe, "-I", "-c", _PROBE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except (OSError, TimeoutError) as exc:
        raise SandboxUnavailable(f"python_executable {python!r} cannot run: {exc}") from None
    if proc.returncode != 0:
        raise SandboxUnavailable(f"python_executable {python!r} failed: {err.decode(errors='replace')[:500]}")
    return await asyncio.to_thread(_interpreter, json.loads(out), import_paths)


def _interpreter(info: dict, import_paths: list[str] | None) -> Interpreter:
    paths = import_paths if import_paths is not None else [p for p in info["site"] if os.path.isdir(p)]
    binds = [info["base_prefix"], info["base_exec_prefix"], os.path.dirname(info["executable"]), *paths]
    return Interpreter(
        executable=info["executable"],
        binds=tuple(_outermost(os.path.realpath(b) for b in binds if os.path.isdir(b))),
        import_paths=tuple(dict.fromkeys(os.path.realpath(p) for p in paths)),
    )


def _outermost(paths) -> list[str]:
    """Drop duplicates and paths inside another one (and inside /usr, bound anyway)."""
    kept: list[str] = []
    for path in sorted(set(paths), key=len):
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in ["/usr", *kept]):
            kept.append(path)
    return kept


# Options of bubblewrap 0.8 used when the installed bwrap has them (`bwrap --help` lists them).
OPTIONAL_BWRAP_OPTIONS = ("--size", "--disable-userns")
ALL_OPTIONS = frozenset(OPTIONAL_BWRAP_OPTIONS)


async def bwrap_options(bwrap: str) -> frozenset[str]:
    """Which of OPTIONAL_BWRAP_OPTIONS this bwrap knows."""
    proc = await asyncio.create_subprocess_exec(
        bwrap, "--help", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    words = set(out.decode(errors="replace").split())
    return frozenset(option for option in OPTIONAL_BWRAP_OPTIONS if option in words)


def bwrap_args(
    bwrap: str, interpreter: Interpreter, limits: Limits, options: frozenset[str] = ALL_OPTIONS
) -> list[str]:
    """bubblewrap's arguments: an empty root with only what the interpreter needs, read-only."""
    args = [bwrap, "--unshare-all", "--unshare-user"]
    if "--disable-userns" in options:
        args.append("--disable-userns")  # no nested user namespace: nothing to gain privileges in
    args += [
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--clearenv",
        "--hostname",
        "sandbox",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for path in ("/etc/ld.so.cache", "/etc/localtime"):
        args += ["--ro-bind-try", path, path]
    for path in interpreter.binds:
        args += ["--ro-bind", path, path]
    args += ["--proc", "/proc", "--dev", "/dev"]
    if "--size" in options:  # else /tmp is bounded by the cgroup's memory limit (tmpfs pages count)
        args += ["--size", str(limits.tmp_size_mb * 1024 * 1024)]
    args += ["--tmpfs", "/tmp", "--chdir", "/tmp"]
    args += ["--remount-ro", "/"]  # the root tmpfs bwrap built; /tmp stays the one writable place
    for key, value in SANDBOX_ENV.items():
        args += ["--setenv", key, value]
    return args


def prlimit_args(limits: Limits, nproc: int | None) -> list[str]:
    memory = limits.memory_mb * 1024 * 1024
    args = [
        "prlimit",
        f"--as={memory}",
        f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}",
        # Past /tmp's size: a full /tmp is a clear "No space left on device", not a SIGXFSZ.
        f"--fsize={(limits.tmp_size_mb + 1) * 1024 * 1024}",
        "--nofile=256",
        "--core=0",
    ]
    if nproc is not None:
        args.append(f"--nproc={nproc}")
    return [*args, "--"]


def user_task_count() -> int:
    """Tasks (processes and threads) of this process's real uid: what RLIMIT_NPROC counts."""
    uid = os.getuid()
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue
    return count


def join_cgroups_args(procs_files: list[str]) -> list[str]:
    """A shell that writes its pid into each cgroup.procs, then execs the rest of the command."""
    script = (
        'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"'
    )
    return ["/bin/sh", "-c", script, "sh", str(len(procs_files)), *procs_files]


def build_command(
    sandbox: str,
    bwrap: str,
    interpreter: Interpreter,
    limits: Limits,
    *,
    cgroup_procs: list[str],
    report_fd: int,
    nproc: int | None = None,
    options: frozenset[str] = ALL_OPTIONS,
) -> list[str]:
    """The whole command line; ``report_fd`` is the runner's report pipe (same number in the sandbox)."""
    cmd: list[str] = []
    if cgroup_procs:
        cmd += join_cgroups_args(cgroup_procs)
    cmd += prlimit_args(limits, nproc)
    if sandbox == "bwrap":
        cmd += bwrap_args(bwrap, interpreter, limits, options)
    cmd += [interpreter.executable, "-I", "-S", "-c", RUNNER_SOURCE, str(report_fd)]
    cmd += interpreter.import_paths
    return cmd


async def run_code(
    code: bytes,
    *,
    sandbox: str,
    bwrap: str,
    interpreter: Interpreter,
    limits: Limits,
    cgroup_procs: list[str],
    nproc: int | None = None,
    options: frozenset[str] = ALL_OPTIONS,
) -> RunResult:
    """Run ``code`` once and return what happened; never raises for anything the code does."""
    result = RunResult()
    workdir = None
    env = dict(SANDBOX_ENV)
    if sandbox == "none":  # no private /tmp: a fresh directory, removed afterwards
        workdir = tempfile.mkdtemp(prefix="lamina-code-")
        env.update(HOME=workdir, TMPDIR=workdir)
    read_fd, write_fd = os.pipe()
    cmd = build_command(
        sandbox,
        bwrap,
        interpreter,
        limits,
        cgroup_procs=cgroup_procs,
        report_fd=write_fd,
        nproc=nproc,
        options=options,
    )
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=(write_fd,),
            start_new_session=True,
            env=env,
            cwd=workdir or "/",
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    kill = _killer(proc)
    report_reader = asyncio.create_task(_read_report(read_fd))
    out_task = asyncio.create_task(_drain(proc.stdout, limits.max_output_bytes, kill, result, "stdout"))
    err_task = asyncio.create_task(_drain(proc.stderr, limits.max_output_bytes, kill, result, "stderr"))
    feed_task = asyncio.create_task(_feed(proc, code))
    try:
        try:
            await asyncio.wait_for(proc.wait(), limits.timeout_seconds)
        except TimeoutError:
            result.timed_out = True
            kill()
            await proc.wait()
        result.duration_seconds = time.monotonic() - started
        pending = [out_task, err_task, report_reader, feed_task]
        done, still = await asyncio.wait(pending, timeout=PIPE_GRACE_SECONDS)
        if still:
            kill()
            for task in still:
                task.cancel()
            result.notes.append("a process of the code kept its output open after the code ended; killed")
        result.stdout, result.stdout_dropped = out_task.result() if out_task in done else (b"", 0)
        result.stderr, result.stderr_dropped = err_task.result() if err_task in done else (b"", 0)
        result.report = report_reader.result() if report_reader in done else None
    finally:
        kill()
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    code_ = proc.returncode
    if code_ is not None and code_ < 0:  # the wrapper itself was killed (by us)
        result.signal = -code_
    elif code_ is not None and code_ > 128 and sandbox == "bwrap":
        result.signal = code_ - 128  # bwrap exits 128 + N when the code died of signal N
    else:
        result.exit_code = code_
    return result


def _killer(proc: asyncio.subprocess.Process):
    def kill() -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    return kill


async def _feed(proc: asyncio.subprocess.Process, code: bytes) -> None:
    try:
        proc.stdin.write(code)
        await proc.stdin.drain()
        proc.stdin.close()
        await proc.stdin.wait_closed()
    except (BrokenPipeError, ConnectionResetError):
        pass


async def _drain(stream, cap: int, kill, result: RunResult, name: str) -> tuple[bytes, int]:
    kept = bytearray()
    dropped = 0
    killed = False
    while chunk := await stream.read(65536):
        room = cap - len(kept)
        if room > 0:
            kept += chunk[:room]
            dropped += max(0, len(chunk) - room)
        else:
            dropped += len(chunk)
        if not killed and dropped > OUTPUT_KILL_BYTES:
            killed = True
            result.output_killed = True
            kill()
    return bytes(kept), dropped


async def _read_report(fd: int) -> dict | None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_REPORT_BYTES)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    try:
        data = bytearray()
        while chunk := await reader.read(65536):
            if len(data) < MAX_REPORT_BYTES:
                data += chunk
    finally:
        transport.close()
    try:
        report = json.loads(bytes(data))
    except ValueError:
        return None
    return report if isinstance(report, dict) else None
