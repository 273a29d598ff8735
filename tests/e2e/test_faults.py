"""Upstream faults become clean 5xx answers naming the provider, and the server keeps serving.

The faults come from the fake upstream (``lamina.testing.fake_openai``): llama.cpp cannot be made
to time out, answer 500, send malformed JSON or cut a stream on demand. The ``faulty`` provider
has a 1 s read timeout.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
from llama_stack_client import APIStatusError, LlamaStackClient
from openai import OpenAI

from lamina.testing.processes import ServerProcess, free_port

pytestmark = pytest.mark.e2e

SAY = [{"role": "user", "content": "hi"}]


def _still_serving(lamina: ServerProcess) -> None:
    assert httpx.get(f"{lamina.url}/v1/health").json()["status"] == "OK"
    answer = httpx.post(
        f"{lamina.url}/v1/chat/completions", timeout=30, json={"model": "fault/ok", "messages": SAY}
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("model", "status", "words"),
    [
        ("fault/slow", 504, "read 1.0s"),
        ("fault/error500", 502, "upstream exploded"),
        ("fault/badjson", 502, "invalid JSON"),
    ],
)
def test_non_streaming_faults(
    lamina: ServerProcess, ls_client: LlamaStackClient, oa_client: OpenAI, model: str, status: int, words: str
) -> None:
    with pytest.raises(APIStatusError) as native:
        ls_client.inference.chat_completion(model_id=model, messages=SAY)
    assert native.value.status_code == status
    detail = native.value.body["detail"]
    assert "faulty" in detail and words in detail
    with pytest.raises(openai.APIStatusError) as oa:
        oa_client.chat.completions.create(model=model, messages=SAY)
    assert oa.value.status_code == status
    assert "faulty" in oa.value.message and words in oa.value.message
    _still_serving(lamina)


@pytest.mark.parametrize(("model", "words"), [("fault/cut", "mid-response"), ("fault/stall", "read 1.0s")])
def test_stream_failing_midway_ends_with_an_error_event(
    lamina: ServerProcess, model: str, words: str
) -> None:
    """Once a stream has started the status is 200, so the failure is a last SSE event."""
    for path, body in [
        ("/v1/chat/completions", {"model": model, "messages": SAY, "stream": True}),
        ("/v1/inference/chat-completion", {"model_id": model, "messages": SAY, "stream": True}),
    ]:
        with httpx.stream("POST", lamina.url + path, json=body, timeout=30) as resp:
            assert resp.status_code == 200
            events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
        assert events[0] != "[DONE]"
        assert "[DONE]" not in events, "a failed stream must not claim to be complete"
        error = json.loads(events[-1])["error"]
        assert "faulty" in error["message"] and words in error["message"], error
        assert error["code"] in (502, 504)
    _still_serving(lamina)


def test_openai_sdk_sees_the_midstream_error(oa_client: OpenAI) -> None:
    with pytest.raises(openai.APIError, match="faulty"):
        list(oa_client.chat.completions.create(model="fault/cut", messages=SAY, stream=True))


def test_stream_fault_before_first_chunk_keeps_its_status(lamina: ServerProcess) -> None:
    resp = httpx.post(
        f"{lamina.url}/v1/chat/completions",
        timeout=30,
        json={"model": "fault/error500", "messages": SAY, "stream": True},
    )
    assert resp.status_code == 502
    assert "faulty" in resp.json()["detail"]


def test_provider_down(start_lamina, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    server = start_lamina(
        {
            "version": 2,
            "image_name": "down",
            "providers": {
                "inference": [
                    {
                        "provider_id": "gone",
                        "provider_type": "remote::vllm",
                        "config": {"url": dead, "connect_timeout": 2},
                    }
                ]
            },
            "models": [{"model_id": "m", "provider_id": "gone"}],
        }
    )
    client = LlamaStackClient(base_url=server.url, max_retries=0)
    with pytest.raises(APIStatusError) as info:
        client.inference.chat_completion(model_id="m", messages=SAY)
    assert info.value.status_code == 502
    detail = info.value.body["detail"]
    assert "gone" in detail and "cannot connect" in detail
    providers = httpx.get(f"{server.url}/v1/providers/gone").json()
    assert providers["health"]["status"] == "Error"
    assert httpx.get(f"{server.url}/v1/health").json()["status"] == "OK"
    assert httpx.get(f"{server.url}/v1/models").status_code == 200
