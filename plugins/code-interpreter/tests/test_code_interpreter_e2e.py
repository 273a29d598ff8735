"""inline::code-interpreter through a real ``lamina run``, driven by llama-stack-client 0.2.12.

Every sandbox guarantee is tried by code that attacks it, sent as a client would send it; after each,
the server must still answer.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from llama_stack_client import BadRequestError, LlamaStackClient

from lamina.testing.processes import ServerProcess, lamina_server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed"),
]
SECRET = "the server's planted secret"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("code-e2e")


@pytest.fixture(scope="module")
def server(work: Path) -> Iterator[ServerProcess]:
    (work / "planted.txt").write_text(SECRET)
    run_config = {
        "version": 2,
        "image_name": "code-e2e",
        "providers": {
            "tool_runtime": [
                {
                    "provider_id": "code-interpreter",
                    "provider_type": "inline::code-interpreter",
                    "config": {
                        "timeout_seconds": 20,
                        "cpu_seconds": 5,
                        "memory_mb": 256,
                        "max_concurrent": 2,
                    },
                }
            ],
        },
    }
    with lamina_server(run_config, work) as proc:
        yield proc


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> LlamaStackClient:
    return LlamaStackClient(base_url=server.url, max_retries=0, timeout=120)


def invoke(client: LlamaStackClient, code: str, **limits):
    return client.tool_runtime.invoke_tool(tool_name="code_interpreter", kwargs={"code": code, **limits})


def assert_serving(server: ServerProcess) -> None:
    assert httpx.get(f"{server.url}/v1/health", timeout=10).json()["status"] == "OK"


def test_the_tool_group_is_registered_with_its_tool(client: LlamaStackClient) -> None:
    groups = {g.identifier: g for g in client.toolgroups.list()}
    assert groups["builtin::code_interpreter"].provider_id == "code-interpreter"
    [tool] = client.tools.list(toolgroup_id="builtin::code_interpreter")
    assert tool.identifier == "code_interpreter"
    assert [(p.name, p.parameter_type) for p in tool.parameters] == [("code", "string")]


def test_a_computation_prints_its_result(client: LlamaStackClient) -> None:
    result = invoke(client, "import math\nprint(math.comb(10, 3) * 2)")
    assert result.content == "completed\n[stdout]\n240\n\n[/stdout]"
    assert result.error_message is None and result.metadata["exit_code"] == 0


@pytest.mark.skipif(importlib.util.find_spec("numpy") is None, reason="numpy is not installed")
def test_numpy_imports(client: LlamaStackClient) -> None:
    result = invoke(client, "import numpy as np\nprint(np.linalg.det(np.array([[2.0, 0], [0, 3.0]])))")
    assert result.metadata["stdout"].strip() == "6.0", result.content


def test_the_servers_own_port_is_unreachable(client: LlamaStackClient, server: ServerProcess) -> None:
    code = (
        "import urllib.request\n"
        f"print(urllib.request.urlopen('http://127.0.0.1:{server.port}/v1/health', timeout=5).read())"
    )
    result = invoke(client, code)
    assert result.metadata["exception"]["type"] == "URLError", result.content
    assert "Connection refused" in result.metadata["exception"]["message"]
    assert_serving(server)


def test_the_servers_files_and_state_are_invisible(client: LlamaStackClient, work: Path) -> None:
    state = work / "home"
    assert any(state.rglob("*")), "the server keeps state there"
    targets = [str(work / "planted.txt"), str(state), str(Path(__file__).parent)]
    code = f"""
import json, os
seen = {{}}
for path in {targets!r}:
    try:
        seen[path] = os.listdir(path) if os.path.isdir(path) else open(path).read()
    except OSError as exc:
        seen[path] = type(exc).__name__
print(json.dumps(seen))
"""
    result = invoke(client, code)
    assert set(json.loads(result.metadata["stdout"]).values()) == {"FileNotFoundError"}, result.content
    assert SECRET not in result.content


def test_writes_outside_tmp_fail(client: LlamaStackClient) -> None:
    code = """
