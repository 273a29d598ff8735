"""A real Chroma server (``chroma run`` from the chromadb package) on loopback, for the session."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamina.testing.processes import ServerProcess, free_port


def chroma_executable() -> str | None:
    local = Path(sys.executable).parent / "chroma"
    return str(local) if local.exists() else shutil.which("chroma")


def chroma_process(data_dir: Path, log_dir: Path, port: int | None = None) -> ServerProcess:
    exe = chroma_executable()
    if exe is None:
        pytest.skip("the `chroma` command is missing: pip install chromadb==1.5.9 (hatch.toml has it)")
    port = port or free_port()
    argv = [exe, "run", "--path", str(data_dir), "--host", "127.0.0.1", "--port", str(port)]
    return ServerProcess(
        argv,
        port,
        log_path=log_dir / f"chroma-{port}.log",
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        ready_path="/api/v2/heartbeat",
        ready_timeout=60.0,
    )


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("chroma")
    server = chroma_process(root / "data", root)
    server.start()
    try:
        yield server
    finally:
        server.stop()
