"""The remote::ollama provider object against the Ollama stub, in-process.

The upstream is ``ollama_stub.py``, a stub of Ollama's wire format, because no Ollama server can
run here. The stub records every request body, so these tests check both directions of the
translation: what the adapter sends to Ollama and what it makes of Ollama's answers.
"""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import ollama_stub
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from lamina.apis.inference import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingsRequest,
    OpenAIChatCompletionRequest,
    OpenAICompletionRequest,
    OpenAIEmbeddingsRequest,
)
from lamina.apis.models import Model
from lamina.errors import BadRequestError, ConfigError, NotFoundError, UpstreamError, UpstreamTimeoutError
from lamina.plugins import PluginManager
from lamina.providers import ProviderContext
from lamina.resources.models import LISTED, ModelsRoutingTable
from lamina.resources.registry import ResourceRegistry
from lamina.specs import Api
from lamina.storage import open_kvstore
from lamina.storage.config import SqliteKVStoreConfig
from lamina.testing.processes import free_port
from lamina_ollama.config import OllamaImplConfig
from lamina_ollama.plugin import lamina_inference_providers
from lamina_ollama.provider import OllamaProvider

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


def url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


def sent(server: TestServer, path: str) -> dict:
    """The last body the stub received on ``path``."""
    return [r["body"] for r in server.app[ollama_stub.STUB].requests if r["path"] == path][-1]


def model(tag: str = "llama3.2:3b", identifier: str | None = None, model_type: str = "llm") -> Model:
    return Model(
        identifier=identifier or tag, provider_resource_id=tag, provider_id="ollama", model_type=model_type
    )


async def make_provider(base: str, **config) -> OllamaProvider:
    cfg = OllamaImplConfig(url=base, **{"timeout": 1.0, **config})
    context = ProviderContext(
        api=Api.inference, provider_id="ollama", provider_type="remote::ollama", state_dir=Path("/tmp")
    )
    provider = OllamaProvider(cfg, context)
    await provider.initialize()
    return provider


@pytest.fixture
async def provider(stub: TestServer):
    p = await make_provider(url(stub), keep_alive="10m")
    yield p
    await p.shutdown()


async def collect(stream) -> list:
    return [item async for item in stream]


# -- native chat ---------------------------------------------------------------------------------


async def test_chat_translates_messages_options_and_answer(provider, stub) -> None:
    request = ChatCompletionRequest(
        model_id="x",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]},
        ],
        sampling_params={
            "strategy": {"type": "top_p", "temperature": 0.5, "top_p": 0.9},
            "max_tokens": 50,
            "repetition_penalty": 1.1,
            "stop": ["\n\n"],
        },
    )
    answer = await provider.chat_completion(model(), request)
    body = sent(stub, "/api/chat")
    assert body["model"] == "llama3.2:3b" and body["stream"] is False
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi there"},
    ]
    assert body["options"] == {
        "temperature": 0.5,
        "top_p": 0.9,
        "num_predict": 50,
        "repeat_penalty": 1.1,
        "stop": ["\n\n"],
    }
    assert body["keep_alive"] == "10m"
    assert answer.completion_message.content == "Hello from llama3.2:3b! You said: hi there"
    assert answer.completion_message.stop_reason == "end_of_turn"
    metrics = {m.metric: m.value for m in answer.metrics}
    assert metrics == {"prompt_tokens": 4.0, "completion_tokens": 7.0, "total_tokens": 11.0}


async def test_greedy_top_k_and_max_tokens(provider, stub) -> None:
    answer = await provider.chat_completion(
        model(), ChatCompletionRequest(model_id="x", messages=[{"role": "user", "content": "hi"}],
                                       sampling_params={"max_tokens": 2})
    )  # fmt: skip
    assert sent(stub, "/api/chat")["options"] == {"temperature": 0.0, "num_predict": 2}
    assert answer.completion_message.stop_reason == "out_of_tokens"
    assert answer.completion_message.content == "Hello from "
    await provider.chat_completion(
        model(),
        ChatCompletionRequest(
            model_id="x",
            messages=[{"role": "user", "content": "hi"}],
            sampling_params={"strategy": {"type": "top_k", "top_k": 7}},
        ),
    )
    assert sent(stub, "/api/chat")["options"] == {"top_k": 7}


