"""Upstream faults, each injected while a healthy provider in the same ``lamina run`` keeps serving.

One server, three remote::vllm providers:

- ``faulty``: the fake upstream (``lamina.testing.fake_openai``) with ``timeout: 1.0``. It is a fake
  because a real server cannot be made to be slow, go silent, answer garbage or cut a stream on
  demand; the requested model picks the fault.
- ``healthy``: a second fake upstream process that never misbehaves (requests to it run
  concurrently with every fault and must all succeed).
- ``llamacpp``: a real llama.cpp server on the bundled SmolLM2 of this module's own (not the
  session's, since the test kills it): the one fault a real server shows on demand is dying.

Each fault must give the right status naming the provider: 504 for an upstream that is too slow
or silent (within the 1 s timeout plus a generous margin), 502 for garbage, a cut or dead upstream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from lamina.testing.processes import (
    ServerProcess,
    fake_openai_server,
    lamina_server,
    llamacpp_server,
    pid_alive,
)

pytestmark = pytest.mark.e2e

TIMEOUT = 1.0  # the faulty provider's read timeout (seconds)
NOT_HUNG = TIMEOUT + 15  # a generous bound: "answered instead of hanging", not a speed check
SAY = [{"role": "user", "content": "hi"}]
CHAT_MODELS = ["ok", "slow", "silent", "garbage", "badjson", "cut", "stall"]


def _model(model_id: str, provider: str, target: str, embedding: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {"model_id": model_id, "provider_id": provider, "provider_model_id": target}
    if embedding:
        entry |= {"model_type": "embedding", "metadata": {"embedding_dimension": 4}}
    return entry


def _provider(provider_id: str, url: str, **config: Any) -> dict[str, Any]:
    return {"provider_id": provider_id, "provider_type": "remote::vllm", "config": {"url": url, **config}}


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("upstream-faults")


@pytest.fixture(scope="module")
def faulty(logs: Path) -> Iterator[ServerProcess]:
    with fake_openai_server(logs / "faulty", slow_seconds=TIMEOUT + 4) as server:
        yield server


@pytest.fixture(scope="module")
def healthy(logs: Path) -> Iterator[ServerProcess]:
    with fake_openai_server(logs / "healthy") as server:
        yield server


@pytest.fixture(scope="module")
def llamacpp(logs: Path) -> Iterator[ServerProcess]:
    with llamacpp_server(logs / "llamacpp", alias="smollm2") as server:
        yield server


@pytest.fixture(scope="module")
def lamina(
    faulty: ServerProcess, healthy: ServerProcess, llamacpp: ServerProcess, logs: Path
) -> Iterator[ServerProcess]:
    config = {
        "version": 2,
        "image_name": "upstream-faults",
        "apis": ["inference"],
        "providers": {
            "inference": [
                _provider("faulty", f"{faulty.url}/v1", timeout=TIMEOUT, connect_timeout=2.0, max_tokens=16),
                _provider("healthy", f"{healthy.url}/v1", max_tokens=16),
                _provider("llamacpp", f"{llamacpp.url}/v1", timeout=60.0, max_tokens=4),
            ]
        },
        "models": [
            *(_model(f"fault/{m}", "faulty", m) for m in CHAT_MODELS),
            _model("fault/garbage-embed", "faulty", "garbage-embed", embedding=True),
            _model("healthy/ok", "healthy", "ok"),
            _model("smollm2", "llamacpp", "smollm2"),
        ],
    }
    with lamina_server(config, logs / "lamina") as server:
        yield server


# -- requests on every route ---------------------------------------------------------------------


def _request(kind: str, model: str, stream: bool) -> tuple[str, dict[str, Any]]:
    if kind == "native-chat":
        return "/v1/inference/chat-completion", {"model_id": model, "messages": SAY, "stream": stream}
    if kind == "native-completion":
        return "/v1/inference/completion", {"model_id": model, "content": "hi", "stream": stream}
    if kind == "openai-chat":
        return "/v1/chat/completions", {"model": model, "messages": SAY, "stream": stream}
    if kind == "openai-compat-chat":
        return "/v1/openai/v1/chat/completions", {"model": model, "messages": SAY, "stream": stream}
    if kind == "openai-completion":
        return "/v1/completions", {"model": model, "prompt": "hi", "stream": stream}
    raise AssertionError(kind)


ROUTES = ["native-chat", "native-completion", "openai-chat", "openai-compat-chat", "openai-completion"]


def _call(server: ServerProcess, kind: str, model: str, stream: bool) -> tuple[int, Any, float]:
    """(status, body, seconds): body is the JSON answer, or the list of SSE data payloads."""
    path, body = _request(kind, model, stream)
    started = time.monotonic()
    with httpx.stream("POST", server.url + path, json=body, timeout=60) as resp:
        if resp.headers.get("content-type", "").startswith("text/event-stream"):
            out: Any = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
        else:
            out = json.loads(resp.read())
    return resp.status_code, out, time.monotonic() - started


def _healthy_answers(server: ServerProcess) -> list[int]:
    statuses = []
    for kind in ("openai-chat", "native-chat", "openai-completion"):
        for stream in (False, True):
            status, body, _ = _call(server, kind, "healthy/ok", stream)
            assert status == 200, body
            if stream:
                assert body[-1] == "[DONE]" or "event_type" in body[-1], body
            statuses.append(status)
    return statuses


def _while_healthy_served(server: ServerProcess, fault: Callable[[], Any]) -> Any:
    """Run ``fault`` while requests to the healthy provider run alongside; all of those must succeed."""
    with ThreadPoolExecutor(4) as pool:
        faulted = pool.submit(fault)
        served = [pool.submit(_healthy_answers, server) for _ in range(3)]
        assert all(s == 200 for job in served for s in job.result(timeout=120))
        return faulted.result(timeout=120)


def _assert_error(status: int, body: Any, want: int, *words: str) -> None:
    assert status == want, body
    detail = body["detail"] if isinstance(body, dict) else body
    assert "provider 'faulty'" in detail, detail
    for word in words:
        assert word in detail, detail


# -- the faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("kind", ROUTES)
@pytest.mark.parametrize("model", ["fault/slow", "fault/silent"])
def test_a_slow_or_silent_upstream_is_a_504_within_its_timeout(
    lamina: ServerProcess, model: str, kind: str, stream: bool
) -> None:
    status, body, seconds = _while_healthy_served(lamina, lambda: _call(lamina, kind, model, stream))
    _assert_error(status, body, 504, f"read {TIMEOUT}s")
    assert TIMEOUT <= seconds < NOT_HUNG


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("kind", ROUTES)
@pytest.mark.parametrize(("model", "words"), [("fault/garbage", "not OpenAI-shaped"), ("fault/badjson", "")])
def test_garbage_from_the_upstream_is_a_502(
    lamina: ServerProcess, model: str, words: str, kind: str, stream: bool
) -> None:
    """``{"foo": "bar", "choices": "nope"}`` or a body that is not JSON at all, whole or streamed."""
    status, body, _ = _while_healthy_served(lamina, lambda: _call(lamina, kind, model, stream))
    _assert_error(status, body, 502, words)
    if model == "fault/garbage":
        assert "'choices' is str 'nope', expected a list" in body["detail"]


def test_garbage_embeddings_are_a_502(lamina: ServerProcess) -> None:
    for path, body in [
        ("/v1/embeddings", {"model": "fault/garbage-embed", "input": ["a", "b"]}),
        ("/v1/inference/embeddings", {"model_id": "fault/garbage-embed", "contents": ["a", "b"]}),
    ]:
        resp = httpx.post(lamina.url + path, json=body, timeout=30)
        _assert_error(resp.status_code, resp.json(), 502, "'data' is str 'nope', expected a list")


def test_the_openai_sdk_gets_a_502_for_garbage(lamina: ServerProcess) -> None:
    client = OpenAI(base_url=f"{lamina.url}/v1", api_key="none", max_retries=0, timeout=30)
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="fault/garbage", messages=SAY)  # type: ignore[arg-type]
    assert err.value.status_code == 502 and "faulty" in err.value.message
    with pytest.raises(openai.APIStatusError) as err:
        client.completions.create(model="fault/garbage", prompt="hi")
    assert err.value.status_code == 502 and "not OpenAI-shaped" in err.value.message


@pytest.mark.parametrize("kind", ROUTES)
@pytest.mark.parametrize(
    ("model", "code", "words"), [("fault/cut", 502, "mid-response"), ("fault/stall", 504, "")]
)
def test_a_stream_cut_or_stalled_midway_ends_with_an_error_not_done(
    lamina: ServerProcess, model: str, code: int, words: str, kind: str
) -> None:
    """The stream has started (status 200), so the failure is its last event, and no [DONE] follows."""
    status, events, seconds = _while_healthy_served(lamina, lambda: _call(lamina, kind, model, True))
    assert status == 200 and len(events) >= 2, events
    assert "[DONE]" not in events, "a broken stream must not claim to be complete"
    error = json.loads(events[-1])["error"]
    assert error["code"] == code and "provider 'faulty'" in error["message"] and words in error["message"]
    assert seconds < NOT_HUNG


def test_a_killed_upstream_is_a_502_and_serves_again_after_its_restart(
    lamina: ServerProcess, faulty: ServerProcess
) -> None:
    # Killed in the middle of a stream: the client sees an error event, not a clean end.
    def killed_midstream() -> tuple[int, list[str]]:
        with httpx.stream("POST", lamina.url + "/v1/chat/completions", timeout=60, json={
            "model": "fault/stall", "messages": SAY, "stream": True}) as resp:  # fmt: skip
            lines = resp.iter_lines()
            first = next(line for line in lines if line.startswith("data: "))
            faulty.kill()
            return resp.status_code, [first[6:], *(line[6:] for line in lines if line.startswith("data: "))]

    status, events = killed_midstream()
    assert status == 200 and "[DONE]" not in events
    assert "provider 'faulty'" in json.loads(events[-1])["error"]["message"]

    # Dead: a 502 naming the provider on every route, while the healthy provider serves.
    for kind in ROUTES:
        request = lambda kind=kind: _call(lamina, kind, "fault/ok", False)  # noqa: E731
        status, body, _ = _while_healthy_served(lamina, request)
        _assert_error(status, body, 502, "cannot connect")
    old = faulty.pid
    faulty.start()  # the same port again
    assert faulty.pid != old
    for kind in ROUTES:
        for stream in (False, True):
            status, body, _ = _call(lamina, kind, "fault/ok", stream)
            assert status == 200, body


def test_a_killed_llamacpp_server_is_a_502_and_serves_again_after_its_restart(
    lamina: ServerProcess, llamacpp: ServerProcess
) -> None:
    """The real thing: llama.cpp's OpenAI server SIGKILLed, then started again on its port."""
    ask = {"model": "smollm2", "messages": SAY, "max_tokens": 2}
    assert httpx.post(lamina.url + "/v1/chat/completions", json=ask, timeout=120).status_code == 200
    dead = llamacpp.kill()
    assert not pid_alive(dead)
    for path, body in [
        ("/v1/chat/completions", ask),
        ("/v1/inference/chat-completion", {"model_id": "smollm2", "messages": SAY}),
    ]:
        resp = httpx.post(lamina.url + path, json=body, timeout=60)
        assert resp.status_code == 502, resp.text
        assert "provider 'llamacpp'" in resp.json()["detail"] and "cannot connect" in resp.json()["detail"]
    assert _healthy_answers(lamina)
    llamacpp.start()
    answer = httpx.post(lamina.url + "/v1/chat/completions", json=ask, timeout=120)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["role"] == "assistant"
