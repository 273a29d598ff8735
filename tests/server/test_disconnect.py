"""A client that goes away: generations stop (tests in plugins/llama-cpp), writes are finished.

The server cancels the handler of a departed client (aiohttp's handler_cancellation) so that a
generation nobody waits for stops. A write the client started must not be cut half-way by the same
rule: here a vector-io insert whose client leaves while its chunks are being embedded.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

RUN_CONFIG = {
    "version": 2,
    "image_name": "disconnect",
    "providers": {
        "inference": [{"provider_id": "st", "provider_type": "inline::sentence-transformers"}],
        "vector_io": [{"provider_id": "faiss", "provider_type": "inline::faiss", "config": {}}],
    },
    "vector_dbs": [{"vector_db_id": "docs", "embedding_model": "all-MiniLM-L6-v2", "provider_id": "faiss"}],
}
CHUNKS = 600  # ~5 s of MiniLM embedding on 2 cores: the client leaves long before the insert ends


def _query(url: str, text: str) -> list[dict]:
    body = {"vector_db_id": "docs", "query": text, "params": {"max_chunks": 3}}
    resp = httpx.post(f"{url}/v1/vector-io/query", json=body, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()["chunks"]


def test_an_insert_whose_client_leaves_is_finished(start_lamina) -> None:
    server = start_lamina(RUN_CONFIG)
    chunks = [
        {
            "content": f"note {i}: the {i}th llama grazes near lake {i % 17}",
            "metadata": {"document_id": f"d{i}"},
        }
        for i in range(CHUNKS)
    ]
    with pytest.raises(httpx.TimeoutException):
        httpx.post(
            f"{server.url}/v1/vector-io/insert",
            json={"vector_db_id": "docs", "chunks": chunks},
            timeout=httpx.Timeout(10, read=0.5),
        )
    deadline = time.monotonic() + 30
    while (
        not (found := _query(server.url, "the 599th llama grazes near lake 4"))
        and time.monotonic() < deadline
    ):
        time.sleep(0.5)
    assert found, "the insert was cut when its client left: no chunk was stored"
    assert found[0]["metadata"]["document_id"] == "d599"
    assert "finishing_after_client_left" in server.log_path.read_text()


def test_a_request_whose_client_leaves_is_logged_499_not_500(start_lamina, fake_upstream) -> None:
    """The access log says what happened to a request whose client went away (nginx's 499, "client
    closed request"), not a server error: nothing failed on the server. The upstream is the fake one
    (its ``slow`` model answers after 5 s: a real server cannot be made slow on demand)."""
    server = start_lamina(
        {
            "version": 2,
            "image_name": "disconnect-log",
            "providers": {
                "inference": [
                    {
                        "provider_id": "up",
                        "provider_type": "remote::vllm",
                        "config": {"url": f"{fake_upstream.url}/v1"},
                    }
                ]
            },
            "models": [{"model_id": "slow", "provider_id": "up", "provider_model_id": "slow"}],
        }
    )
    path = "/v1/openai/v1/chat/completions"
    with pytest.raises(httpx.TimeoutException):
        httpx.post(
            f"{server.url}{path}",
            json={"model": "slow", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
            timeout=httpx.Timeout(10, read=0.5),
        )
    deadline = time.monotonic() + 20
    while not (logged := _access_log(server.log_path, path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert logged, "no access-log line for the abandoned request"
    assert logged[0]["status"] == 499, logged[0]
    assert logged[0]["client_gone"] is True, logged[0]


def _access_log(log_path, path: str) -> list[dict]:
    entries = []
    for line in log_path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "request" and entry.get("path") == path:
            entries.append(entry)
    return entries
