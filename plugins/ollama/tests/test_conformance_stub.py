"""remote::ollama through the shared InferenceConformance kit, against the Ollama stub.

No Ollama server can run here, so the upstream is ``ollama_stub.py`` (Ollama's wire format,
deterministic answers, no model). What the kit checks about the wire (routes, shapes, streaming,
model listing, model types, max_tokens -> out_of_tokens, json_schema, OpenAI SDK parsing) is
meaningful against the stub. What it checks about a model's behaviour is not, so:

- logprobs are switched off: Ollama's native API returns none (the adapter answers 400);
- ``test_embeddings`` is replaced: the kit asserts that "a cat" is closer to "a kitten" than to
  "a tax invoice", which needs a real embedding model; here the count, dimension and norm are checked;
- seed, stop and json_schema pass because the stub is deterministic, cuts at stop strings and
  answers schema-shaped JSON: they prove the request reached Ollama translated, not that a model
  obeys it (test_adapter.py checks the exact translated bodies).

The chat and embedding models are not in the run config: the provider registered them from the
stub's /api/tags at start-up.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from llama_stack_client import LlamaStackClient

from lamina.testing.conformance import InferenceConformance
from lamina.testing.processes import ServerProcess, lamina_server


class TestOllamaProviderOnStub(InferenceConformance):
    chat_model = "llama3.2:3b"
    embedding_model = "all-minilm:latest"
    embedding_dimension = 384
    supports_logprobs = False

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_lamina(
        cls, stub_process: ServerProcess, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[ServerProcess]:
        config = {
            "version": 2,
            "image_name": "conformance-ollama",
            "providers": {
                "inference": [
                    {
                        "provider_id": "ollama",
                        "provider_type": "remote::ollama",
                        "config": {"url": stub_process.url},
                    }
                ]
            },
        }
        with lamina_server(config, tmp_path_factory.mktemp("conformance-ollama")) as server:
            yield server

    def test_embeddings(self, ls: LlamaStackClient) -> None:
        vectors = ls.inference.embeddings(
            model_id=self.embedding_model, contents=["a cat", "a kitten", "a tax invoice"]
        ).embeddings
        assert len(vectors) == 3 and all(len(v) == self.embedding_dimension for v in vectors)
        assert all(abs(math.sqrt(sum(x * x for x in v)) - 1.0) < 1e-6 for v in vectors)
