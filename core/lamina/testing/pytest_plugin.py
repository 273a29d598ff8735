"""Pytest fixtures for Lamina and its plugins (registered through the ``pytest11`` entry point).

Servers are real processes on loopback: PostgreSQL, llama.cpp's OpenAI server on the bundled
SmolLM2, ``lamina run`` itself, and a fake OpenAI upstream used only for fault injection.

The plugin also fails a test that leaves a child process of pytest running, unless a class, module
or session scoped fixture that is still set up owns it (``lamina.testing.child_processes``). Turn
that off with ``lamina_child_guard = false`` in the pytest ini options.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lamina.testing import processes  # processes.lamina_server: `lamina_server` here is the fixture
from lamina.testing.child_processes import ChildGuard, live_children
from lamina.testing.processes import (
    RUNNING,
    ServerProcess,
    fake_openai_server,
    llamacpp_server,
)

_guard: ChildGuard | None = None


# Markers the conformance kits and these fixtures put on tests, registered here so that a plugin's
# test suite run with ``--strict-markers`` collects without declaring them itself.
MARKERS = {
    "e2e": "drives a real `lamina run` process with the official clients",
    "postgres": "needs a PostgreSQL server (started by the tests)",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "lamina_child_guard",
        "fail a test that leaves a child process running that no longer-lived fixture owns",
        type="bool",
        default=True,
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    global _guard
    _guard = ChildGuard() if session.config.getini("lamina_child_guard") else None


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Any:
    """Children that appear while a longer-lived fixture is set up belong to it until it is finalized."""
    guard = _guard
    if guard is None or fixturedef.scope == "function":
        return (yield)
    pids, servers = set(live_children()), set(RUNNING)
    result = yield  # a setup that fails owns nothing: what it started is the test's leak
    new_servers = [server for pid, server in RUNNING.items() if pid not in servers]
    label = f"{fixturedef.scope}-scoped fixture '{fixturedef.argname}'"
    guard.adopt(fixturedef, label, set(live_children()) - pids, new_servers)
    return result


def pytest_fixture_post_finalizer(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> None:
    if _guard is not None and fixturedef.scope != "function":
        _guard.release(fixturedef)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """After the test and the fixtures that end with it are torn down, no unowned child may remain."""
    guard = _guard
    try:
        result = yield
    except BaseException:
        if guard is not None and (leaked := guard.leaks()):
            guard.report_and_kill(leaked, item.nodeid)  # the teardown's own error is what gets reported
        raise
    if guard is not None and (leaked := guard.leaks()):
        pytest.fail(guard.report_and_kill(leaked, item.nodeid), pytrace=False)
    return result


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Every fixture is finalized now: any child still running was leaked outside a test."""
    if _guard is None or session.config.pluginmanager.hasplugin("dsession"):
        return  # an xdist controller: its children are the workers, each of which checks its own
    leaked = {pid: cmd for pid, cmd in live_children().items() if pid not in _guard.baseline}
    if leaked:
        message = _guard.report_and_kill(leaked, "the test session")
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(message, red=True)
        if session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def lamina_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def llamacpp_chat(lamina_logs: Path) -> Iterator[ServerProcess]:
    """llama.cpp's OpenAI-compatible server on SmolLM2-135M-Instruct; its model id is ``smollm2``."""
    with llamacpp_server(lamina_logs, alias="smollm2") as server:
        yield server


@pytest.fixture(scope="session")
def llamacpp_embed(lamina_logs: Path) -> Iterator[ServerProcess]:
    """llama.cpp serving embeddings (mean pooling, 576 dims); model id ``smollm2-embed``."""
    with llamacpp_server(lamina_logs, embedding=True, alias="smollm2-embed") as server:
        yield server


@pytest.fixture(scope="session")
def fake_upstream(lamina_logs: Path) -> Iterator[ServerProcess]:
    """A fake OpenAI upstream for fault injection (see lamina.testing.fake_openai)."""
    with fake_openai_server(lamina_logs, slow_seconds=5.0) as server:
        yield server


@pytest.fixture(scope="session")
def local_lamina(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``lamina run local``: the embedded local distribution (SmolLM2, MiniLM, faiss, shields) as a
    user starts it with ``hatch run serve``, shared by the session; state in a temporary LAMINA_HOME."""
    with processes.lamina_server("local", tmp_path_factory.mktemp("local-lamina"), name="local") as server:
        yield server


@pytest.fixture
def start_lamina(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start ``lamina run``: ``start_lamina(run_config, *, port=None, env=None, extra_args=None,
    work_dir=tmp_path, name=...)``; every server started is stopped after the test.

    ``run_config`` is a run config dict (written to ``work_dir``), a path or a distribution's name;
    ``port`` defaults to a free one, ``env`` adds variables to the server's environment (its
    ``LAMINA_HOME`` is ``work_dir/home``) and ``extra_args`` go after ``lamina run CONFIG --port N``.
    The same keywords as ``lamina.testing.processes.lamina_server``, which a class-scoped fixture
    uses as ``with lamina_server(config, work_dir, port=..., env=..., extra_args=...) as server:``.
    """
    started: list[ServerProcess] = []

    def start(
        run_config: dict[str, Any] | str | Path,
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
        work_dir: Path | None = None,
        name: str | None = None,
    ) -> ServerProcess:
        server = processes.lamina_server(
            run_config,
            work_dir or tmp_path,
            port=port,
            env=env,
            extra_args=extra_args,
            name=name or f"lamina{len(started)}",
        ).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def otlp_receiver() -> Iterator[Any]:
    """An OTLP/HTTP receiver on 127.0.0.1 (lamina.testing.otlp_receiver.OtlpReceiver), fresh per test:
    point a telemetry provider's ``otel_trace_endpoint``/``otel_metric_endpoint`` at its
    ``traces_endpoint``/``metrics_endpoint`` and read ``spans()``/``metric_points()``. Needs
    opentelemetry-proto (lamina-telemetry installs it)."""
    from lamina.testing.otlp_receiver import OtlpReceiver  # protobuf loads only for tests that use it

    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture
def lamina_server(start_lamina: Callable[..., ServerProcess]) -> Callable[..., ServerProcess]:
    """``lamina_server(run_config, *, port=None, env=None, extra_args=None, work_dir=tmp_path, name=...)``:
    a started ``lamina run``, stopped after the test; the same as ``start_lamina``.

    For a server shared by a class or module, use the function of the same name,
    ``lamina.testing.processes.lamina_server(run_config, work_dir, *, port=, env=, extra_args=)``,
    in a fixture of that scope: ``with lamina_server(config, work_dir) as server: yield server``.
    """
    return start_lamina


from lamina.testing.fixtures import postgres_server  # noqa: E402,F401 - re-exported fixture
