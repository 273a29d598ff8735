"""inline::rag-runtime passes the Tool Runtime conformance kit, RAG tool included.

Vector IO is an inline provider (faiss, else sqlite-vec) and embeddings come from
inline::sentence-transformers (all-MiniLM-L6-v2, 384 dims): no other server is needed.
"""

from __future__ import annotations

import importlib.util
from typing import Any, ClassVar

import pytest

from lamina.testing.conformance import ToolRuntimeConformance

VECTOR_PROVIDER = next(
    (
        provider_type
        for module, provider_type in (
            ("lamina_faiss", "inline::faiss"),
            ("lamina_sqlite_vec", "inline::sqlite-vec"),
        )
        if importlib.util.find_spec(module) is not None
    ),
    None,
)


@pytest.mark.skipif(VECTOR_PROVIDER is None, reason="needs lamina-faiss or lamina-sqlite-vec installed")
class TestRagRuntimeKit(ToolRuntimeConformance):
    supports_rag = True  # rag-tool/insert, rag-tool/query and knowledge_search (builtin::rag)
    # Groups the kit registers besides builtin::rag: knowledge_search bound to no vector DB yet.
    tool_group: ClassVar[dict[str, Any] | None] = {"provider_id": "rag-runtime"}
    run_config: ClassVar[dict[str, Any]] = {
        "version": 2,
        "image_name": "rag-runtime-kit",
        "providers": {
            "inference": [{"provider_id": "st", "provider_type": "inline::sentence-transformers"}],
            "vector_io": [{"provider_id": "vectors", "provider_type": VECTOR_PROVIDER or ""}],
            "tool_runtime": [{"provider_id": "rag-runtime", "provider_type": "inline::rag-runtime"}],
        },
    }
