"""Hook implementations: the ``local`` distribution, served by ``lamina run`` with no argument."""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import DistributionSpec
from lamina_distribution_local.run_config import RUN_CONFIG


@hookimpl
def lamina_distributions() -> list[DistributionSpec]:
    return [
        DistributionSpec(
            name="local",
            description=(
                "Everything in-process and offline: llama.cpp chat, ONNX embeddings, faiss, local files, RAG."
            ),
            run_config=RUN_CONFIG,
            default=True,
        )
    ]
