"""The test harness itself: ServerProcess starts one process at a time and restarts provably, and the
pytest plugin fails a test that leaves a child process behind.

The plugin is checked by running pytest in a subprocess on small generated test files (the same
plugin loads there through its ``pytest11`` entry point), each starting real processes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from lamina.testing.processes import ServerProcess, fake_openai_server, pid_alive


@pytest.fixture
def fake(tmp_path: Path) -> ServerProcess:
    return fake_openai_server(tmp_path)


def test_a_second_start_is_refused_and_leaves_one_process(fake: ServerProcess) -> None:
    with fake:
        first = fake.pid
        refused = r"already running \(pid \d+ on port \d+\).*use `with server:`"
        with pytest.raises(RuntimeError, match=refused):
            fake.start()
        assert fake.pid == first and fake.running
        assert httpx.get(fake.url + "/v1/models").status_code == 200
    assert first is not None and not pid_alive(first)


def test_with_server_start_is_the_double_start_and_fails(fake: ServerProcess) -> None:
    """The pattern that orphaned the vector stores test's first server: now it fails at once (the
    first process is still this object's, so stop() ends it)."""
    with pytest.raises(RuntimeError, match="already running"):
        with fake.start():
            pass
    first = fake.pid
    assert fake.running
    fake.stop()
    assert first is not None and not pid_alive(first)


def test_a_port_already_served_by_another_process_is_refused(fake: ServerProcess, tmp_path: Path) -> None:
    with fake:
        log = tmp_path / "second.log"
        squatter = ServerProcess(fake.argv, fake.port, log_path=log, ready_path="/v1/models")
        with pytest.raises(RuntimeError, match=f"port {fake.port} already accepts connections"):
            squatter.start()
        assert squatter.proc is None


def test_restart_runs_a_new_process_and_the_old_one_is_gone(fake: ServerProcess) -> None:
    with fake:
        old = fake.pid
        fake.restart()
        assert old is not None and fake.pid != old and not pid_alive(old)
        assert httpx.get(fake.url + "/v1/models").status_code == 200


def _run_pytest(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_generated.py").write_text(textwrap.dedent(source))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # keep the repository's ini options out
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


HEADER = """
    import os, subprocess, sys
    from pathlib import Path
    import pytest
    from lamina.testing.processes import fake_openai_server, pid_alive

    PIDS = Path(__file__).with_name("pids.txt")

    def note(pid):
        with PIDS.open("a") as fh:
            fh.write(f"{pid}\\n")
"""


def _noted_pids(tmp_path: Path) -> list[int]:
    return [int(line) for line in (tmp_path / "pids.txt").read_text().split()]


def test_a_test_that_leaves_a_server_or_a_process_running_fails(tmp_path: Path) -> None:
    result = _run_pytest(
        tmp_path,
        HEADER
        + """
    def test_leaks_a_server(tmp_path):
        note(fake_openai_server(tmp_path).start().pid)

    def test_leaks_a_plain_child():
        note(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]).pid)

    def test_stops_its_server(tmp_path):
        with fake_openai_server(tmp_path) as server:
            note(server.pid)
    """,
    )
    out = result.stdout
    assert result.returncode == 1, out
    assert "3 passed, 2 errors" in out, out
    assert "ERROR at teardown of test_leaks_a_server" in out and "lamina.testing.fake_openai" in out, out
    assert "ERROR at teardown of test_leaks_a_plain_child" in out and "time.sleep(600)" in out, out
    assert "ERROR at teardown of test_stops_its_server" not in out, out
    assert "left 1 child process(es) running (now killed)" in out
    assert not any(pid_alive(pid) for pid in _noted_pids(tmp_path)), "the leaked processes are killed"


def test_longer_lived_fixtures_own_their_servers_and_restarts(tmp_path: Path) -> None:
    """A module fixture's server (restarted by a test) and a session fixture first set up inside a
    test are not leaks while their fixture lives; a module fixture that forgets to stop is one."""
    result = _run_pytest(
        tmp_path,
        HEADER
        + """
    @pytest.fixture(scope="session")
    def session_server(tmp_path_factory):
        with fake_openai_server(tmp_path_factory.mktemp("s")) as server:
            note(server.pid)
            yield server

    @pytest.fixture(scope="module")
    def module_server(tmp_path_factory):
        with fake_openai_server(tmp_path_factory.mktemp("m")) as server:
            yield server

    @pytest.fixture(scope="module")
    def forgetful_server(tmp_path_factory):
        server = fake_openai_server(tmp_path_factory.mktemp("f")).start()
        note(server.pid)
        yield server

    def test_restarts_the_module_server(module_server, session_server):
        old = module_server.pid
        module_server.restart()
        note(module_server.pid)
        assert module_server.pid != old and not pid_alive(old)

    def test_uses_the_session_server_again(session_server, module_server):
        assert session_server.running and module_server.running

    def test_last_in_module_uses_the_forgetful_one(forgetful_server):
        assert forgetful_server.running
    """,
    )
    out = result.stdout
    assert "3 passed, 1 error" in out, out
    assert "ERROR at teardown of test_last_in_module_uses_the_forgetful_one" in out, out
    # Only one test leaked (with CI set, pytest's summary repeats the message: count tests, not lines).
    assert set(re.findall(r"(test_generated\.py::\w+) left \d+ child process", out)) == {
        "test_generated.py::test_last_in_module_uses_the_forgetful_one"
    }, out
    assert not any(pid_alive(pid) for pid in _noted_pids(tmp_path))


def test_the_plugin_registers_its_markers_for_strict_markers_suites(tmp_path: Path) -> None:
    """A plugin's own test suite (no marker declarations of its own) runs the kits with --strict-markers."""
    (tmp_path / "test_generated.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.e2e
            def test_e2e():
                pass

            @pytest.mark.postgres
            def test_postgres():
                pass
            """
        )
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers\n")  # declares no markers
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and "2 passed" in result.stdout, result.stdout + result.stderr
    markers = subprocess.run(
        [sys.executable, "-m", "pytest", "--markers", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    assert "@pytest.mark.e2e:" in markers and "@pytest.mark.postgres:" in markers


@pytest.mark.parametrize("fixture", ["lamina_server", "start_lamina"])
def test_lamina_server_takes_port_env_and_extra_args(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from lamina.testing.processes import free_port

    start = request.getfixturevalue(fixture)
    port = free_port()
    server = start(
        {"version": 2, "image_name": "harness", "providers": {}},
        port=port,
        env={"LAMINA_LOG_FORMAT": "console"},
        extra_args=["--host", "127.0.0.1"],
        name="keywords",
    )
    assert server.port == port and server.url == f"http://127.0.0.1:{port}"
    assert server.argv[-2:] == ["--host", "127.0.0.1"]
    assert server.env is not None and server.env["LAMINA_LOG_FORMAT"] == "console"
    assert httpx.get(server.url + "/v1/health", timeout=30).status_code == 200
    assert (tmp_path / "keywords.log").is_file()
