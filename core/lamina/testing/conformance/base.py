"""What every conformance kit shares: the server under test, its restart, the official clients.

A kit's subclass either sets ``run_config`` (a run config dict: the kit starts ``lamina run`` on it
once per class, in a temporary directory) or overrides the class-scoped fixture
``conformance_lamina`` to start the server its own way (another fixture's upstream, a remote
database, ...).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from llama_stack_client import LlamaStackClient

from lamina.testing.processes import ServerProcess, lamina_server


class ConformanceKit:
    run_config: ClassVar[dict[str, Any] | None] = None
    client_timeout: ClassVar[float] = 120.0  # seconds, for the official clients

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_lamina(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
        if cls.run_config is None:
            pytest.fail(f"{cls.__name__}: set run_config, or override the conformance_lamina fixture")
        with lamina_server(cls.run_config, tmp_path_factory.mktemp(cls.__name__.lower())) as server:
            yield server

    def restart_lamina(self, server: ServerProcess) -> None:
        """Restart the server on the same config and state (override when that needs more).

        ``restart()`` fails unless the old process is gone and a new one answers on the port.
        """
        server.restart()

    @pytest.fixture
    def ls(self, conformance_lamina: ServerProcess) -> LlamaStackClient:
        return LlamaStackClient(base_url=conformance_lamina.url, max_retries=0, timeout=self.client_timeout)
