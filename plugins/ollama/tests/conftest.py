"""Fixtures for the Ollama adapter's tests.

No Ollama server can be installed or run in this environment, so every test talks to
``ollama_stub.py``: a stub that speaks Ollama's documented wire format, started in-process
(``stub``) or as a subprocess (``stub_process``) for tests that drive a real ``lamina run``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from lamina.testing.processes import ServerProcess, free_port

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import ollama_stub  # noqa: E402


def stub_server_process(log_dir: Path, *, slow_seconds: float = 3.0) -> ServerProcess:
    port = free_port()
    argv = [
        sys.executable,
        str(HERE / "ollama_stub.py"),
        "--port",
        str(port),
        "--slow-seconds",
        str(slow_seconds),
    ]
    return ServerProcess(argv, port, log_path=log_dir / f"ollama-stub-{port}.log", ready_path="/api/version")


@pytest.fixture
async def stub() -> AsyncIterator[TestServer]:
    """The stub in this test's event loop; ``stub.app[ollama_stub.STUB]`` is its state (requests, models)."""
    server = TestServer(ollama_stub.make_app(slow_seconds=2.0), host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture(scope="session")
def stub_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The stub as its own process, for tests through a real ``lamina run``."""
    with stub_server_process(tmp_path_factory.mktemp("ollama-stub"), slow_seconds=3.0) as server:
        yield server
