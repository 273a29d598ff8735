"""The Vector IO conformance kit against inline::faiss (HNSW, flat, a PostgreSQL kvstore) via a server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from lamina.testing.conformance import VectorIOConformance
from lamina.testing.processes import ServerProcess, lamina_server, pid_alive


def run_config(index: str, **config: Any) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": f"faiss-{index}",
        "apis": ["inference", "vector_io"],
        "providers": {
            "inference": [
                {"provider_id": "sentence-transformers", "provider_type": "inline::sentence-transformers"}
            ],
            "vector_io": [
                {
                    "provider_id": "faiss",
                    "provider_type": "inline::faiss",
                    "config": {"index": index, **config},
                }
            ],
        },
    }


class TestFaissHNSW(VectorIOConformance):
    run_config = run_config("hnsw")


class TestFaissFlat(VectorIOConformance):
    run_config = run_config("flat")


@pytest.mark.postgres
class TestFaissPostgresKVStore(VectorIOConformance):
    """Chunks kept in PostgreSQL; the restart test runs on a new state directory (a new machine)."""

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_lamina(
        cls, tmp_path_factory: pytest.TempPathFactory, postgres_server: Any
    ) -> Iterator[ServerProcess]:
        kvstore = postgres_server.kvstore_config(namespace=f"faiss-conformance-{uuid.uuid4().hex[:8]}")
        config = run_config("hnsw", kvstore=kvstore)
        # The registry goes to PostgreSQL too, so a server with a new home still knows the vector DBs.
        config["metadata_store"] = postgres_server.kvstore_config(
            namespace=f"registry-{uuid.uuid4().hex[:8]}"
        )
        cls.work = tmp_path_factory.mktemp("faiss-postgres")
        with lamina_server(config, cls.work) as server:
            yield server

    def restart_lamina(self, server: ServerProcess) -> None:
        old = server.pid
        server.stop()
        assert server.env is not None
        server.env["LAMINA_HOME"] = str(self.work / f"home-{uuid.uuid4().hex[:6]}")  # local state gone
        server.start()  # refuses if the old process still held the port
        assert server.pid != old and old is not None and not pid_alive(old)
