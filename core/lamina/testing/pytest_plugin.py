"""Pytest fixtures for Lamina and its plugins (registered through the ``pytest11`` entry point).

Servers are real processes on loopback: PostgreSQL, llama.cpp's OpenAI server on the bundled
SmolLM2, ``lamina run`` itself, and a fake OpenAI upstream used only for fault injection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lamina.testing.processes import ServerProcess, fake_openai_server, lamina_server, llamacpp_server


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


@pytest.fixture
def start_lamina(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start ``lamina run`` on a run config dict; every server started is stopped after the test."""
    started: list[ServerProcess] = []

    def start(run_config: dict[str, Any] | str | Path, **kwargs: Any) -> ServerProcess:
        kwargs.setdefault("name", f"lamina{len(started)}")
        server = lamina_server(run_config, kwargs.pop("work_dir", tmp_path), **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


from lamina.testing.fixtures import postgres_server  # noqa: E402,F401 - re-exported fixture
