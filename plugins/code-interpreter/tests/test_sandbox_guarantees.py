"""inline::code-interpreter in process: each sandbox guarantee, tested with code that tries to break it.

These run real bubblewrap sandboxes (skipped when bwrap cannot run here; .ci/run installs it).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lamina.apis.tools import ToolGroup
from lamina.errors import BadRequestError, ConfigError, ServiceUnavailableError
from lamina.providers import ProviderContext
from lamina.specs import Api
from lamina.testing.child_processes import live_children
from lamina.testing.processes import free_port
from lamina_code_interpreter.cgroups import PARENT_PREFIX, _mounts, _own_paths
from lamina_code_interpreter.config import CodeInterpreterToolConfig
from lamina_code_interpreter.provider import CodeInterpreterProvider
from lamina_code_interpreter.sandbox import SANDBOX_ENV

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
GROUP = ToolGroup(identifier="builtin::code_interpreter", provider_id="code", provider_resource_id=None)


async def _provider(tmp_path: Path, **config) -> CodeInterpreterProvider:
    settings = {"timeout_seconds": 20, "cpu_seconds": 3, "memory_mb": 256, "max_output_bytes": 4096, **config}
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    context = ProviderContext(Api.tool_runtime, "code", "inline::code-interpreter", state)
    provider = CodeInterpreterProvider(CodeInterpreterToolConfig(**settings), context)
    await provider.initialize()
    return provider


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[CodeInterpreterProvider]:
    provider = await _provider(tmp_path)
    yield provider
    await provider.shutdown()


def _our_cgroups_left() -> list[Path]:
    """This process's sandbox parent cgroups that exist now (the provider makes them)."""
    own = _own_paths()
    name = f"{PARENT_PREFIX}{os.getpid()}"
    candidates = [mount / own.get(c, "/").lstrip("/") / name for c, mount in _mounts().items()]
    return [d for d in candidates if d.is_dir()]


async def run(provider: CodeInterpreterProvider, code: str, **limits):
    return await provider.invoke_tool(GROUP, "code_interpreter", {"code": code, **limits})


async def test_a_computation_prints_its_result(provider: CodeInterpreterProvider) -> None:
    result = await run(provider, "import math\nprint(sum(i * i for i in range(10)), math.factorial(5))")
    assert result.content == "completed\n[stdout]\n285 120\n\n[/stdout]"
    assert result.error_message is None and result.error_code is None
    assert result.metadata["exit_code"] == 0 and result.metadata["exception"] is None
    assert result.metadata["stdout"] == "285 120\n" and result.metadata["sandbox"] == "bwrap"


@pytest.mark.skipif(importlib.util.find_spec("numpy") is None, reason="numpy is not installed")
async def test_numpy_from_the_servers_environment_imports(provider: CodeInterpreterProvider) -> None:
    result = await run(provider, "import numpy as np\nprint(int(np.arange(5).sum()))")
    assert result.metadata["stdout"] == "10\n", result.content


async def test_an_exception_is_returned_with_type_message_and_traceback(
    provider: CodeInterpreterProvider,
) -> None:
    result = await run(provider, "print('before')\n\ndef f():\n    return 1 / 0\n\nf()\n")
    exc = result.metadata["exception"]
    assert exc["type"] == "ZeroDivisionError" and exc["message"] == "division by zero"
    assert 'File "<code>", line 4, in f' in exc["traceback"] and "return 1 / 0" in exc["traceback"]
    assert result.metadata["stdout"] == "before\n" and "ZeroDivisionError" in result.metadata["stderr"]
    assert result.error_message == "ZeroDivisionError: division by zero" and result.error_code == 1
    assert result.content.startswith("error\nZeroDivisionError: division by zero\n[stdout]\nbefore")