async def test_chat_stream(provider) -> None:
    request = ChatCompletionRequest(model_id="x", messages=[{"role": "user", "content": "hi"}], stream=True)
    chunks = await collect(await provider.chat_completion(model(), request))
    kinds = [c.event.event_type for c in chunks]
    assert kinds[0] == "start" and kinds[-1] == "complete" and set(kinds[1:-1]) == {"progress"}
    assert "".join(c.event.delta.text for c in chunks) == "Hello from llama3.2:3b! You said: hi"
    assert chunks[-1].event.stop_reason == "end_of_turn"
    assert {m.metric: m.value for m in chunks[-1].metrics}["completion_tokens"] == 6.0


async def test_tools_and_tool_results(provider, stub) -> None:
    request = ChatCompletionRequest(
        model_id="x", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[TOOL]
    )
    answer = await provider.chat_completion(model(), request)
    body = sent(stub, "/api/chat")
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string", "description": "City"}},
                    "required": ["city"],
                },
            },
        }
    ]
    (call,) = answer.completion_message.tool_calls
    assert call.tool_name == "get_weather" and call.arguments == {"city": "Paris"}
    assert json.loads(call.arguments_json) == {"city": "Paris"} and call.call_id.startswith("call_")
    assert answer.completion_message.stop_reason == "end_of_message"

    follow_up = ChatCompletionRequest(
        model_id="x",
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            answer.completion_message.model_dump(),
            {"role": "tool", "call_id": call.call_id, "content": "11 degrees"},
        ],
        tools=[TOOL],
    )
    answer = await provider.chat_completion(model(), follow_up)
    messages = sent(stub, "/api/chat")["messages"]
    assert messages[1]["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    ]
    assert messages[2] == {"role": "tool", "content": "11 degrees", "tool_name": "get_weather"}
    assert answer.completion_message.content == "The tool said: 11 degrees"


async def test_tool_choice(provider, stub) -> None:
    other = {**TOOL, "tool_name": "get_time"}
    base = {"model_id": "x", "messages": [{"role": "user", "content": "hi"}], "tools": [TOOL, other]}
    await provider.chat_completion(
        model(), ChatCompletionRequest(**base, tool_config={"tool_choice": "none"})
    )
    assert "tools" not in sent(stub, "/api/chat")
    await provider.chat_completion(
        model(), ChatCompletionRequest(**base, tool_config={"tool_choice": "get_time"})
    )
    assert [t["function"]["name"] for t in sent(stub, "/api/chat")["tools"]] == ["get_time"]
    with pytest.raises(BadRequestError, match="nope"):
        await provider.chat_completion(
            model(), ChatCompletionRequest(**base, tool_config={"tool_choice": "nope"})
        )


async def test_tool_call_stream(provider) -> None:
    request = ChatCompletionRequest(
        model_id="x", messages=[{"role": "user", "content": "Weather?"}], tools=[TOOL], stream=True
    )
    chunks = await collect(await provider.chat_completion(model(), request))
    calls = [c.event.delta for c in chunks if c.event.delta.type == "tool_call"]
    assert len(calls) == 1 and calls[0].parse_status == "succeeded"
    assert calls[0].tool_call.tool_name == "get_weather" and calls[0].tool_call.arguments == {"city": "Paris"}
    assert chunks[-1].event.stop_reason == "end_of_message"


async def test_json_schema_format_and_grammar_refused(provider, stub) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
    request = ChatCompletionRequest(
        model_id="x",
        messages=[{"role": "user", "content": "Invent a person"}],
        response_format={"type": "json_schema", "json_schema": schema},
    )
    answer = await provider.chat_completion(model(), request)
    assert sent(stub, "/api/chat")["format"] == schema
    assert json.loads(answer.completion_message.content) == {"name": "stub", "age": 42}
    grammar = ChatCompletionRequest.model_validate(
        {**request.model_dump(), "response_format": {"type": "grammar", "bnf": {"root": "x"}}}
    )
    with pytest.raises(BadRequestError, match="grammar"):
        await provider.chat_completion(model(), grammar)


async def test_image_urls_are_not_fetched_by_default(provider, stub) -> None:
    """Server-side request forgery: an image URL naming a loopback service was downloaded."""
    hits: list[str] = []

    async def secret(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=ollama_stub.IMAGE_BYTES, content_type="image/png")

    app = web.Application()
    app.router.add_get("/admin.png", secret)
    async with TestServer(app, host="127.0.0.1") as internal:
        request = OpenAIChatCompletionRequest(
            model="m",
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": f"{url(internal)}/admin.png"}}],
                }
            ],
        )
        with pytest.raises(BadRequestError, match=r"messages: remote URLs are refused.*allow_remote_urls"):
            await provider.openai_chat_completion(model(), request)
        on = await make_provider(url(stub), image_fetch={"allow_remote_urls": True})
        try:
            with pytest.raises(BadRequestError, match=r"messages: the address 127\.0\.0\.1 is not allowed"):
                await on.openai_chat_completion(model(), request)
        finally:
            await on.shutdown()
    assert hits == []


