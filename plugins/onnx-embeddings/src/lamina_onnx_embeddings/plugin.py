"""Hook implementations: the inline::sentence-transformers provider and its default model.

This module is imported whenever plugins load (``lamina run``, ``lamina list-providers``, ...): it
imports neither numpy, ONNX Runtime nor tokenizers, and loads no model.
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, DefaultResource, ProviderSpec, ResourceType

_PKG = "lamina_onnx_embeddings"
PROVIDER_TYPE = "inline::sentence-transformers"
MODEL_ID = "all-MiniLM-L6-v2"
EMBEDDING_DIMENSION = 384


@hookimpl
def lamina_inference_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.inference,
            provider_type=PROVIDER_TYPE,
            config_class=f"{_PKG}.config:SentenceTransformersInferenceConfig",
            factory=f"{_PKG}.provider:create_provider",
            description=(
                "all-MiniLM-L6-v2 sentence embeddings (384 dims) on ONNX Runtime in the server's process; "
                "no PyTorch, nothing downloaded at run time."
            ),
        )
    ]


@hookimpl
def lamina_models() -> list[DefaultResource]:
    return [
        DefaultResource(
            type=ResourceType.model,
            provider_type=PROVIDER_TYPE,
            identifier=MODEL_ID,
            provider_resource_id=MODEL_ID,
            params={"model_type": "embedding", "metadata": {"embedding_dimension": EMBEDDING_DIMENSION}},
        )
    ]
