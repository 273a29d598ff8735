"""``X-LlamaStack-Provider-Data``: per-request provider settings, end to end with both clients.

A real ``lamina run`` serves two remote providers in front of the scripted fake upstream
(``lamina.testing.fake_openai``, a fake because no real OpenAI or Together can run here): its ``echo``
model answers with the ``Authorization`` header it received, so each test sees which API key
reached the upstream. llama-stack-client sends the header from its ``provider_data=`` argument, the
OpenAI SDK from ``default_headers`` or ``extra_headers``. The header is validated by the models the
providers declare (``ProviderSpec.provider_data_validator``, Llama Stack's field names); a malformed
one is a 400 naming the header and the field.
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from pathlib import Path

import httpx
import llama_stack_client
import openai
import pytest
from llama_stack_client import LlamaStackClient
from openai import OpenAI

from lamina.config import parse_run_config
from lamina.errors import ConfigError
from lamina.hookspecs import hookimpl
from lamina.plugins import PluginManager
from lamina.specs import Api, ProviderSpec
from lamina.stack import Stack
from lamina.testing.processes import ServerProcess, fake_openai_server, lamina_server

pytestmark = pytest.mark.e2e

HEADER = "X-LlamaStack-Provider-Data"
SAY = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def lamina(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    work: Path = tmp_path_factory.mktemp("provider-data")
    with fake_openai_server(work) as fake:
        config = {
            "version": 2,
            "image_name": "provider-data",
            "providers": {
                "inference": [
                    {
                        "provider_id": "oai",
                        "provider_type": "remote::openai",
                        "config": {"api_key": "sk-configured", "base_url": f"{fake.url}/v1"},
                    },
                    {
                        "provider_id": "tog",
                        "provider_type": "remote::together",
                        "config": {"api_key": "tg-configured", "url": f"{fake.url}/v1"},
                    },
                ]
            },
            "models": [
                {"model_id": "oai-echo", "provider_id": "oai", "provider_model_id": "echo"},
                {"model_id": "tog-echo", "provider_id": "tog", "provider_model_id": "echo"},
            ],
        }
        with lamina_server(config, work) as server:
            yield server


def _sent(text: str) -> str:
    """The Authorization header the fake upstream received, from its echo answer."""
    return json.loads(text)["_authorization"]


def _ls(lamina: ServerProcess, provider_data: dict | None = None) -> LlamaStackClient:
    return LlamaStackClient(base_url=lamina.url, max_retries=0, timeout=30, provider_data=provider_data)


def test_llama_stack_client_provider_data_reaches_the_upstream(lamina: ServerProcess) -> None:
    def sent(client: LlamaStackClient, model: str) -> str:
        answer = client.inference.chat_completion(model_id=model, messages=SAY)
        return _sent(answer.completion_message.content)

    assert sent(_ls(lamina), "oai-echo") == "Bearer sk-configured"
    caller = _ls(lamina, {"openai_api_key": "sk-caller", "together_api_key": "tg-caller"})
    assert sent(caller, "oai-echo") == "Bearer sk-caller"
    assert sent(caller, "tog-echo") == "Bearer tg-caller"
    # Each provider reads its own field: an OpenAI key leaves the Together provider's configured one.
    assert sent(_ls(lamina, {"openai_api_key": "sk-caller"}), "tog-echo") == "Bearer tg-configured"
    streamed = _ls(lamina, {"openai_api_key": "sk-streamed"}).inference.chat_completion(
        model_id="oai-echo", messages=SAY, stream=True
    )
    text = "".join(
        chunk.event.delta.text for chunk in streamed if getattr(chunk.event.delta, "text", None) is not None
    )
    assert _sent(text) == "Bearer sk-streamed"


def test_openai_sdk_headers_reach_the_upstream(lamina: ServerProcess) -> None:
    default = json.dumps({"openai_api_key": "sk-default"})
    client = OpenAI(
        base_url=f"{lamina.url}/v1",
        api_key="none",
        max_retries=0,
        timeout=30,
        default_headers={HEADER: default},
    )
    answer = client.chat.completions.create(model="oai-echo", messages=SAY)  # type: ignore[arg-type]
    assert _sent(answer.choices[0].message.content) == "Bearer sk-default"
    per_request = {HEADER: json.dumps({"openai_api_key": "sk-this-request"})}
    answer = client.chat.completions.create(
        model="oai-echo",
        messages=SAY,  # type: ignore[arg-type]
        extra_headers=per_request,
    )
    assert _sent(answer.choices[0].message.content) == "Bearer sk-this-request"
    stream = client.chat.completions.create(
        model="oai-echo",
        messages=SAY,  # type: ignore[arg-type]
        stream=True,
        extra_headers=per_request,
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert _sent(text) == "Bearer sk-this-request"


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ("not json", [HEADER, "not valid JSON"]),
        ('["sk-1"]', [HEADER, "must be a JSON object"]),
        ('{"openai_api_key": 5}', [f"{HEADER}.openai_api_key", "valid string", "remote::openai"]),
        ('{"together_api_key": ["a"]}', [f"{HEADER}.together_api_key", "valid string", "remote::together"]),
    ],
)
def test_a_malformed_header_is_a_400_naming_it_and_the_field(
    lamina: ServerProcess, header: str, words: list[str]
) -> None:
    resp = httpx.post(
        f"{lamina.url}/v1/chat/completions",
        json={"model": "oai-echo", "messages": SAY},
        headers={HEADER: header},
        timeout=30,
    )
    assert resp.status_code == 400, resp.text
    detail = resp.json()["detail"]
    assert all(w in detail for w in words), detail
    assert resp.json()["error"]["param"].startswith(HEADER)
    assert httpx.get(f"{lamina.url}/v1/health", timeout=30).status_code == 200


def test_both_clients_get_the_400_for_a_field_of_the_wrong_type(lamina: ServerProcess) -> None:
    with pytest.raises(llama_stack_client.BadRequestError) as ls_error:
        _ls(lamina, {"openai_api_key": 5}).inference.chat_completion(model_id="oai-echo", messages=SAY)
    assert f"{HEADER}.openai_api_key" in str(ls_error.value)
    client = OpenAI(base_url=f"{lamina.url}/v1", api_key="none", max_retries=0, timeout=30)
    with pytest.raises(openai.BadRequestError) as oa_error:
        client.chat.completions.create(
            model="oai-echo",
            messages=SAY,  # type: ignore[arg-type]
            extra_headers={HEADER: json.dumps({"openai_api_key": {"key": "x"}})},
        )
    assert oa_error.value.status_code == 400
    assert f"{HEADER}.openai_api_key" in oa_error.value.message


@pytest.mark.parametrize(
    ("validator", "words"),
    [
        ("lamina_openai_compat.config:NoSuchValidator", "has no attribute 'NoSuchValidator'"),
        ("lamina.specs:Api", "provider_data_validator 'lamina.specs:Api' is not a pydantic model"),
    ],
)
def test_a_broken_provider_data_validator_stops_start_up_naming_the_plugin(
    tmp_path: Path, validator: str, words: str
) -> None:
    """In process (no server): ``Stack.build`` imports each configured provider's validator."""
    spec = ProviderSpec(
        api=Api.inference,
        provider_type="remote::acme",
        config_class="lamina_openai_compat.config:OpenAIConfig",
        factory="lamina_openai_compat.provider:create_provider",
        provider_data_validator=validator,
    )
    module = types.ModuleType("lamina_test_acme")
    module.lamina_inference_providers = hookimpl(lambda: [spec])  # type: ignore[attr-defined]
    pm = PluginManager(strict=True, allow=(), deny=(), trace=False)
    pm.register(module, name="acme", distribution="lamina-acme")
    doc = {
        "version": 2,
        "image_name": "acme",
        "providers": {"inference": [{"provider_id": "acme", "provider_type": "remote::acme", "config": {}}]},
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "registry.db")},
    }
    with pytest.raises(ConfigError) as info:
        Stack.build(parse_run_config(doc, source="acme.yaml", env={}), pm)
    message = str(info.value)
    assert message.startswith(
        "acme.yaml: providers.inference[0]: the plugin offering 'remote::acme' is broken"
    )
    assert words in message
