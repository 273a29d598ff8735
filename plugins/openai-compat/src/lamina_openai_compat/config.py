"""Provider configs, with Llama Stack 0.2.x's field names so existing run.yaml files work unchanged.

Field names, types and defaults follow Llama Stack 0.2.12 through 0.2.22 (``remote::nvidia`` reads
``NVIDIA_BASE_URL``, ``NVIDIA_API_KEY`` and ``NVIDIA_APPEND_API_VERSION`` for its defaults, as
there). Each config also takes Lamina's network settings: ``timeout`` (seconds without a byte from
the upstream), ``connect_timeout``, ``max_connections`` (the pool size), and ``max_retries`` and
``retry_max_seconds`` (lamina.providers.upstream_retry).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from lamina.config import not_acted_on


class _NetworkConfig(BaseModel, ABC):
    # Env substitution turns "12345" into 12345 (as newer Llama Stack does); string fields take it back.
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    timeout: float = Field(default=300.0, gt=0, description="Seconds to wait for the upstream's next byte.")
    connect_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for a connection.")
    max_connections: int = Field(default=256, ge=1, description="Pooled connections to the upstream.")
    max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries of a call the upstream refused with 429/502/503/504 or a dropped connection, "
        "with backoff, honouring Retry-After (0: none).",
    )
    retry_max_seconds: float = Field(
        default=30.0, ge=0, description="No retry starts later than this many seconds after the first call."
    )

    @abstractmethod
    def base_url(self) -> str:
        """The upstream's OpenAI base URL (ending in /v1 or equivalent)."""

    @abstractmethod
    def secret(self) -> str | None:
        """The API key to send as a bearer token, if any."""


def _reveal(value: SecretStr | str | None) -> str | None:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value or None


