"""remote::ollama end to end: a real ``lamina run`` process, the official clients, the Ollama stub.

No Ollama server can run here, so the upstream is ``ollama_stub.py``, a subprocess speaking
Ollama's native wire format (its answers are deterministic, see its docstring). The clients are
llama-stack-client 0.2.12 and the OpenAI SDK.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest
from llama_stack_client import APIStatusError, BadRequestError, LlamaStackClient, NotFoundError
from openai import OpenAI

from lamina.testing.processes import ServerProcess, free_port, lamina_server

pytestmark = pytest.mark.e2e

SAY = [{"role": "user", "content": "Say hello."}]
TOOL = {
    "tool_name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"city": {"param_type": "string", "description": "City", "required": True}},
}
OA_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def run_config(url: str, **provider_config) -> dict:
    return {
        "version": 2,
        "image_name": "ollama-e2e",
        "providers": {
            "inference": [
                {
                    "provider_id": "ollama",
                    "provider_type": "remote::ollama",
                    "config": {"url": url, "timeout": 1.0, **provider_config},
                }
            ]
        },
        "models": [
            {"model_id": "chat", "provider_id": "ollama", "provider_model_id": "llama3.2:3b"},
            {"model_id": "meta-llama/Llama-3.2-3B-Instruct", "provider_id": "ollama"},
        ],
    }


@pytest.fixture(scope="module")
def lamina(stub_process: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with lamina_server(run_config(stub_process.url), tmp_path_factory.mktemp("ollama-e2e")) as server:
        yield server


@pytest.fixture
def ls(lamina: ServerProcess) -> LlamaStackClient:
    return LlamaStackClient(base_url=lamina.url, max_retries=0, timeout=30)


@pytest.fixture
def oa(lamina: ServerProcess) -> OpenAI:
    return OpenAI(base_url=f"{lamina.url}/v1", api_key="none", max_retries=0, timeout=30)


def test_server_models_are_registered_at_start(ls: LlamaStackClient, oa: OpenAI) -> None:
    models = {m.identifier: m for m in ls.models.list()}
    assert models["llama3.2:3b"].model_type == "llm" and models["llama3.2:3b"].provider_id == "ollama"
    assert models["llama3.2:3b"].metadata["source"] == "listed_from_provider"
    embed = models["nomic-embed-text:latest"]
    assert embed.model_type == "embedding" and embed.metadata["embedding_dimension"] == 768
    assert models["chat"].provider_resource_id == "llama3.2:3b"
    # Llama Stack's alias: the Hugging Face name is served by the matching tag the server has.
    assert models["meta-llama/Llama-3.2-3B-Instruct"].provider_resource_id == "llama3.2:3b"
    assert {"llama3.2:3b", "all-minilm:latest", "chat"} <= {m.id for m in oa.models.list()}


def test_native_chat_stream_and_tool_call(ls: LlamaStackClient) -> None:
    answer = ls.inference.chat_completion(model_id="chat", messages=SAY, sampling_params={"max_tokens": 3})
    assert answer.completion_message.content == "Hello from llama3.2:3b! "
    assert answer.completion_message.stop_reason == "out_of_tokens"
    chunks = list(ls.inference.chat_completion(model_id="llama3.2:3b", messages=SAY, stream=True))
    assert chunks[0].event.event_type == "start" and chunks[-1].event.event_type == "complete"
    assert "".join(c.event.delta.text for c in chunks if c.event.delta.type == "text").endswith("Say hello.")
    answer = ls.inference.chat_completion(
        model_id="chat", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[TOOL]
    )
    (call,) = answer.completion_message.tool_calls
    assert call.tool_name == "get_weather" and call.arguments == {"city": "Paris"}
    assert answer.completion_message.stop_reason == "end_of_message"
    chunks = list(
        ls.inference.chat_completion(
            model_id="chat", messages=[{"role": "user", "content": "Weather?"}], tools=[TOOL], stream=True
        )
    )
    done = [c.event.delta for c in chunks if c.event.delta.type == "tool_call"]
    assert (
        len(done) == 1
        and done[0].parse_status == "succeeded"
        and done[0].tool_call.tool_name == "get_weather"
    )


def test_openai_chat_stream_and_tools(oa: OpenAI) -> None:
    answer = oa.chat.completions.create(model="chat", messages=SAY, max_tokens=50, temperature=0)
    assert answer.model == "chat" and answer.choices[0].message.content.startswith("Hello from llama3.2:3b!")
    assert answer.usage.completion_tokens == 7
    chunks = list(
        oa.chat.completions.create(
            model="chat", messages=SAY, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Hello")
    assert chunks[-1].usage.total_tokens > 0 and all(c.model == "chat" for c in chunks)
    answer = oa.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "Weather?"}], tools=[OA_TOOL]
    )
    call = answer.choices[0].message.tool_calls[0]
    assert answer.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    stream = oa.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "Weather?"}], tools=[OA_TOOL], stream=True
    )
    args = "".join(
        tc.function.arguments or ""
        for c in stream
        if c.choices
        for tc in (c.choices[0].delta.tool_calls or [])
    )
    assert json.loads(args) == {"city": "Paris"}


def test_embeddings(ls: LlamaStackClient, oa: OpenAI) -> None:
    vectors = ls.inference.embeddings(model_id="all-minilm:latest", contents=["a", "b"]).embeddings
    assert len(vectors) == 2 and len(vectors[0]) == 384
    answer = oa.embeddings.create(model="nomic-embed-text:latest", input=["hello", "world"], dimensions=32)
    assert [d.index for d in answer.data] == [0, 1] and len(answer.data[0].embedding) == 32
    assert answer.model == "nomic-embed-text:latest"


def test_completions(ls: LlamaStackClient, oa: OpenAI) -> None:
    assert ls.inference.completion(model_id="chat", content="Once").content == " continued by llama3.2:3b."
    answer = oa.completions.create(model="chat", prompt="Once", max_tokens=2)
    assert answer.choices[0].text == " continued " and answer.choices[0].finish_reason == "length"


def test_upstream_500_is_502_naming_the_provider(ls: LlamaStackClient, oa: OpenAI) -> None:
    with pytest.raises(APIStatusError) as native:
        ls.inference.chat_completion(model_id="fault-500:latest", messages=SAY)
    assert native.value.status_code == 502
    assert (
        "provider 'ollama'" in native.value.body["detail"]
        and "upstream exploded" in native.value.body["detail"]
    )
    with pytest.raises(openai.APIStatusError) as info:
        oa.chat.completions.create(model="fault-500:latest", messages=SAY, stream=True)
    assert info.value.status_code == 502 and "ollama" in info.value.message


def test_timeout_is_504(ls: LlamaStackClient) -> None:
    with pytest.raises(APIStatusError) as info:
        ls.inference.chat_completion(model_id="fault-slow:latest", messages=SAY)
    assert info.value.status_code == 504 and "ollama" in info.value.body["detail"]


def test_stream_failing_midway_ends_with_an_error_event(lamina: ServerProcess, oa: OpenAI) -> None:
    body = {"model": "fault-midstream:latest", "messages": SAY, "stream": True}
    with httpx.stream("POST", f"{lamina.url}/v1/chat/completions", json=body, timeout=30) as resp:
        assert resp.status_code == 200
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    error = json.loads(events[-1])["error"]
    assert (
        error["code"] == 502
        and "provider 'ollama'" in error["message"]
        and "model runner crashed" in error["message"]
    )
    assert "[DONE]" not in events
    with pytest.raises(openai.APIError, match="ollama"):
        list(oa.chat.completions.create(model="fault-cut:latest", messages=SAY, stream=True))


def test_model_removed_from_ollama_is_404_saying_pull(
    ls: LlamaStackClient, stub_process: ServerProcess
) -> None:
    httpx.post(
        f"{stub_process.url}/api/pull", json={"model": "tmp-e2e:1b", "stream": False}
    ).raise_for_status()
    ls.models.register(model_id="tmp", provider_id="ollama", provider_model_id="tmp-e2e:1b")
    httpx.request("DELETE", f"{stub_process.url}/api/delete", json={"model": "tmp-e2e:1b"}).raise_for_status()
    with pytest.raises(NotFoundError, match=r"ollama pull tmp-e2e:1b"):
        ls.inference.chat_completion(model_id="tmp", messages=SAY)
    with pytest.raises(BadRequestError, match=r"ollama pull tmp-e2e:1b"):
        ls.models.register(model_id="tmp2", provider_id="ollama", provider_model_id="tmp-e2e:1b")
    ls.models.unregister("tmp")


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_refresh_adds_and_removes_models(start_lamina, stub_process: ServerProcess) -> None:
    config = run_config(stub_process.url, refresh_models=True, refresh_interval=0.3)
    server = start_lamina(config, name="refresh")
    client = LlamaStackClient(base_url=server.url, max_retries=0, timeout=30)

    def models() -> dict:
        return {m.identifier: m for m in client.models.list()}

    assert "refresh-e2e:1b" not in models() and "llama3.2:3b" in models()
    pulled = httpx.post(f"{stub_process.url}/api/pull", json={"model": "refresh-e2e:1b", "stream": False})
    pulled.raise_for_status()
    try:
        wait_for(lambda: "refresh-e2e:1b" in models())
        listed = models()["refresh-e2e:1b"]
        assert listed.provider_id == "ollama" and listed.metadata["source"] == "listed_from_provider"
    finally:
        httpx.request("DELETE", f"{stub_process.url}/api/delete", json={"model": "refresh-e2e:1b"})
    wait_for(lambda: "refresh-e2e:1b" not in models())
    assert {"chat", "meta-llama/Llama-3.2-3B-Instruct", "llama3.2:3b"} <= set(models())


def test_ollama_down(start_lamina, tmp_path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RuntimeError, match="ollama serve"):
        start_lamina(run_config(dead, connect_timeout=2), name="strict")
    config = run_config(dead, connect_timeout=2, raise_on_connect_error=False)
    server = start_lamina(config, name="lenient")
    client = LlamaStackClient(base_url=server.url, max_retries=0)
    with pytest.raises(APIStatusError) as info:
        client.inference.chat_completion(model_id="chat", messages=SAY)
    assert info.value.status_code == 502
    assert "ollama" in info.value.body["detail"] and "cannot connect" in info.value.body["detail"]
    assert httpx.get(f"{server.url}/v1/providers/ollama").json()["health"]["status"] == "Error"


def test_a_model_the_server_lacks_marks_the_provider_down_and_start_up_goes_on(
    start_lamina, stub_process: ServerProcess
) -> None:
    """It used to refuse to start. Now the server starts, the provider is reported down naming the
    model and the pull to run, and the models the server does have are listed and served. Once the
    model is pulled, the background retry registers it and the provider is up again."""
    config = run_config(stub_process.url)
    config["models"].append({"model_id": "absent", "provider_id": "ollama", "provider_model_id": "nope:7b"})
    server = start_lamina(config, name="lacking")
    health = httpx.get(f"{server.url}/v1/health").json()
    assert [d["provider_id"] for d in health["providers_down"]] == ["ollama"]
    assert "nope:7b" in health["providers_down"][0]["message"]
    ready = httpx.get(f"{server.url}/v1/health/ready")
    assert ready.status_code == 503 and "ollama pull nope:7b" in ready.json()["detail"]
    provider = httpx.get(f"{server.url}/v1/providers/ollama").json()["health"]
    assert provider["status"] == "Error" and "nope:7b" in provider["last_error"]
    client = LlamaStackClient(base_url=server.url, max_retries=0, timeout=30)
    assert {"llama3.2:3b", "chat"} <= {m.identifier for m in client.models.list()}
    answer = client.inference.chat_completion(model_id="chat", messages=SAY)
    assert answer.completion_message.content
    pulled = httpx.post(f"{stub_process.url}/api/pull", json={"model": "nope:7b", "stream": False})
    pulled.raise_for_status()
    try:
        wait_for(lambda: httpx.get(f"{server.url}/v1/health/ready").status_code == 200, timeout=60)
        assert client.models.retrieve("absent").provider_resource_id == "nope:7b"
        assert httpx.get(f"{server.url}/v1/health").json()["providers_down"] == []
    finally:
        httpx.request("DELETE", f"{stub_process.url}/api/delete", json={"model": "nope:7b"})