async def test_no_network_not_even_the_servers_own_loopback_port(provider: CodeInterpreterProvider) -> None:
    accepted: list[int] = []
    server = await asyncio.start_server(
        lambda r, w: accepted.append(1) or w.close(), "127.0.0.1", free_port()
    )
    port = server.sockets[0].getsockname()[1]
    try:
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5)\nprint('in')"
        result = await run(provider, code)
    finally:
        server.close()
        await server.wait_closed()
    assert result.metadata["exception"]["type"] == "ConnectionRefusedError", result.content
    assert "in" not in result.metadata["stdout"] and accepted == []


async def test_no_view_of_the_servers_files(provider: CodeInterpreterProvider, tmp_path: Path) -> None:
    secret = tmp_path / "planted-secret.txt"
    secret.write_text("the server's secret")
    state_file = provider.context.state_dir / "registry.db"
    state_file.write_text("state")
    targets = [str(secret), str(state_file), str(provider.context.state_dir), __file__, "/root/.bashrc"]
    code = f"""
import json, os
seen = {{}}
for path in {targets!r}:
    try:
        seen[path] = os.listdir(path) if os.path.isdir(path) else open(path).read()
    except OSError as exc:
        seen[path] = type(exc).__name__
print(json.dumps({{"seen": seen, "root": sorted(os.listdir("/"))}}))
"""
    result = await run(provider, code)
    out = json.loads(result.metadata["stdout"])
    assert set(out["seen"].values()) == {"FileNotFoundError"}, out
    allowed = {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "root", "sbin", "tmp", "usr"}
    assert set(out["root"]) <= allowed, "only the runtime's directories are there"


async def test_the_code_runs_as_nobody_without_capabilities_seeing_only_its_processes(
    provider: CodeInterpreterProvider,
) -> None:
    code = """
import json, os
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
pids = [p for p in os.listdir("/proc") if p.isdigit()]
out = {"uid": os.getuid(), "cap": status["CapEff"].strip(), "pids": len(pids), "env": sorted(os.environ)}
print(json.dumps(out))
"""
    out = json.loads((await run(provider, code)).metadata["stdout"])
    assert out["uid"] == 65534 and int(out["cap"], 16) == 0, out
    assert out["pids"] <= 3, "the sandbox's own pid namespace: bwrap's init and the code"
    assert set(out["env"]) - {"PWD"} <= set(SANDBOX_ENV), "none of the server's environment is passed"


async def test_writes_outside_tmp_fail(provider: CodeInterpreterProvider) -> None:
    code = """
import json, os, sys, sysconfig
out = {}
for path in ["/x", "/usr/x", "/etc/x", sysconfig.get_paths()["stdlib"] + "/x", sys.executable, "/tmp/ok"]:
    try:
        with open(path, "a") as f:
            f.write("x")
        out[path] = "written"
    except OSError as exc:
        out[path] = type(exc).__name__
print(json.dumps(out))
"""
    out = json.loads((await run(provider, code)).metadata["stdout"])
    assert out.pop("/tmp/ok") == "written"
    assert "written" not in out.values(), out


async def test_a_fork_bomb_is_contained_and_the_provider_keeps_serving(
    provider: CodeInterpreterProvider,
) -> None:
    before = set(live_children())
    result = await run(provider, "import os\nwhile True:\n    os.fork()\n", max_processes=8)
    assert result.metadata["process_status"] in ("error", "timeout"), result.content
    assert result.error_message, "the call returns an error"
    expected = ("max_processes",) if provider.cgroups is not None else ("max_processes", "timeout_seconds")
    assert result.metadata["limit"] in expected, result.content
    assert set(live_children()) <= before, "no process of the sandbox is left"
    assert (await run(provider, "print('still here')")).metadata["stdout"] == "still here\n"


async def test_an_endless_loop_is_stopped_at_the_cpu_limit(provider: CodeInterpreterProvider) -> None:
    started = time.monotonic()
    result = await run(provider, "while True:\n    pass\n", cpu_seconds=1)
    assert result.metadata["limit"] in ("cpu_seconds", "timeout_seconds"), result.content
    assert "limit" in result.error_message and time.monotonic() - started < 25


