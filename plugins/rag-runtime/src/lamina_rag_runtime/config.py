"""The provider config: Llama Stack 0.2.x's ``RagToolRuntimeConfig`` (no fields) plus Lamina's.

Every field has a default, so Llama Stack's ``config: {}`` validates. Where documents may come from
(``allow_remote_urls``, ``allowed_hosts``, ``allowed_private_networks``, ``max_redirects``,
``local_path_roots``, ``max_document_bytes``, ``fetch_timeout_seconds``) is described in
``lamina.providers.documents``; URLs are fetched by ``lamina.providers.url_fetch``. Unlike Llama
Stack, ``allow_remote_urls`` is false by default: a document's URL would otherwise let any client
read the services on the server's own network.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from lamina.providers.documents import DocumentSourceConfig


class RagToolRuntimeConfig(DocumentSourceConfig):
    tokenizer: str = Field(
        default="regex",
        description="How chunk sizes are counted: 'regex' (cl100k's pre-tokenisation pieces, offline, "
        "the default) or the path of a Hugging Face tokenizer.json (needs the tokenizers package).",
    )
    insert_batch_size: int = Field(
        default=512, ge=1, le=10_000, description="Chunks per Vector IO insert call."
    )

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer_exists(cls, value: str) -> str:
        if value == "regex":
            return value
        if not Path(value).expanduser().is_file():
            raise ValueError(f"no tokenizer.json at {value!r}; give a file's path, or 'regex'")
        try:
            import tokenizers  # noqa: F401
        except ImportError:
            raise ValueError(
                "a tokenizer.json needs the tokenizers package (pip install tokenizers)"
            ) from None
        return value
