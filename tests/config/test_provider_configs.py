"""The OpenAI-compatible provider configs against Llama Stack 0.2.x's, field by field.

LLAMA_STACK lists each Llama Stack 0.2.12 config class's fields with their defaults (from
llama_stack/providers/remote/inference/<name>/config.py); Lamina's class must have every one, with
the same default, and its sample_run_config must use the same environment variables.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from lamina.envsubst import substitute_env
from lamina.plugins import PluginManager
from lamina.specs import Api, import_object

REQUIRED = object()

# provider type -> Llama Stack 0.2.12 field -> default (REQUIRED: no default)
LLAMA_STACK: dict[str, dict[str, Any]] = {
    "remote::vllm": {"url": None, "max_tokens": 4096, "api_token": "fake", "tls_verify": True},
    "remote::openai": {"api_key": None},  # 0.2.13+ adds base_url: https://api.openai.com/v1
    "remote::together": {"url": "https://api.together.xyz/v1", "api_key": None},
    "remote::fireworks": {"url": "https://api.fireworks.ai/inference/v1", "api_key": None},
    "remote::groq": {"api_key": None, "url": "https://api.groq.com"},
    "remote::nvidia": {
        "url": "https://integrate.api.nvidia.com",
        "api_key": None,
        "timeout": 60,
        "append_api_version": True,
    },
    "remote::tgi": {"url": REQUIRED},
}

# provider type -> environment variables its Llama Stack sample_run_config reads
SAMPLE_ENV = {
    "remote::vllm": {"VLLM_URL", "VLLM_MAX_TOKENS", "VLLM_API_TOKEN", "VLLM_TLS_VERIFY"},
    "remote::openai": {"OPENAI_API_KEY", "OPENAI_BASE_URL"},
    "remote::together": {"TOGETHER_API_KEY"},
    "remote::fireworks": {"FIREWORKS_API_KEY"},
    "remote::groq": {"GROQ_API_KEY"},
    "remote::nvidia": {"NVIDIA_BASE_URL", "NVIDIA_API_KEY", "NVIDIA_APPEND_API_VERSION"},
    "remote::tgi": {"TGI_URL"},
}

NVIDIA_ENV = ("NVIDIA_BASE_URL", "NVIDIA_API_KEY", "NVIDIA_APPEND_API_VERSION")


def _class(pm: PluginManager, provider_type: str) -> Any:
    return import_object(pm.provider_specs(Api.inference)[provider_type].config_class)


def _plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


@pytest.fixture
def no_nvidia_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NVIDIA_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("provider_type", list(LLAMA_STACK))
def test_fields_and_defaults_match_llama_stack(
    provider_type: str, plugin_manager: PluginManager, no_nvidia_env: None
) -> None:
    config_class = _class(plugin_manager, provider_type)
    fields = {f.alias or name: f for name, f in config_class.model_fields.items()}
    for name, default in LLAMA_STACK[provider_type].items():
        assert name in fields, f"{provider_type} lacks Llama Stack's field {name}"
        if default is REQUIRED:
            assert fields[name].is_required(), name
    required = {
        name: "http://127.0.0.1:8080" for name, d in LLAMA_STACK[provider_type].items() if d is REQUIRED
    }
    if provider_type == "remote::vllm":
        required["url"] = "http://127.0.0.1:8000/v1"  # Lamina needs one at start-up; Llama Stack at first use
    instance = config_class.model_validate(required)
    for name, default in LLAMA_STACK[provider_type].items():
        if default is not REQUIRED and name not in required:
            attr = "base_url_" if name == "base_url" else name
            assert _plain(getattr(instance, attr)) == default, name


@pytest.mark.parametrize("provider_type", list(SAMPLE_ENV))
def test_sample_run_config_reads_llama_stack_variables(
    provider_type: str, plugin_manager: PluginManager
) -> None:
    sample = _class(plugin_manager, provider_type).sample_run_config()
    text = repr(sample)
    for name in SAMPLE_ENV[provider_type]:
        assert "${env." + name in text, (provider_type, name)


def test_sample_run_configs_validate_with_and_without_their_variables(plugin_manager: PluginManager) -> None:
    env = {
        "VLLM_URL": "http://v:8000/v1",
        "VLLM_MAX_TOKENS": "512",
        "VLLM_TLS_VERIFY": "false",
        "OPENAI_API_KEY": "sk-1",
        "OPENAI_BASE_URL": "http://o/v1",
        "TOGETHER_API_KEY": "t",
        "FIREWORKS_API_KEY": "f",
        "GROQ_API_KEY": "g",
        "NVIDIA_BASE_URL": "http://nim:8000",
        "NVIDIA_API_KEY": "n",
        "NVIDIA_APPEND_API_VERSION": "False",
        "TGI_URL": "http://tgi:8080",
    }
    built = {}
    for provider_type in SAMPLE_ENV:
        config_class = _class(plugin_manager, provider_type)
        raw = substitute_env(config_class.sample_run_config(), env, "sample")
        built[provider_type] = config_class.model_validate(raw)
    assert built["remote::vllm"].max_tokens == 512 and built["remote::vllm"].tls_verify is False
    assert built["remote::openai"].base_url() == "http://o/v1" and built["remote::openai"].secret() == "sk-1"
    assert built["remote::nvidia"].base_url() == "http://nim:8000" and built["remote::nvidia"].secret() == "n"
    assert built["remote::tgi"].base_url() == "http://tgi:8080/v1"
    # Without the variables, every sample but TGI's (whose url has no default) still validates.
    for provider_type in SAMPLE_ENV:
        config_class = _class(plugin_manager, provider_type)
        if provider_type != "remote::tgi":
            config_class.model_validate(substitute_env(config_class.sample_run_config(), {}, "sample"))


def test_nvidia_defaults_come_from_the_environment(
    plugin_manager: PluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NVIDIA_BASE_URL", "http://nim.local:8000")
    monkeypatch.setenv("NVIDIA_API_KEY", "nvapi-env")
    monkeypatch.setenv("NVIDIA_APPEND_API_VERSION", "false")
    config = _class(plugin_manager, "remote::nvidia").model_validate({})
    assert config.url == "http://nim.local:8000" and config.secret() == "nvapi-env"
    assert config.append_api_version is False and config.base_url() == "http://nim.local:8000"


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("False", False), (True, True), (False, False)]
)
def test_vllm_tls_verify_reads_booleans_as_strings_too(
    value: Any, expected: bool, plugin_manager: PluginManager
) -> None:
    config = _class(plugin_manager, "remote::vllm").model_validate(
        {"url": "http://h/v1", "tls_verify": value}
    )
    assert config.tls_verify is expected


def test_a_number_from_the_environment_fills_a_key_field(plugin_manager: PluginManager) -> None:
    raw = substitute_env({"api_key": "${env.K}"}, {"K": "12345"}, "x")
    assert raw == {"api_key": 12345}
    for provider_type in ("remote::openai", "remote::groq", "remote::together"):
        assert _class(plugin_manager, provider_type).model_validate(raw).secret() == "12345"