async def test_a_sleeper_is_stopped_at_the_wall_time_limit(provider: CodeInterpreterProvider) -> None:
    started = time.monotonic()
    code = "import time\nprint('going', flush=True)\ntime.sleep(60)\n"
    result = await run(provider, code, timeout_seconds=1)
    assert result.metadata["process_status"] == "timeout" and result.metadata["limit"] == "timeout_seconds"
    assert result.error_message == "wall-time limit of 1 s reached: the code was stopped"
    assert result.error_code == 124 and result.metadata["stdout"] == "going\n"
    assert time.monotonic() - started < 15


async def test_a_memory_hog_is_stopped_with_the_reason(provider: CodeInterpreterProvider) -> None:
    result = await run(provider, "x = bytearray(1024 * 1024 * 1024)\nprint('allocated')", memory_mb=128)
    assert result.metadata["limit"] == "memory_mb", result.content
    assert result.error_message.startswith("memory limit of 128 MiB reached")
    assert "allocated" not in result.metadata["stdout"]


async def test_many_processes_together_are_held_to_the_memory_limit(
    provider: CodeInterpreterProvider,
) -> None:
    if provider.cgroups is None:
        pytest.skip(f"no cgroup here ({provider.cgroup_status}): memory is limited per process only")
    code = """
import os, time
for _ in range(4):
    if os.fork() == 0:
        block = bytearray(100 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(2)
        os._exit(0)
print(sorted(os.wait()[1] for _ in range(4)))
"""
    result = await run(provider, code, memory_mb=200)
    assert result.metadata["oom_kills"] >= 1, result.content
    assert "9" in result.metadata["stdout"], "a child was killed (SIGKILL) by the memory limit"
    assert "the memory limit (200 MiB) killed" in " ".join(result.metadata["notes"])


async def test_the_private_tmp_is_size_capped(tmp_path: Path) -> None:
    provider = await _provider(tmp_path, tmp_size_mb=8)
    code = "with open('/tmp/fill', 'wb') as f:\n    for _ in range(64):\n        f.write(b'x' * 2**20)\n"
    try:
        result = await run(provider, code)
    finally:
        await provider.shutdown()
    assert result.metadata["exception"]["type"] == "OSError", result.content
    assert "No space left on device" in result.metadata["exception"]["message"]


async def test_huge_output_is_truncated_with_a_note(provider: CodeInterpreterProvider) -> None:
    result = await run(provider, "print('x' * 1_000_000)\nprint('done')\n", max_output_bytes=1000)
    stdout = result.metadata["stdout"]
    assert stdout.startswith("x" * 1000) and "more bytes of stdout not shown: the limit is 1000" in stdout
    assert result.metadata["stdout_truncated_bytes"] == 1_000_001 + 5 - 1000
    assert result.metadata["process_status"] == "completed", "truncated, not stopped"


async def test_one_invocation_cannot_see_anothers_files(provider: CodeInterpreterProvider) -> None:
    await run(provider, "open('/tmp/mine.txt', 'w').write('first call')")
    result = await run(provider, "import os\nprint(os.listdir('/tmp'), os.path.exists('/tmp/mine.txt'))")
    assert result.metadata["stdout"] == "[] False\n"


async def test_concurrent_invocations_share_nothing(tmp_path: Path) -> None:
    provider = await _provider(tmp_path, max_concurrent=3)
    code = (
        "import os, time\nopen('/tmp/call-{n}', 'w').write('x')\ntime.sleep(1)\n"
        "print(sorted(os.listdir('/tmp')), os.getpid())"
    )
    try:
        results = await asyncio.gather(*(run(provider, code.format(n=n)) for n in range(3)))
    finally:
        await provider.shutdown()
    for n, result in enumerate(results):
        files, pid = result.metadata["stdout"].rsplit(" ", 1)
        assert files == f"['call-{n}']", result.content
        assert int(pid) <= 3, "each call has its own pid namespace"