@pytest.fixture
async def image_provider(stub: TestServer):
    """The stub serves its image on loopback: this provider's image_fetch allows exactly that."""
    p = await make_provider(
        url(stub), image_fetch={"allow_remote_urls": True, "allowed_private_networks": ["127.0.0.1/32"]}
    )
    yield p
    await p.shutdown()


async def test_images_are_sent_as_base64(image_provider, stub) -> None:
    provider = image_provider
    data = base64.b64encode(b"\x89PNG fake").decode()
    request = ChatCompletionRequest(
        model_id="x",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image", "image": {"data": data}},
                    {"type": "image", "image": {"url": {"uri": f"data:image/png;base64,{data}"}}},
                    {"type": "image", "image": {"url": {"uri": f"{url(stub)}/_stub/image.png"}}},
                ],
            }
        ],
    )
    await provider.chat_completion(model(), request)
    fetched = base64.b64encode(ollama_stub.IMAGE_BYTES).decode()
    assert sent(stub, "/api/chat")["messages"][0] == {
        "role": "user",
        "content": "what is this?",
        "images": [data, data, fetched],
    }
    oa_request = OpenAIChatCompletionRequest(
        model="m",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "and this?"},
                    {"type": "image_url", "image_url": {"url": f"{url(stub)}/_stub/image.png"}},
                ],
            }
        ],
    )
    await provider.openai_chat_completion(model(), oa_request)
    assert sent(stub, "/api/chat")["messages"][0]["images"] == [fetched]
    missing = oa_request.model_copy(deep=True)
    missing.messages[0].content[1]["image_url"]["url"] = f"{url(stub)}/_stub/nothing.png"
    with pytest.raises(BadRequestError, match=r"messages: fetching .*/nothing\.png failed: HTTP 404"):
        await provider.openai_chat_completion(model(), missing)


async def test_logprobs_are_refused(provider) -> None:
    request = ChatCompletionRequest(
        model_id="x", messages=[{"role": "user", "content": "hi"}], logprobs={"top_k": 1}
    )
    with pytest.raises(BadRequestError, match="logprobs"):
        await provider.chat_completion(model(), request)


# -- native completion and embeddings -------------------------------------------------------------


async def test_completion_uses_generate_raw(provider, stub) -> None:
    answer = await provider.completion(
        model(), CompletionRequest(model_id="x", content="Once upon", sampling_params={"max_tokens": 3})
    )
    body = sent(stub, "/api/generate")
    assert body["prompt"] == "Once upon" and body["raw"] is True and body["options"]["num_predict"] == 3
    assert answer.content == " continued by " and answer.stop_reason == "out_of_tokens"
    chunks = await collect(
        await provider.completion(model(), CompletionRequest(model_id="x", content="Once", stream=True))
    )
    assert "".join(c.delta for c in chunks) == " continued by llama3.2:3b."
    assert chunks[-1].stop_reason == "end_of_turn"


async def test_embeddings(provider, stub) -> None:
    m = model("all-minilm:latest", model_type="embedding")
    answer = await provider.embeddings(m, EmbeddingsRequest(model_id="x", contents=["a cat", "a dog"]))
    assert len(answer.embeddings) == 2 and len(answer.embeddings[0]) == 384
    assert sent(stub, "/api/embed") == {
        "model": "all-minilm:latest",
        "input": ["a cat", "a dog"],
        "truncate": False,
        "keep_alive": "10m",
    }
    answer = await provider.embeddings(
        m,
        EmbeddingsRequest(
            model_id="x", contents=[{"type": "text", "text": "a"}], text_truncation="end", output_dimension=64
        ),
    )
    assert len(answer.embeddings[0]) == 64
    body = sent(stub, "/api/embed")
    assert body["truncate"] is True and body["dimensions"] == 64
    with pytest.raises(BadRequestError, match="context length"):
        await provider.embeddings(m, EmbeddingsRequest(model_id="x", contents=["word " * 300]))
    with pytest.raises(BadRequestError, match="end of a text"):
        await provider.embeddings(m, EmbeddingsRequest(model_id="x", contents=["a"], text_truncation="start"))


# -- OpenAI routes -------------------------------------------------------------------------------


