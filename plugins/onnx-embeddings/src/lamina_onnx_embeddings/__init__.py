"""Lamina inline embeddings: all-MiniLM-L6-v2 on ONNX Runtime (provider type inline::sentence-transformers).

Importing the package is cheap; ``embed_direct`` (for benchmarks) loads the engine on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["embed_direct"]


def __getattr__(name: str) -> Any:
    if name == "embed_direct":
        from lamina_onnx_embeddings.engine import embed_direct

        return embed_direct
    raise AttributeError(f"module 'lamina_onnx_embeddings' has no attribute {name!r}")
