"""Provider configs, with Llama Stack 0.2.x's field names so existing run.yaml files work unchanged.

Each config also takes Lamina's network settings: ``timeout`` (seconds without a byte from the
upstream), ``connect_timeout`` and ``max_connections`` (the pool size).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class _NetworkConfig(BaseModel, ABC):
    model_config = ConfigDict(extra="allow")

    timeout: float = Field(default=300.0, gt=0, description="Seconds to wait for the upstream's next byte.")
    connect_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for a connection.")
    max_connections: int = Field(default=256, ge=1, description="Pooled connections to the upstream.")

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
    url: str | None = Field(default=None, description="The vLLM server's OpenAI base URL, e.g. http://host:8000/v1")
    max_tokens: int = Field(default=4096, ge=1, description="max_tokens when a native request sets none.")
    api_token: str | None = Field(default="fake", description="The API token.")
    tls_verify: bool | str = Field(default=True, description="Verify TLS: true/false or a CA bundle path.")
    refresh_models: bool = Field(default=False, description="Accepted for compatibility.")

    @field_validator("url")
    @classmethod
    def _url_required(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https:// (for example http://localhost:8000/v1)")
        return value

    @field_validator("tls_verify")
    @classmethod
    def _ca_exists(cls, value: bool | str) -> bool | str:
        if isinstance(value, str) and not Path(value).expanduser().exists():
            raise ValueError(f"tls_verify is a path, but {value!r} does not exist; give true, false or a CA file")
        return value

    @model_validator(mode="after")
    def _has_url(self) -> VLLMInferenceAdapterConfig:
        if not self.url:
            raise ValueError("url is required (for example url: ${env.VLLM_URL:=http://localhost:8000/v1})")
        return self

    def base_url(self) -> str:
        return str(self.url)

    def secret(self) -> str | None:
        return _reveal(self.api_token)


class OpenAIConfig(_NetworkConfig):
    api_key: SecretStr | None = Field(default=None, description="OpenAI API key.")
    base_url_: str = Field(default="https://api.openai.com/v1", alias="base_url")

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def base_url(self) -> str:
        return self.base_url_

    def secret(self) -> str | None:
        return _reveal(self.api_key)


class TogetherImplConfig(_NetworkConfig):
    url: str = Field(default="https://api.together.xyz/v1")
    api_key: SecretStr | None = None

    def base_url(self) -> str:
        return self.url

    def secret(self) -> str | None:
        return _reveal(self.api_key)


class FireworksImplConfig(_NetworkConfig):
    url: str = Field(default="https://api.fireworks.ai/inference/v1")
    api_key: SecretStr | None = None

    def base_url(self) -> str:
        return self.url

    def secret(self) -> str | None:
        return _reveal(self.api_key)


class GroqConfig(_NetworkConfig):
    api_key: str | None = None
    url: str = Field(default="https://api.groq.com")

    def base_url(self) -> str:
        return self.url.rstrip("/") + "/openai/v1"

    def secret(self) -> str | None:
        return _reveal(self.api_key)


class NVIDIAConfig(_NetworkConfig):
    url: str = Field(default="https://integrate.api.nvidia.com")
    api_key: SecretStr | None = None
    timeout: float = Field(default=60.0, gt=0)
    append_api_version: bool = True

    def base_url(self) -> str:
        base = self.url.rstrip("/")
        return base + "/v1" if self.append_api_version and not base.endswith("/v1") else base

    def secret(self) -> str | None:
        return _reveal(self.api_key)


class TGIImplConfig(_NetworkConfig):
    url: str = Field(description="The TGI endpoint, e.g. http://localhost:8080")
    api_token: SecretStr | None = None

    def base_url(self) -> str:
        base = self.url.rstrip("/")
        return base if base.endswith("/v1") else base + "/v1"

    def secret(self) -> str | None:
        return _reveal(self.api_token)