async def test_openai_chat(provider, stub) -> None:
    request = OpenAIChatCompletionRequest(
        model="chat",
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        temperature=0.2,
        top_p=0.8,
        seed=7,
        stop="\n",
        max_completion_tokens=40,
        presence_penalty=0.5,
        top_k=5,
        keep_alive="1h",
        response_format={"type": "json_object"},
    )
    answer = await provider.openai_chat_completion(model(identifier="chat"), request)
    body = sent(stub, "/api/chat")
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["options"] == {
        "temperature": 0.2,
        "top_p": 0.8,
        "seed": 7,
        "presence_penalty": 0.5,
        "num_predict": 40,
        "stop": ["\n"],
        "top_k": 5,
    }
    assert body["keep_alive"] == "1h" and body["format"] == "json"
    assert answer["object"] == "chat.completion" and answer["model"] == "chat"
    assert json.loads(answer["choices"][0]["message"]["content"]) == {"answer": "stub"}
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["completion_tokens"] >= 1


async def test_openai_chat_n_choices(provider, stub) -> None:
    request = OpenAIChatCompletionRequest(model="chat", messages=[{"role": "user", "content": "hi"}], n=3)
    answer = await provider.openai_chat_completion(model(), request)
    assert [c["index"] for c in answer["choices"]] == [0, 1, 2]