import json, sys
out = {}
for path in ["/planted", "/usr/planted", sys.executable, "/tmp/mine"]:
    try:
        open(path, "a").write("x")
        out[path] = "written"
    except OSError as exc:
        out[path] = type(exc).__name__
print(json.dumps(out))
"""
    out = json.loads(invoke(client, code).metadata["stdout"])
    assert out.pop("/tmp/mine") == "written" and "written" not in out.values(), out


def test_a_fork_bomb_is_contained_and_the_server_survives(
    client: LlamaStackClient, server: ServerProcess
) -> None:
    result = invoke(client, "import os\nwhile True:\n    os.fork()\n")
    assert result.error_message and result.metadata["limit"] in ("max_processes", "timeout_seconds")
    assert_serving(server)
    assert invoke(client, "print('after the bomb')").metadata["stdout"] == "after the bomb\n"


def test_an_endless_loop_is_stopped_with_the_reason(client: LlamaStackClient) -> None:
    result = invoke(client, "while True:\n    pass\n", cpu_seconds=1, timeout_seconds=15)
    assert result.metadata["limit"] in ("cpu_seconds", "timeout_seconds"), result.content
    assert "limit of" in result.error_message and "reached" in result.content


def test_a_sleeper_is_stopped_at_the_wall_time_limit(client: LlamaStackClient) -> None:
    result = invoke(client, "import time\ntime.sleep(100)", timeout_seconds=1)
    assert result.content.startswith("timeout\nwall-time limit of 1 s reached")
    assert result.error_code == 124


def test_a_memory_hog_is_stopped_with_the_reason(client: LlamaStackClient) -> None:
    result = invoke(client, "hog = [bytearray(2**20) for _ in range(4096)]")
    assert result.metadata["limit"] == "memory_mb", result.content
    assert result.error_message.startswith("memory limit of 256 MiB reached")


def test_huge_output_is_truncated_with_a_note(client: LlamaStackClient) -> None:
    result = invoke(client, "for i in range(200_000):\n    print(i)\nprint('end')", max_output_bytes=2048)
    assert result.metadata["process_status"] == "completed"
    assert result.metadata["stdout_truncated_bytes"] > 1_000_000
    assert "more bytes of stdout not shown: the limit is 2048 bytes per stream" in result.content


def test_one_invocation_cannot_see_anothers_files(client: LlamaStackClient) -> None:
    invoke(client, "open('/tmp/left-behind', 'w').write('x')")
    result = invoke(client, "import os\nprint(os.listdir('/tmp'))")
    assert result.metadata["stdout"] == "[]\n"


def test_limits_may_be_lowered_not_raised(client: LlamaStackClient) -> None:
    with pytest.raises(BadRequestError) as err:
        invoke(client, "print(1)", memory_mb=100_000)
    assert "kwargs.memory_mb" in str(err.value) and "limit of 256" in str(err.value)
    with pytest.raises(BadRequestError) as err:
        client.tool_runtime.invoke_tool(tool_name="code_interpreter", kwargs={})
    assert "kwargs.code" in str(err.value)


def test_concurrent_calls_share_nothing_queue_past_max_concurrent_and_the_server_answers(
    client: LlamaStackClient, server: ServerProcess
) -> None:
    code = (
        "import os, time\nopen(f'/tmp/call-{n}', 'w').close()\nstart = time.monotonic()\ntime.sleep(1.5)\n"
        "print(start, time.monotonic(), os.listdir('/tmp'))"
    )
    with ThreadPoolExecutor(4) as pool:
        calls = [pool.submit(invoke, client, code.replace("{n}", str(n))) for n in range(4)]
        time.sleep(0.5)
        asked = time.monotonic()
        assert_serving(server)
        health_seconds = time.monotonic() - asked
        results = [call.result() for call in calls]
    spans = []
    for n, result in enumerate(results):
        start, end, files = result.metadata["stdout"].split(" ", 2)
        assert files.strip() == f"['call-{n}']", result.content
        spans.append((float(start), float(end)))
    assert max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans) == 2, spans
    assert health_seconds < 5, "the server answers while sandboxes run and wait"
