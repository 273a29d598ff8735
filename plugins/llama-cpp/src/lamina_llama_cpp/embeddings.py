"""Embeddings from an embedding GGUF (a model registered with ``model_type: embedding``)."""

from __future__ import annotations

import base64
import struct
from typing import Any

from lamina.errors import BadRequestError, UpstreamError
from lamina_llama_cpp.runtime import Runtime


async def embed(
    runtime: Runtime, texts: list[str], *, dimensions: int | None = None, truncation: str = "none"
) -> tuple[list[list[float]], int]:
    """L2-normalised vectors (llama.cpp's default) and the prompt tokens they took."""
    if not runtime.embedding:
        raise BadRequestError(
            f"{runtime.path.name} is loaded as a chat model; register it with model_type 'embedding' "
            "to embed with it",
            param="model",
        )
    if truncation != "none":
        raise BadRequestError(
            "inline::llama-cpp does not truncate inputs; send text_truncation 'none' and inputs that fit "
            "the model's context",
            param="text_truncation",
        )
    doc = await runtime.call("handle_embeddings", {"input": texts})
    data = sorted(doc.get("data") or [], key=lambda d: d.get("index", 0))
    if len(data) != len(texts):
        raise UpstreamError(runtime.provider_id, f"expected {len(texts)} embeddings, got {len(data)}")
    vectors = [list(map(float, d["embedding"])) for d in data]
    width = len(vectors[0]) if vectors else 0
    if dimensions is not None and dimensions != width:
        raise BadRequestError(
            f"this model's embeddings have {width} dimensions; omit dimensions or send {width}",
            param="dimensions",
        )
    tokens = int((doc.get("usage") or {}).get("prompt_tokens") or 0)
    return vectors, tokens


def openai_embeddings_doc(
    vectors: list[list[float]], tokens: int, model_id: str, encoding: str
) -> dict[str, Any]:
    def encode(vector: list[float]) -> Any:
        if encoding == "base64":
            return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        return vector

    return {
        "object": "list",
        "model": model_id,
        "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