async def test_max_concurrent_queues_the_rest_and_the_loop_keeps_running(tmp_path: Path) -> None:
    provider = await _provider(tmp_path, max_concurrent=2)
    # Each call sleeps 3 s: an event loop that waited on a sandbox would stall that long.
    code = "import time\nstart = time.monotonic()\ntime.sleep(3)\nprint(start, time.monotonic())"
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.02)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    try:
        calls = [asyncio.create_task(run(provider, code)) for _ in range(4)]
        await asyncio.sleep(1)
        health = await provider.health()
        results = await asyncio.gather(*calls)
    finally:
        stop.set()
        await tick
        await provider.shutdown()
    assert (health["running"], health["waiting"]) == (2, 2)
    spans = [tuple(map(float, r.metadata["stdout"].split())) for r in results]
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most == 2, spans
    assert max(gaps) < 2.5, "the event loop never waits on a sandbox"


async def test_a_call_may_lower_limits_but_not_raise_them(provider: CodeInterpreterProvider) -> None:
    with pytest.raises(BadRequestError) as err:
        await run(provider, "print(1)", timeout_seconds=3600)
    assert err.value.param == "kwargs.timeout_seconds" and "above this server's limit of 20" in str(err.value)
    with pytest.raises(BadRequestError) as err:
        await run(provider, "print(1)", memory_mb="lots")
    assert err.value.param == "kwargs.memory_mb"
    with pytest.raises(BadRequestError) as err:
        await provider.invoke_tool(GROUP, "code_interpreter", {"code": 42})
    assert err.value.param == "kwargs.code"


async def test_a_missing_bwrap_refuses_to_start_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        await _provider(tmp_path, bwrap_path="/nonexistent/bwrap")
    assert "apt-get install bubblewrap" in str(err.value) and "sandbox: none" in str(err.value)
    assert _our_cgroups_left() == [], "a provider that refuses to start leaves no cgroup"


async def test_without_require_sandbox_the_server_starts_and_calls_are_refused(tmp_path: Path) -> None:
    provider = await _provider(tmp_path, bwrap_path="/nonexistent/bwrap", require_sandbox=False)
    try:
        health = await provider.health()
        with pytest.raises(ServiceUnavailableError) as err:
            await run(provider, "print(1)")
    finally:
        await provider.shutdown()
    assert health["status"] == "Error" and "apt-get install bubblewrap" in health["message"]
    assert err.value.status == 503 and "cannot run code: bubblewrap" in str(err.value)


async def test_a_missing_prlimit_is_named_like_a_missing_bwrap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    only_bwrap = tmp_path / "bin"
    only_bwrap.mkdir()
    (only_bwrap / "bwrap").symlink_to(shutil.which("bwrap"))
    monkeypatch.setenv("PATH", str(only_bwrap))
    with pytest.raises(ConfigError) as err:
        await _provider(tmp_path)
    assert "`prlimit` (util-linux) is not on PATH" in str(err.value)
    provider = await _provider(tmp_path, require_sandbox=False)
    assert "prlimit" in (await provider.health())["message"]
    await provider.shutdown()


async def test_sandbox_none_keeps_the_limits_but_says_it_is_unsandboxed(tmp_path: Path) -> None:
    provider = await _provider(tmp_path, sandbox="none", timeout_seconds=5)
    try:
        ok = await run(provider, "print(6 * 7)")
        slow = await run(provider, "import time\ntime.sleep(30)", timeout_seconds=1)
    finally:
        await provider.shutdown()
    assert ok.metadata["stdout"] == "42\n" and ok.metadata["sandbox"] == "none"
    assert slow.metadata["limit"] == "timeout_seconds"
