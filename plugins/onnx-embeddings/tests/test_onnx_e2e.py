"""inline::sentence-transformers through a real ``lamina run``, with llama-stack-client and the openai SDK."""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from llama_stack_client import BadRequestError, LlamaStackClient
from openai import BadRequestError as OpenAIBadRequest
from openai import OpenAI

from lamina.testing.processes import ServerProcess, lamina_server

pytestmark = pytest.mark.e2e

MODEL = "all-MiniLM-L6-v2"
CAT = "A cat sits on the mat"
KITTEN = "A kitten is sitting on a rug"
TAX = "Quarterly tax filing deadlines"

# The provider as Llama Stack 0.2.x's templates configure it, next to an LLM provider (unreachable:
# it is there only so that a model of the wrong type exists). No models: the plugin's default
# registers all-MiniLM-L6-v2.
RUN_CONFIG = {
    "version": 2,
    "image_name": "onnx-embeddings-e2e",
    "apis": ["inference"],
    "providers": {
        "inference": [
            {
                "provider_id": "sentence-transformers",
                "provider_type": "inline::sentence-transformers",
                "config": {},
            },
            {
                "provider_id": "nowhere",
                "provider_type": "remote::vllm",
                "config": {"url": "http://127.0.0.1:9/v1", "connect_timeout": 1.0},
            },
        ]
    },
    "models": [{"model_id": "some-llm", "provider_id": "nowhere", "model_type": "llm"}],
}


def _cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with lamina_server(RUN_CONFIG, tmp_path_factory.mktemp("onnx-e2e")) as proc:
        yield proc


@pytest.fixture
def ls(server: ServerProcess) -> LlamaStackClient:
    return LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)


@pytest.fixture(params=["/v1", "/v1/openai/v1"])
def oa(request: pytest.FixtureRequest, server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=server.url + request.param, api_key="none", max_retries=0, timeout=60)


def test_model_is_registered_by_default(ls: LlamaStackClient) -> None:
    model = ls.models.retrieve(MODEL)
    assert model.model_type == "embedding"
    assert model.metadata["embedding_dimension"] == 384
    assert model.provider_id == "sentence-transformers"


def test_native_embeddings(ls: LlamaStackClient) -> None:
    vectors = ls.inference.embeddings(model_id=MODEL, contents=[CAT, KITTEN, TAX]).embeddings
    assert len(vectors) == 3 and all(len(v) == 384 for v in vectors)
    assert all(math.isclose(np.linalg.norm(v), 1.0, abs_tol=1e-5) for v in vectors)
    assert _cosine(vectors[0], vectors[1]) > 0.5 > 0.2 > _cosine(vectors[0], vectors[2])
    again = ls.inference.embeddings(model_id=MODEL, contents=[{"type": "text", "text": CAT}]).embeddings
    assert again[0] == vectors[0]


def test_native_truncation_and_output_dimension(ls: LlamaStackClient) -> None:
    long = "word " * 600
    with pytest.raises(BadRequestError, match=r"contents\[0\].*text_truncation"):
        ls.inference.embeddings(model_id=MODEL, contents=[long])
    for mode in ("start", "end"):
        (vector,) = ls.inference.embeddings(model_id=MODEL, contents=[long], text_truncation=mode).embeddings
        assert len(vector) == 384
    assert (
        len(ls.inference.embeddings(model_id=MODEL, contents=[CAT], output_dimension=384).embeddings[0])
        == 384
    )
    with pytest.raises(BadRequestError, match="output_dimension"):
        ls.inference.embeddings(model_id=MODEL, contents=[CAT], output_dimension=128)


