"""inline::sqlite-vec through a real ``lamina run``, with the Vector IO conformance kit.

Embeddings come from inline::sentence-transformers (lamina-onnx-embeddings: all-MiniLM-L6-v2, 384
dimensions). The SQLite file is the default one, in the provider's state directory, so the kit's
restart test checks that it is found again.
"""

from __future__ import annotations

from lamina.testing.conformance import VectorIOConformance

RUN_CONFIG = {
    "version": 2,
    "image_name": "sqlite-vec-conformance",
    "providers": {
        "inference": [
            {
                "provider_id": "sentence-transformers",
                "provider_type": "inline::sentence-transformers",
                "config": {},
            }
        ],
        "vector_io": [{"provider_id": "sqlite-vec", "provider_type": "inline::sqlite-vec", "config": {}}],
    },
}


class TestSQLiteVec(VectorIOConformance):
    run_config = RUN_CONFIG
