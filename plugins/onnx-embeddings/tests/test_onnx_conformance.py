"""inline::sentence-transformers passes the Inference conformance kit as an embedding-only provider."""

from __future__ import annotations

from typing import Any, ClassVar

from lamina.testing.conformance import InferenceConformance


class TestSentenceTransformersKit(InferenceConformance):
    chat_model = None  # embeddings only: the kit skips the chat tests and checks chat is refused
    embedding_model = "all-MiniLM-L6-v2"  # registered by the plugin's lamina_models default
    embedding_dimension = 384
    run_config: ClassVar[dict[str, Any]] = {
        "version": 2,
        "image_name": "onnx-embeddings-kit",
        "providers": {
            "inference": [
                {
                    "provider_id": "sentence-transformers",
                    "provider_type": "inline::sentence-transformers",
                    "config": {},
                }
            ]
        },
    }
