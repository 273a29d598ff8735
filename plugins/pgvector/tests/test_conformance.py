"""remote::pgvector through a real ``lamina run``: the Vector IO conformance kit.

The run config is written as for Llama Stack 0.2.x (``${env.PGVECTOR_*}`` substitution, the
same field names), against PostgreSQL 18 with pgvector started by the ``pgvector_server`` fixture;
embeddings come from ``inline::sentence-transformers`` (all-MiniLM-L6-v2, 384 dimensions). The
PostgreSQL server keeps running across the kit's server restart: the chunks must simply survive it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lamina.testing.conformance import VectorIOConformance
from lamina.testing.postgres import PostgresServer
from lamina.testing.processes import ServerProcess, lamina_server

pytestmark = pytest.mark.postgres

RUN_CONFIG = {
    "version": 2,
    "image_name": "pgvector-conformance",
    "providers": {
        "inference": [
            {
                "provider_id": "sentence-transformers",
                "provider_type": "inline::sentence-transformers",
                "config": {},
            },
            {
                "provider_id": "nowhere",
                "provider_type": "remote::vllm",
                "config": {"url": "http://127.0.0.1:9/v1", "connect_timeout": 1.0},
            },
        ],
        "vector_io": [
            {
                "provider_id": "pgvector",
                "provider_type": "remote::pgvector",
                "config": {
                    "host": "${env.PGVECTOR_HOST:localhost}",
                    "port": "${env.PGVECTOR_PORT:5432}",
                    "db": "${env.PGVECTOR_DB}",
                    "user": "${env.PGVECTOR_USER}",
                    "password": "${env.PGVECTOR_PASSWORD}",
                },
            }
        ],
    },
    "models": [{"model_id": "some-llm", "provider_id": "nowhere", "model_type": "llm"}],
}


class TestPGVectorConformance(VectorIOConformance):
    llm_model = "some-llm"

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_lamina(
        cls, pgvector_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[ServerProcess]:
        env = {
            "PGVECTOR_HOST": pgvector_server.host,
            "PGVECTOR_PORT": str(pgvector_server.port),
            "PGVECTOR_DB": pgvector_server.db,
            "PGVECTOR_USER": pgvector_server.user,
            "PGVECTOR_PASSWORD": "unused-with-trust-auth",
        }
        with lamina_server(RUN_CONFIG, tmp_path_factory.mktemp("lamina-pgvector"), env=env) as server:
            yield server
