"""A Chroma server that is down at start-up: Lamina starts, reports it, and registers the run
config's vector DB once a real Chroma server comes up on that address."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from lamina.testing.processes import free_port

from .conftest import chroma_process


def _vector_db_ids(url: str) -> list[str]:
    return [db["identifier"] for db in httpx.get(f"{url}/v1/vector-dbs", timeout=10).json()["data"]]


def test_a_vector_db_on_a_down_chroma_is_registered_once_chroma_is_up(start_lamina, tmp_path: Path) -> None:
    port = free_port()
    config = {
        "version": 2,
        "image_name": "chroma-down",
        "providers": {
            "inference": [{"provider_id": "st", "provider_type": "inline::sentence-transformers"}],
            "vector_io": [
                {
                    "provider_id": "chroma",
                    "provider_type": "remote::chromadb",
                    "config": {"url": f"http://127.0.0.1:{port}"},
                }
            ],
        },
        "vector_dbs": [
            {"vector_db_id": "docs", "embedding_model": "all-MiniLM-L6-v2", "provider_id": "chroma"}
        ],
    }
    server = start_lamina(config)  # used to fail: "vector_dbs[0]: provider 'chroma': cannot connect"
    health = httpx.get(f"{server.url}/v1/health", timeout=10).json()
    assert [p["provider_id"] for p in health["providers_down"]] == ["chroma"]
    ready = httpx.get(f"{server.url}/v1/health/ready", timeout=10)
    assert ready.status_code == 503 and "chroma" in ready.json()["detail"]
    assert "docs" not in _vector_db_ids(server.url)

    with chroma_process(tmp_path / "chroma-data", tmp_path, port=port):
        deadline = time.monotonic() + 90  # retries back off 1, 2, 4 ... 30 s
        while "docs" not in _vector_db_ids(server.url) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "docs" in _vector_db_ids(server.url), server.log_tail()
        assert httpx.get(f"{server.url}/v1/health/ready", timeout=10).status_code == 200
        chunks = [{"content": "llamas live in the Andes", "metadata": {"document_id": "a"}}]
        insert = httpx.post(
            f"{server.url}/v1/vector-io/insert", json={"vector_db_id": "docs", "chunks": chunks}, timeout=60
        )
        assert insert.status_code == 200, insert.text
        query = httpx.post(
            f"{server.url}/v1/vector-io/query",
            json={"vector_db_id": "docs", "query": "where do llamas live?"},
            timeout=60,
        )
        assert query.json()["chunks"][0]["content"] == "llamas live in the Andes"
