"""The ``remote::chromadb`` config: Llama Stack 0.2.12's field (``url``) plus Lamina's settings.

A Llama Stack run.yaml entry (``config: {url: ${env.CHROMADB_URL}}``) works unchanged.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class ChromaVectorIOConfig(BaseModel):
    # Env substitution turns "8000" into 8000; string fields take it back.
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    url: str = Field(description="The Chroma server, e.g. http://localhost:8000 (a path prefix is kept).")
    tenant: str = Field(default="default_tenant", description="Chroma tenant.")
    database: str = Field(default="default_database", description="Chroma database.")
    auth_token: SecretStr | None = Field(
        default=None, description="Sent as `Authorization: Bearer <token>` (Chroma token auth)."
    )
    timeout: float = Field(default=120.0, gt=0, description="Seconds to wait for Chroma's next byte.")
    connect_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for a connection.")
    max_connections: int = Field(default=64, ge=1, description="Pooled connections to Chroma.")
    insert_batch_size: int = Field(
        default=1000, ge=1, description="Chunks per upsert request (capped by the server's max_batch_size)."
    )
    insert_concurrency: int = Field(default=2, ge=1, description="Upsert requests in flight per insert.")
    keyword_candidates: int = Field(
        default=10_000,
        ge=1,
        description="Most documents matching the query terms fetched for BM25 ranking in keyword mode.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("url is required (for example url: ${env.CHROMADB_URL:=http://localhost:8000})")
        if "://" not in value:
            value = "http://" + value  # Llama Stack accepted host:port
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"url must be http:// or https:// (got {value!r})")
        return value.rstrip("/")

    @classmethod
    def sample_run_config(cls, url: str = "${env.CHROMADB_URL}", **kwargs: Any) -> dict[str, Any]:
        return {"url": url}