class VLLMInferenceAdapterConfig(_NetworkConfig):
    url: str | None = Field(
        default=None, description="The vLLM server's OpenAI base URL, e.g. http://host:8000/v1"
    )
    max_tokens: int = Field(default=4096, ge=1, description="max_tokens when a native request sets none.")
    api_token: str | None = Field(default="fake", description="The API token.")
    tls_verify: bool | str = Field(default=True, description="Verify TLS: true/false or a CA bundle path.")
    refresh_models: bool = Field(
        default=False,
        description="Llama Stack's periodic model listing; not implemented here: true stops start-up.",
        json_schema_extra=not_acted_on(
            "Lamina's remote::vllm does not list or refresh the upstream's models yet; register the "
            "models under `models:` and remove refresh_models (or set it to false)",
            refuse=True,
        ),
    )

    @field_validator("url")
    @classmethod
    def _url_required(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https:// (for example http://localhost:8000/v1)")
        return value

    @field_validator("tls_verify")
    @classmethod
    def _bool_or_ca_file(cls, value: bool | str) -> bool | str:
        # Llama Stack 0.2.12 reads "true"/"false" (any case) as booleans, anything else as a CA path.
        if not isinstance(value, str):
            return value
        if value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        path = Path(value).expanduser()
        if not path.is_file():
            state = "is not a file" if path.exists() else "does not exist"
            raise ValueError(
                f"tls_verify is a CA bundle path, but {value!r} {state}; give true, false or a CA file"
            )
        return value

    @model_validator(mode="after")
    def _has_url(self) -> VLLMInferenceAdapterConfig:
        if not self.url:
            raise ValueError("url is required (for example url: ${env.VLLM_URL:=http://localhost:8000/v1})")
        return self

    @classmethod
    def sample_run_config(cls, url: str = "${env.VLLM_URL:=http://localhost:8000/v1}", **kwargs: Any) -> dict:
        return {
            "url": url,
            "max_tokens": "${env.VLLM_MAX_TOKENS:=4096}",
            "api_token": "${env.VLLM_API_TOKEN:=fake}",
            "tls_verify": "${env.VLLM_TLS_VERIFY:=true}",
        }

    def base_url(self) -> str:
        return str(self.url)

    def secret(self) -> str | None:
        return _reveal(self.api_token)


class OpenAIConfig(_NetworkConfig):
    api_key: SecretStr | None = Field(default=None, description="OpenAI API key.")
    base_url_: str = Field(default="https://api.openai.com/v1", alias="base_url")

    model_config = ConfigDict(extra="allow", populate_by_name=True, coerce_numbers_to_str=True)

    @classmethod
    def sample_run_config(
        cls,
        api_key: str = "${env.OPENAI_API_KEY:=}",
        base_url: str = "${env.OPENAI_BASE_URL:=https://api.openai.com/v1}",
        **kwargs: Any,
    ) -> dict:
        return {"api_key": api_key, "base_url": base_url}

    def base_url(self) -> str:
        return self.base_url_

    def secret(self) -> str | None:
        return _reveal(self.api_key)


class TogetherImplConfig(_NetworkConfig):
    url: str = Field(default="https://api.together.xyz/v1")
    api_key: SecretStr | None = None

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict:
        return {"url": "https://api.together.xyz/v1", "api_key": "${env.TOGETHER_API_KEY:=}"}

    def base_url(self) -> str:
        return self.url

    def secret(self) -> str | None:
        return _reveal(self.api_key)


class FireworksImplConfig(_NetworkConfig):
    url: str = Field(default="https://api.fireworks.ai/inference/v1")
    api_key: SecretStr | None = None

    @classmethod
    def sample_run_config(cls, api_key: str = "${env.FIREWORKS_API_KEY:=}", **kwargs: Any) -> dict:
        return {"url": "https://api.fireworks.ai/inference/v1", "api_key": api_key}

    def base_url(self) -> str:
        return self.url

    def secret(self) -> str | None:
        return _reveal(self.api_key)


class GroqConfig(_NetworkConfig):
    api_key: str | None = None
    url: str = Field(default="https://api.groq.com")

    @classmethod
    def sample_run_config(cls, api_key: str = "${env.GROQ_API_KEY:=}", **kwargs: Any) -> dict:
        return {"url": "https://api.groq.com", "api_key": api_key}

    def base_url(self) -> str:
        return self.url.rstrip("/") + "/openai/v1"

    def secret(self) -> str | None:
        return _reveal(self.api_key)


def _env_secret(name: str) -> SecretStr | None:
    value = os.environ.get(name)
    return SecretStr(value) if value else None


class NVIDIAConfig(_NetworkConfig):
    url: str = Field(
        default_factory=lambda: os.environ.get("NVIDIA_BASE_URL", "https://integrate.api.nvidia.com"),
        description="NIM base URL; default $NVIDIA_BASE_URL or the hosted API catalog.",
    )
    api_key: SecretStr | None = Field(
        default_factory=lambda: _env_secret("NVIDIA_API_KEY"),
        description="API key for the hosted service; default $NVIDIA_API_KEY.",
    )
    timeout: float = Field(default=60.0, gt=0)
    append_api_version: bool = Field(
        default_factory=lambda: os.environ.get("NVIDIA_APPEND_API_VERSION", "True").lower() != "false",
        description="Append /v1 to url; default true unless $NVIDIA_APPEND_API_VERSION is false.",
    )

    @classmethod
    def sample_run_config(
        cls,
        url: str = "${env.NVIDIA_BASE_URL:=https://integrate.api.nvidia.com}",
        api_key: str = "${env.NVIDIA_API_KEY:=}",
        append_api_version: str = "${env.NVIDIA_APPEND_API_VERSION:=True}",
        **kwargs: Any,
    ) -> dict:
        return {"url": url, "api_key": api_key, "append_api_version": append_api_version}

    def base_url(self) -> str:
        base = self.url.rstrip("/")
        return base + "/v1" if self.append_api_version and not base.endswith("/v1") else base

    def secret(self) -> str | None:
        return _reveal(self.api_key)


class TGIImplConfig(_NetworkConfig):
    url: str = Field(description="The TGI endpoint, e.g. http://localhost:8080")
    api_token: SecretStr | None = None

    @field_validator("url", mode="before")
    @classmethod
    def _url_given(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("url is required (for example url: ${env.TGI_URL:=http://localhost:8080})")
        return value

    @classmethod
    def sample_run_config(cls, url: str = "${env.TGI_URL}", **kwargs: Any) -> dict:
        return {"url": url}

    def base_url(self) -> str:
        base = self.url.rstrip("/")
        return base if base.endswith("/v1") else base + "/v1"

    def secret(self) -> str | None:
        return _reveal(self.api_token)


# -- X-LlamaStack-Provider-Data: a caller's own key, per request --------------------------------------
# Llama Stack 0.2.12's validators (the same class and field names) for openai, together, fireworks and
# groq; Llama Stack has none for vllm, tgi and nvidia, whose fields here are Lamina's. Unknown fields are
# ignored: one header carries the settings of every provider a request may reach.


class OpenAIProviderDataValidator(BaseModel):
    openai_api_key: str | None = Field(default=None, description="API key for OpenAI models")


class TogetherProviderDataValidator(BaseModel):
    together_api_key: str | None = Field(default=None, description="API key for Together models")


class FireworksProviderDataValidator(BaseModel):
    fireworks_api_key: str | None = Field(default=None, description="API key for Fireworks models")


class GroqProviderDataValidator(BaseModel):
    groq_api_key: str | None = Field(default=None, description="API key for Groq models")


class NVIDIAProviderDataValidator(BaseModel):
    nvidia_api_key: str | None = Field(default=None, description="API key for NVIDIA models")


class VLLMProviderDataValidator(BaseModel):
    vllm_api_token: str | None = Field(default=None, description="API token for the vLLM server")


class TGIProviderDataValidator(BaseModel):
    tgi_api_token: str | None = Field(default=None, description="API token for the TGI server")
