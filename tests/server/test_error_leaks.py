"""Errors tell a client what went wrong without echoing megabytes back or naming internal addresses.

The upstream is the fake OpenAI server (``lamina.testing.fake_openai``): only it can answer 500 or
malformed JSON on demand. The "down" provider points at a free loopback port nobody listens on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from openai import OpenAI

from lamina.errors import MAX_MESSAGE_CHARS, BadRequestError, NotFoundError, cap_text
from lamina.testing.processes import ServerProcess, free_port, lamina_server

SAY = [{"role": "user", "content": "hi"}]
HUGE = "m" * 1_000_000


def _vllm(provider_id: str, url: str, **config: object) -> dict:
    return {"provider_id": provider_id, "provider_type": "remote::vllm", "config": {"url": url, **config}}


@pytest.fixture(scope="module")
def lamina(fake_upstream: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config = {
        "version": 2,
        "image_name": "leaks",
        "providers": {
            "inference": [
                _vllm("faulty", f"{fake_upstream.url}/v1"),
                _vllm("gone", dead, connect_timeout=2),
            ]
        },
        "models": [
            {"model_id": "fault/error500", "provider_id": "faulty", "provider_model_id": "error500"},
            {"model_id": "fault/badjson", "provider_id": "faulty", "provider_model_id": "badjson"},
            {"model_id": "fault/cut", "provider_id": "faulty", "provider_model_id": "cut"},
            {"model_id": "m", "provider_id": "gone"},
        ],
    }
    with lamina_server(config, tmp_path_factory.mktemp("leaks")) as server:
        server.dead_url = dead
        yield server


def test_a_huge_model_id_is_not_echoed_back_in_full(lamina: ServerProcess) -> None:
    for path, body in (
        ("/v1/chat/completions", {"model": HUGE, "messages": SAY}),
        ("/v1/inference/chat-completion", {"model_id": HUGE, "messages": SAY}),
        ("/v1/models", {"model_id": HUGE, "provider_id": "no-such-provider"}),
    ):
        resp = httpx.post(lamina.url + path, json=body, timeout=30)
        assert 400 <= resp.status_code < 500, (path, resp.status_code)
        assert len(resp.content) < 3 * MAX_MESSAGE_CHARS + 1024, (path, len(resp.content))
        error = resp.json()["error"]
        assert error["message"].startswith(resp.json()["detail"][:20])
        assert "characters cut" in error["message"], path
        assert len(json.dumps(error.get("param"))) < 1024


def test_upstream_failures_name_the_provider_not_its_url(
    lamina: ServerProcess, fake_upstream: ServerProcess
) -> None:
    oa = OpenAI(base_url=lamina.url + "/v1", api_key="none", max_retries=0)
    upstream_addresses = (
        fake_upstream.url.removeprefix("http://"),
        lamina.dead_url.removeprefix("http://")[:-3],
    )
    for model, provider, words in (
        ("fault/error500", "faulty", "answered HTTP 500"),
        ("fault/badjson", "faulty", "invalid JSON"),
        ("m", "gone", "cannot connect"),
    ):
        body = {"model": model, "messages": SAY}
        resp = httpx.post(lamina.url + "/v1/chat/completions", json=body, timeout=30)
        assert resp.status_code == 502, resp.text
        text = resp.text
        assert f"provider '{provider}'" in text and words in text, text
        for address in upstream_addresses:
            assert address not in text, text
        stream_error = None
        try:
            list(oa.chat.completions.create(model=model, messages=SAY, stream=True))
        except Exception as exc:  # the SDK raises on the error status or the error event
            stream_error = str(exc)
        assert stream_error is not None and provider in stream_error
        assert all(address not in stream_error for address in upstream_addresses), stream_error
    # The operator still finds the address: it is in the server log.
    events = [json.loads(line) for line in lamina.log_path.read_text().splitlines() if line.startswith("{")]
    logged = [e for e in events if e.get("event") == "upstream_failed"]
    assert any(e.get("url", "").startswith(lamina.dead_url) for e in logged)
    assert any(e.get("url", "").startswith(fake_upstream.url) for e in logged)


def test_a_stream_cut_midway_names_no_url(lamina: ServerProcess, fake_upstream: ServerProcess) -> None:
    body = {"model": "fault/cut", "messages": SAY, "stream": True}
    with httpx.stream("POST", lamina.url + "/v1/chat/completions", json=body, timeout=30) as resp:
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    error = json.loads(events[-1])["error"]
    assert "faulty" in error["message"] and fake_upstream.url.removeprefix("http://") not in error["message"]


def test_cap_text_keeps_the_start_and_the_end() -> None:
    text = "model '" + HUGE + "' not found; register it with POST /v1/models"
    capped = cap_text(text)
    assert len(capped) <= MAX_MESSAGE_CHARS
    assert capped.startswith("model 'mmm") and capped.endswith("register it with POST /v1/models")
    assert cap_text("short") == "short"


def test_every_lamina_error_is_capped_however_its_message_is_set() -> None:
    err = NotFoundError(f"model '{HUGE}' not found", param=HUGE, model=HUGE)
    body = json.dumps(err.to_body())
    assert len(body) < 3 * MAX_MESSAGE_CHARS + 1024
    err.message = "prefix: " + err.message + HUGE  # as routers do when they add context
    assert len(err.message) <= MAX_MESSAGE_CHARS and str(err) == err.message
    assert len(BadRequestError(HUGE).message) <= MAX_MESSAGE_CHARS


def test_storage_errors_do_not_name_the_database_to_clients() -> None:
    from lamina.storage.kvstore import StorageError

    err = StorageError("postgres kv store lamina@10.1.2.3:5432/llamastack: connection refused")
    body = json.dumps(err.to_body())
    assert "10.1.2.3" not in body and "lamina@" not in body
    assert "storage is unavailable" in err.to_body()["detail"]
    assert err.to_body()["error"]["type"] == "storage_error"
    assert "10.1.2.3:5432" in err.message  # what the server log gets
