"""One run config for the fuzz tests: every kind of provider a client can reach, all local.

Inference runs on the fake OpenAI upstream (``fake``: fast, scripted) and on the bundled SmolLM2
through inline::llama-cpp (a real model, kept short by ``default_max_tokens``); vectors in faiss,
embeddings by the bundled all-MiniLM-L6-v2, files on the local disk, the RAG tool, the rules shield.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lamina.testing.processes import ServerProcess, lamina_server

SMOLLM = "SmolLM2-135M-Instruct"


def stack_config(fake: ServerProcess) -> dict:
    return {
        "version": 2,
        "image_name": "fuzz",
        "providers": {
            "inference": [
                {
                    "provider_id": "fake",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{fake.url}/v1", "timeout": 20},
                },
                {
                    "provider_id": "llama-cpp",
                    "provider_type": "inline::llama-cpp",
                    "config": {"context_length": 1024, "max_queue": 64, "default_max_tokens": 8},
                },
                {"provider_id": "sentence-transformers", "provider_type": "inline::sentence-transformers"},
            ],
            "vector_io": [{"provider_id": "faiss", "provider_type": "inline::faiss", "config": {}}],
            "files": [{"provider_id": "localfs", "provider_type": "inline::localfs", "config": {}}],
            "tool_runtime": [{"provider_id": "rag-runtime", "provider_type": "inline::rag-runtime"}],
            "safety": [{"provider_id": "rules", "provider_type": "inline::rules", "config": {}}],
        },
        "models": [{"model_id": "ok", "provider_id": "fake"}],
        "shields": [{"shield_id": "pii", "provider_id": "rules"}],
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess) -> Iterator[ServerProcess]:
    """A real ``lamina run`` on ``stack_config``, shared by the tests of a module."""
    with lamina_server(stack_config(fake_upstream), tmp_path_factory.mktemp("fuzz")) as server:
        yield server