def test_openai_embeddings(oa: OpenAI, ls: LlamaStackClient) -> None:
    native = ls.inference.embeddings(model_id=MODEL, contents=[CAT, TAX]).embeddings
    floats = oa.embeddings.create(model=MODEL, input=[CAT, TAX], encoding_format="float")
    assert floats.model == MODEL and [d.index for d in floats.data] == [0, 1]
    assert [d.embedding for d in floats.data] == native
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 4

    raw = oa.embeddings.create(model=MODEL, input=[CAT, TAX], encoding_format="base64")
    for item, expected in zip(raw.data, native, strict=True):
        assert isinstance(item.embedding, str)
        decoded = np.frombuffer(base64.b64decode(item.embedding), dtype="<f4")
        assert np.array_equal(decoded, np.array(expected, dtype=np.float32))

    # With no encoding_format the SDK asks for base64 itself and decodes it.
    implicit = oa.embeddings.create(model=MODEL, input=CAT)
    assert np.allclose(implicit.data[0].embedding, native[0], atol=1e-7)


def test_bad_input_is_4xx_naming_the_field(ls: LlamaStackClient, oa: OpenAI) -> None:
    with pytest.raises(BadRequestError, match="contents"):
        ls.inference.embeddings(model_id=MODEL, contents=[])
    with pytest.raises(OpenAIBadRequest, match="input") as info:
        oa.embeddings.create(model=MODEL, input=[])
    assert info.value.body["param"] == "input"
    with pytest.raises(OpenAIBadRequest, match="dimensions"):
        oa.embeddings.create(model=MODEL, input=CAT, dimensions=64)
    with pytest.raises(OpenAIBadRequest, match="token ids"):
        oa.embeddings.create(model=MODEL, input=[[101, 2023, 102]])


def test_wrong_model_type_is_400(ls: LlamaStackClient, oa: OpenAI) -> None:
    with pytest.raises(BadRequestError, match="embedding"):
        ls.inference.embeddings(model_id="some-llm", contents=[CAT])
    with pytest.raises(OpenAIBadRequest, match="embedding") as info:
        oa.embeddings.create(model="some-llm", input=CAT)
    assert info.value.body["param"] == "model"
    with pytest.raises(BadRequestError, match="llm"):
        ls.inference.chat_completion(model_id=MODEL, messages=[{"role": "user", "content": "hi"}])


def test_registering_another_model_on_the_provider(ls: LlamaStackClient) -> None:
    alias = ls.models.register(
        model_id="minilm",
        provider_id="sentence-transformers",
        provider_model_id="sentence-transformers/all-MiniLM-L6-v2",
        model_type="embedding",
        metadata={"embedding_dimension": 384},
    )
    assert alias.identifier == "minilm"
    assert (
        ls.inference.embeddings(model_id="minilm", contents=[CAT]).embeddings
        == ls.inference.embeddings(model_id=MODEL, contents=[CAT]).embeddings
    )
    with pytest.raises(BadRequestError, match="serves only all-MiniLM-L6-v2"):
        ls.models.register(
            model_id="nomic",
            provider_id="sentence-transformers",
            provider_model_id="nomic-ai/nomic-embed-text-v1.5",
            model_type="embedding",
            metadata={"embedding_dimension": 768},
        )
    with pytest.raises(BadRequestError, match="model_type"):
        ls.models.register(
            model_id="minilm-llm",
            provider_id="sentence-transformers",
            provider_model_id=MODEL,
            model_type="llm",
        )


def test_llama_stack_run_yaml_works_unchanged(
    start_lamina: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """The provider and model entries of Llama Stack 0.2.x's templates, as they are."""
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(
        """\
version: '2'
image_name: starter
apis:
- inference
providers:
  inference:
  - provider_id: sentence-transformers
    provider_type: inline::sentence-transformers
    config: {}
models:
- metadata:
    embedding_dimension: 384
  model_id: all-MiniLM-L6-v2
  provider_id: sentence-transformers
  model_type: embedding
"""
    )
    server = start_lamina(run_yaml, work_dir=tmp_path)
    client = LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)
    assert [m.identifier for m in client.models.list()] == [MODEL]
    (vector,) = client.inference.embeddings(model_id=MODEL, contents=[CAT]).embeddings
    assert len(vector) == 384