async def test_openai_chat_stream_with_usage(provider) -> None:
    """The provider yields the usage chunk whether or not it was asked (the router drops it unasked)."""
    request = OpenAIChatCompletionRequest(
        model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = await collect(await provider.openai_chat_completion(model(identifier="chat"), request))
    assert all(c["model"] == "chat" and c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello from llama3.2:3b! You said: hi"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 6


async def test_openai_tools_round_trip(provider, stub) -> None:
    request = OpenAIChatCompletionRequest(
        model="chat",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[OA_TOOL],
        tool_choice="required",
    )
    answer = await provider.openai_chat_completion(model(), request)
    assert sent(stub, "/api/chat")["tools"] == [OA_TOOL]
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}

    follow_up = OpenAIChatCompletionRequest(
        model="chat",
        messages=[
            {"role": "user", "content": "Weather?"},
            choice["message"],
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
        ],
    )
    answer = await provider.openai_chat_completion(model(), follow_up)
    messages = sent(stub, "/api/chat")["messages"]
    assert messages[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert messages[2] == {"role": "tool", "content": "sunny", "tool_name": "get_weather"}
    assert answer["choices"][0]["message"]["content"] == "The tool said: sunny"


async def test_openai_tool_call_stream_deltas(provider) -> None:
    request = OpenAIChatCompletionRequest(
        model="chat", messages=[{"role": "user", "content": "Weather?"}], tools=[OA_TOOL], stream=True
    )
    chunks = await collect(await provider.openai_chat_completion(model(), request))
    # the usage chunk always ends the provider's stream (for the store; the router sends it when asked)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] >= 1
    chunks = chunks[:-1]
    deltas = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert len(deltas) == 1 and deltas[0]["index"] == 0 and deltas[0]["id"].startswith("call_")
    assert json.loads(deltas[0]["function"]["arguments"]) == {"city": "Paris"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_openai_refusals(provider) -> None:
    say = [{"role": "user", "content": "hi"}]
    for kwargs, field in [
        ({"logprobs": True}, "logprobs"),
        ({"logit_bias": {"1": 2.0}}, "logit_bias"),
        ({"n": 2, "stream": True}, "n"),
    ]:
        with pytest.raises(BadRequestError, match=field):
            await provider.openai_chat_completion(
                model(), OpenAIChatCompletionRequest(model="m", messages=say, **kwargs)
            )
    with pytest.raises(BadRequestError, match="token ids"):
        await provider.openai_completion(model(), OpenAICompletionRequest(model="m", prompt=[1, 2, 3]))


async def test_openai_completions(provider, stub) -> None:
    answer = await provider.openai_completion(
        model(identifier="c"),
        OpenAICompletionRequest(model="c", prompt=["One", "Two"], max_tokens=2, echo=True),
    )
    assert [c["text"] for c in answer["choices"]] == ["One continued ", "Two continued "]
    assert [c["finish_reason"] for c in answer["choices"]] == ["length", "length"]
    assert answer["object"] == "text_completion" and answer["model"] == "c"
    chunks = await collect(
        await provider.openai_completion(
            model(), OpenAICompletionRequest(model="c", prompt="Go", stream=True)
        )
    )
    assert (
        chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] >= 1
    )  # always, for the store
    assert "".join(c["choices"][0]["text"] for c in chunks[:-1]) == " continued by llama3.2:3b."
    await provider.openai_completion(
        model(), OpenAICompletionRequest(model="c", prompt="def f(", suffix="end")
    )
    body = sent(stub, "/api/generate")
    assert body["suffix"] == "end" and "raw" not in body


async def test_openai_embeddings(provider, stub) -> None:
    m = model("nomic-embed-text:latest", identifier="nomic", model_type="embedding")
    answer = await provider.openai_embeddings(m, OpenAIEmbeddingsRequest(model="nomic", input="hello"))
    assert answer["model"] == "nomic" and len(answer["data"][0]["embedding"]) == 768
    assert answer["usage"] == {"prompt_tokens": 1, "total_tokens": 1}
    b64 = await provider.openai_embeddings(
        m,
        OpenAIEmbeddingsRequest(
            model="nomic", input=["hello", "world"], encoding_format="base64", dimensions=8
        ),
    )
    assert sent(stub, "/api/embed")["dimensions"] == 8
    floats = struct.unpack("<8f", base64.b64decode(b64["data"][1]["embedding"]))
    assert [d["index"] for d in b64["data"]] == [0, 1] and len(floats) == 8


# -- errors --------------------------------------------------------------------------------------

SAY = [{"role": "user", "content": "hi"}]


async def test_model_not_pulled_is_404_saying_ollama_pull(provider) -> None:
    with pytest.raises(NotFoundError, match=r"`ollama pull llama9:70b`") as info:
        await provider.chat_completion(model("llama9:70b"), ChatCompletionRequest(model_id="x", messages=SAY))
    assert "ollama" in info.value.message
    with pytest.raises(NotFoundError, match="ollama pull"):
        await collect(
            await provider.chat_completion(
                model("llama9:70b"), ChatCompletionRequest(model_id="x", messages=SAY, stream=True)
            )
        )


async def test_ollama_400_is_400_naming_the_provider(provider) -> None:
    request = OpenAIChatCompletionRequest(model="m", messages=SAY, tools=[OA_TOOL])
    with pytest.raises(BadRequestError, match=r"provider 'ollama'.*does not support tools"):
        await provider.openai_chat_completion(model("notools:latest"), request)


@pytest.mark.parametrize(
    ("tag", "error", "words"),
    [
        ("fault-500:latest", UpstreamError, "HTTP 500: stub: upstream exploded"),
        ("fault-badjson:latest", UpstreamError, "invalid JSON"),
        ("fault-slow:latest", UpstreamTimeoutError, "did not answer within"),
        ("fault-cut:latest", UpstreamError, "closed the connection"),
    ],
)
async def test_non_streaming_faults(provider, tag, error, words) -> None:
    with pytest.raises(error, match=words) as info:
        await provider.chat_completion(model(tag), ChatCompletionRequest(model_id="x", messages=SAY))
    assert "provider 'ollama'" in info.value.message
    assert type(info.value) is error


@pytest.mark.parametrize(
    ("tag", "error", "words"),
    [
        ("fault-500:latest", UpstreamError, "HTTP 500"),
        ("fault-badjson:latest", UpstreamError, "not JSON"),
        ("fault-cut:latest", UpstreamError, "ended before its final done:true line|mid-response"),
        ("fault-stall:latest", UpstreamTimeoutError, "stopped sending"),
        ("fault-midstream:latest", UpstreamError, "mid-stream: stub: the model runner crashed"),
    ],
)
async def test_streaming_faults(provider, tag, error, words) -> None:
    for call in (
        provider.chat_completion(model(tag), ChatCompletionRequest(model_id="x", messages=SAY, stream=True)),
        provider.openai_chat_completion(
            model(tag), OpenAIChatCompletionRequest(model="m", messages=SAY, stream=True)
        ),
    ):
        with pytest.raises(error, match=words) as info:
            await collect(await call)
        assert "provider 'ollama'" in info.value.message


async def test_unreachable_server() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConfigError, match=r"cannot connect.*ollama serve"):
        await make_provider(dead)
    provider = await make_provider(dead, raise_on_connect_error=False, connect_timeout=1.0)
    try:
        assert (await provider.health())["status"] == "Error"
        with pytest.raises(UpstreamError, match="cannot connect") as info:
            await provider.chat_completion(model(), ChatCompletionRequest(model_id="x", messages=SAY))
        assert info.value.status == 502
        # Unreachable: a registration is accepted (aliases mapped statically) and checked later.
        alias = await provider.register_model(model("meta-llama/Llama-3.2-3B-Instruct"))
        assert alias.provider_resource_id == "llama3.2:3b-instruct-fp16"
    finally:
        await provider.shutdown()


# -- models --------------------------------------------------------------------------------------


@pytest.fixture
async def table(tmp_path: Path):
    store = await open_kvstore(SqliteKVStoreConfig(db_path=str(tmp_path / "registry.db")))
    registry = ResourceRegistry()
    await registry.attach(store)
    yield ModelsRoutingTable(registry, {}, PluginManager(allow=[], deny=[]))
    await store.close()


async def test_the_spec_needs_no_router() -> None:
    (spec,) = lamina_inference_providers()
    assert spec.api_dependencies == [] and spec.optional_api_dependencies == []


async def test_list_models_lists_the_servers_models(provider, stub) -> None:
    models = {m.identifier: m for m in await provider.list_models()}
    assert set(models) == set(stub.app[ollama_stub.STUB].models)
    assert all(m.provider_id == "ollama" and m.provider_resource_id == i for i, m in models.items())
    assert models["llama3.2:3b"].model_type == "llm"
    assert models["llama3.2:3b"].metadata == {
        "source": LISTED,
        "family": "llama",
        "parameter_size": "3.2B",
        "quantization_level": "Q4_K_M",
    }
    assert models["all-minilm:latest"].model_type == "embedding"
    assert models["all-minilm:latest"].metadata["embedding_dimension"] == 384
    assert models["nomic-embed-text:latest"].metadata["embedding_dimension"] == 768
    assert (await provider.health())["status"] == "OK"


async def test_refresh_settings() -> None:
    context = ProviderContext(
        api=Api.inference, provider_id="ollama", provider_type="remote::ollama", state_dir=Path("/tmp")
    )
    default = OllamaProvider(OllamaImplConfig(), context)
    assert await default.should_refresh_models() is False
    refreshing = OllamaProvider(OllamaImplConfig(refresh_models=True, refresh_interval=7), context)
    assert await refreshing.should_refresh_models() is True and refreshing.refresh_interval == 7


async def test_core_sync_registers_and_removes_listed_models_only(provider, stub, table) -> None:
    """The listing through the core's sync (what the stack does at start-up and on refresh)."""
    from lamina.apis.models import RegisterModelRequest

    table.providers["ollama"] = provider
    await table.sync_listed("ollama", await provider.list_models())
    assert {m.identifier for m in await table.list()} == set(stub.app[ollama_stub.STUB].models)
    await table.register_model(
        RegisterModelRequest(model_id="mine", provider_id="ollama", provider_model_id="qwen3:0.6b")
    )
    state = stub.app[ollama_stub.STUB]
    state.models["phi4:14b"] = dict(state.models["llama3.2:3b"])
    del state.models["qwen3:0.6b"]
    calls, call = [], provider.client.call

    async def counting(method, path, *args, **kwargs):
        calls.append(path)
        return await call(method, path, *args, **kwargs)

    provider.client.call = counting
    result = await table.sync_listed("ollama", await provider.list_models())
    assert result.added == ["phi4:14b"] and result.removed == ["qwen3:0.6b"]
    assert calls.count("api/tags") == 1, "registering a listed model reuses the listing's /api/tags"
    ids = {m.identifier for m in await table.list()}
    assert "phi4:14b" in ids and "qwen3:0.6b" not in ids
    assert "mine" in ids, "a user's registration is never removed by a listing"


async def test_register_model_checks_the_server_and_maps_aliases(provider, stub) -> None:
    assert (await provider.register_model(model("llama3.2:3b"))).provider_resource_id == "llama3.2:3b"
    latest = await provider.register_model(model("all-minilm", model_type="embedding"))
    assert latest.provider_resource_id == "all-minilm"  # Ollama resolves name to name:latest
    alias = await provider.register_model(model("meta-llama/Llama-3.2-3B-Instruct"))
    assert alias.provider_resource_id == "llama3.2:3b"  # the first alias tag the server has
    with pytest.raises(BadRequestError, match=r"`ollama pull llama3.1:8b-instruct-fp16`"):
        await provider.register_model(model("meta-llama/Llama-3.1-8B-Instruct"))
    with pytest.raises(BadRequestError, match=r"no model 'gemma3:1b'.*ollama pull gemma3:1b.*llama3.2:3b"):
        await provider.register_model(model("gemma3:1b"))
