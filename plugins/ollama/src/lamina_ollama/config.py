"""OllamaImplConfig, with Llama Stack 0.2.x's field names so existing run.yaml files work unchanged.

Llama Stack 0.2.x fields: ``url`` (default http://localhost:11434), ``raise_on_connect_error``
(earlier 0.2 releases) and ``refresh_models`` (later 0.2 releases). Lamina adds its network
settings (``timeout``, ``connect_timeout``, ``max_connections``), ``refresh_interval``,
``keep_alive`` and ``image_fetch``: Ollama takes images as bytes, so an image URL in a message is
downloaded by Lamina, through the guarded fetcher (``lamina.providers.url_fetch``), which fetches
nothing unless ``image_fetch.allow_remote_urls`` is true, and then only public addresses.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lamina.providers.url_fetch import UrlFetchConfig

DEFAULT_OLLAMA_URL = "http://localhost:11434"
MAX_IMAGE_BYTES = 20 * 1024 * 1024


class OllamaImplConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    url: str = Field(default=DEFAULT_OLLAMA_URL, description="The Ollama server, e.g. http://localhost:11434")
    raise_on_connect_error: bool = Field(
        default=True,
        description="Refuse to start when the Ollama server cannot be reached (false: warn and start).",
    )
    refresh_models: bool = Field(
        default=False,
        description="Re-list the server's models every refresh_interval seconds and register new ones.",
    )
    refresh_interval: float = Field(default=300.0, gt=0, description="Seconds between model refreshes.")
    keep_alive: str | int | None = Field(
        default=None,
        description="Sent as keep_alive on every request (e.g. '30m', 0, -1); unset: Ollama's default (5m).",
    )
    timeout: float = Field(default=300.0, gt=0, description="Seconds to wait for the server's next byte.")
    connect_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for a connection.")
    max_connections: int = Field(default=64, ge=1, description="Pooled connections to the server.")
    max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries of a call the server refused with 429/502/503/504 or a dropped connection, "
        "with backoff, honouring Retry-After (0: none).",
    )
    retry_max_seconds: float = Field(
        default=30.0, ge=0, description="No retry starts later than this many seconds after the first call."
    )
    image_fetch: UrlFetchConfig = Field(
        default_factory=lambda: UrlFetchConfig(max_bytes=MAX_IMAGE_BYTES),
        description="How image URLs in messages are downloaded (Ollama takes bytes). Off by default "
        "(allow_remote_urls: false): send images as data: URIs, or turn it on to fetch public addresses.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https:// (for example http://localhost:11434)")
        value = value.rstrip("/")
        if value.endswith("/v1"):
            raise ValueError(
                "url is the Ollama server itself (http://host:11434), not its OpenAI /v1 base URL; "
                "drop the /v1 (or use remote::vllm for the OpenAI-compatible endpoint)"
            )
        return value

    @classmethod
    def sample_run_config(cls, url: str = "${env.OLLAMA_URL:=http://localhost:11434}", **kwargs) -> dict:
        return {"url": url, "raise_on_connect_error": True}
