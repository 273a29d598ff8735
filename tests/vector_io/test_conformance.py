"""The Vector IO conformance kit run against the in-memory test provider (proves the kit itself).

The provider is ``inline::test-memory-vectors`` from tests/plugin_dists/lamina-test-memory-vectors,
installed as a real distribution; embeddings come from inline::sentence-transformers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_stack_client import LlamaStackClient

from lamina.testing.conformance import VectorIOConformance
from lamina.testing.processes import ServerProcess, lamina_server

RUN_CONFIG = {
    "version": 2,
    "image_name": "vector-io-conformance",
    "apis": ["inference", "vector_io"],
    "providers": {
        "inference": [
            {"provider_id": "sentence-transformers", "provider_type": "inline::sentence-transformers"},
            {
                "provider_id": "nowhere",
                "provider_type": "remote::vllm",
                "config": {"url": "http://127.0.0.1:9/v1", "connect_timeout": 1.0},
            },
        ],
        "vector_io": [{"provider_id": "memory", "provider_type": "inline::test-memory-vectors"}],
    },
    "models": [{"model_id": "some-llm", "provider_id": "nowhere", "model_type": "llm"}],
}
PLUGINS = "lamina-test-memory-vectors,lamina-onnx-embeddings,lamina-openai-compat"


def memory_server(config: dict, work: Path, dist_dir: Path) -> ServerProcess:
    path = os.pathsep.join(filter(None, [str(dist_dir), os.environ.get("PYTHONPATH")]))
    env = {"PYTHONPATH": path, "LAMINA_LOAD_PLUGINS": PLUGINS}
    return lamina_server(config, work, env=env)


class TestMemoryVectors(VectorIOConformance):
    llm_model = "some-llm"

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_lamina(
        cls, tmp_path_factory: pytest.TempPathFactory, memory_vectors_dir: Path
    ) -> Iterator[ServerProcess]:
        with memory_server(RUN_CONFIG, tmp_path_factory.mktemp("vector-io"), memory_vectors_dir) as server:
            yield server


def _config_with_vector_dbs(dimension: int | None) -> dict:
    entry: dict = {"vector_db_id": "config/docs", "embedding_model": "all-MiniLM-L6-v2"}
    if dimension is not None:
        entry["embedding_dimension"] = dimension
    return {**RUN_CONFIG, "vector_dbs": [entry]}


@pytest.mark.e2e
def test_run_config_vector_dbs_are_registered_once_and_survive_restarts(
    tmp_path: Path, memory_vectors_dir: Path
) -> None:
    server = memory_server(_config_with_vector_dbs(384), tmp_path, memory_vectors_dir)
    with server:
        ls = LlamaStackClient(base_url=server.url, max_retries=0)
        db = ls.vector_dbs.retrieve("config/docs")
        assert (db.provider_id, db.embedding_dimension) == ("memory", 384)
        ls.vector_io.insert(
            vector_db_id="config/docs", chunks=[{"content": "Owls hunt at night.", "metadata": {}}]
        )
        providers = {p.provider_id: p.api for p in ls.providers.list()}
        assert providers["memory"] == "vector_io"
        routes = {r.route for r in ls.routes.list()}
        assert {"/v1/vector-dbs", "/v1/vector-io/insert", "/v1/vector-io/query"} <= routes
        created = db.model_extra.get("created") if db.model_extra else None
    with server:  # the same config again: nothing changes, the chunk is still there
        ls = LlamaStackClient(base_url=server.url, max_retries=0)
        again = ls.vector_dbs.retrieve("config/docs")
        assert (again.model_extra or {}).get("created") == created
        found = ls.vector_io.query(vector_db_id="config/docs", query="Owls hunt at night.")
        assert [c.content for c in found.chunks] == ["Owls hunt at night."]


@pytest.mark.e2e
def test_a_run_config_vector_db_with_the_wrong_dimension_stops_start_up(
    tmp_path: Path, memory_vectors_dir: Path
) -> None:
    server = memory_server(_config_with_vector_dbs(768), tmp_path, memory_vectors_dir)
    with pytest.raises(RuntimeError) as info:
        server.start()
    assert "vector_dbs[0]: embedding_dimension 768" in str(info.value)


@pytest.mark.e2e
def test_vector_io_without_inference_stops_start_up(tmp_path: Path, memory_vectors_dir: Path) -> None:
    config = {**RUN_CONFIG, "providers": {"vector_io": RUN_CONFIG["providers"]["vector_io"]}, "models": []}
    server = memory_server(config, tmp_path, memory_vectors_dir)
    with pytest.raises(RuntimeError) as info:
        server.start()
    assert "vector DBs need embeddings" in str(info.value)
