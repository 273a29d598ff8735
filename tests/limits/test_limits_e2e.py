"""Retries and provider limits end to end: the OpenAI SDK against a real ``lamina run`` in front of the
scripted fake upstream (``lamina.testing.fake_openai``: a fake because no real upstream can be made to
answer 429 or 503 on demand; its ``[[script:<tag>]]`` directive scripts the answers and its log says
what arrived, when).

Provider ``up`` has no limits (retries only); ``tight`` has ``max_concurrent: 1`` and
``max_queue_seconds: 1``. The SDK's own retries are off, so what the client sees is the server's doing.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from lamina.testing.processes import ServerProcess, fake_openai_server, lamina_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    work: Path = tmp_path_factory.mktemp("limits-e2e")
    with fake_openai_server(work) as fake:
        config = {
            "version": 2,
            "image_name": "limits-e2e",
            "providers": {
                "inference": [
                    {
                        "provider_id": "up",
                        "provider_type": "remote::vllm",
                        "config": {"url": f"{fake.url}/v1"},
                    },
                    {
                        "provider_id": "tight",
                        "provider_type": "remote::vllm",
                        "config": {"url": f"{fake.url}/v1"},
                        "limits": {"max_concurrent": 1, "max_queue_seconds": 1},
                    },
                ]
            },
            "models": [
                {"model_id": "ok", "provider_id": "up", "provider_model_id": "ok"},
                {"model_id": "tight-ok", "provider_id": "tight", "provider_model_id": "ok"},
            ],
        }
        with lamina_server(config, work) as server:
            yield server, fake


@pytest.fixture
def client(servers) -> OpenAI:
    return OpenAI(base_url=f"{servers[0].url}/v1", api_key="none", max_retries=0, timeout=60)


def script(fake: ServerProcess, answers: list[dict[str, Any]]) -> str:
    tag = uuid.uuid4().hex
    httpx.post(f"{fake.url}/_fake/script", json={"tag": tag, "answers": answers}).raise_for_status()
    return tag


def seen(fake: ServerProcess, tag: str) -> list[dict[str, Any]]:
    return httpx.get(f"{fake.url}/_fake/log", params={"tag": tag}).json()


def say(tag: str, text: str = "hi") -> list[dict[str, str]]:
    return [{"role": "user", "content": f"[[script:{tag}]] {text}"}]


def test_a_429_with_retry_after_then_200_is_a_200_for_the_client(servers, client) -> None:
    fake = servers[1]
    tag = script(fake, [{"status": 429, "headers": {"Retry-After": "1"}}])
    answer = client.chat.completions.create(model="ok", messages=say(tag), max_tokens=4)
    assert answer.choices[0].message.content
    log = seen(fake, tag)
    assert [entry["status"] for entry in log] == [429, 200]
    assert log[1]["at"] - log[0]["at"] >= 0.95  # it waited the Retry-After


def test_an_upstream_503_that_lasts_is_a_502_naming_the_provider(servers, client) -> None:
    fake = servers[1]
    tag = script(fake, [{"status": 503, "times": 20}])
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="ok", messages=say(tag), max_tokens=4)
    assert time.monotonic() - started < 30
    assert info.value.status_code == 502
    message = str(info.value)
    assert "provider 'up'" in message and "HTTP 503" in message and "3 attempts" in message
    assert len(seen(fake, tag)) == 3  # the first attempt and the default two retries


def test_a_stream_that_fails_before_its_first_byte_is_retried(servers, client) -> None:
    fake = servers[1]
    tag = script(fake, [{"status": 503}])
    stream = client.chat.completions.create(model="ok", messages=say(tag), max_tokens=4, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text.startswith("tok0@")
    assert [entry["status"] for entry in seen(fake, tag)] == [503, 200]


def test_a_stream_that_fails_after_its_first_byte_is_not_retried(servers) -> None:
    server, fake = servers
    tag = script(fake, [{"cut_after": 1}])
    body = {"model": "ok", "messages": say(tag), "max_tokens": 4, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=30) as resp:
        events = [line for line in resp.iter_lines() if line.startswith("data:")]
    assert resp.status_code == 200
    assert "tok0@" in events[0]
    assert any('"error"' in event for event in events[1:]), events  # the cut reached the client
    assert len(seen(fake, tag)) == 1


def test_a_call_that_cannot_get_a_slot_in_time_is_a_429_with_retry_after(servers) -> None:
    server, fake = servers
    tag = uuid.uuid4().hex
    url = f"{server.url}/v1/chat/completions"
    slow = {"model": "tight-ok", "messages": say(tag, "[[delay:4]] slow"), "max_tokens": 4}
    first: dict[str, Any] = {}
    holder = threading.Thread(target=lambda: first.update(response=httpx.post(url, json=slow, timeout=60)))
    holder.start()
    try:
        for _ in range(100):  # until the slow call holds the provider's only slot
            if seen(fake, tag):
                break
            time.sleep(0.05)
        started = time.monotonic()
        late_body = {"model": "tight-ok", "messages": say(tag, "late"), "max_tokens": 4}
        late = httpx.post(url, json=late_body, timeout=30)
        waited = time.monotonic() - started
    finally:
        holder.join(60)
    assert late.status_code == 429, late.text
    assert int(late.headers["Retry-After"]) >= 1
    detail = late.json()["detail"]
    assert "provider 'tight'" in detail and "model 'tight-ok'" in detail
    assert "max_concurrent of 1" in detail and "providers.inference[1].limits.max_concurrent" in detail
    assert waited < 20  # it waited about max_queue_seconds (1 s): never a hang
    assert first["response"].status_code == 200
    assert len(seen(fake, tag)) == 1  # the refused call never reached the upstream
