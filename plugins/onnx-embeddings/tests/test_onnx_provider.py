"""The provider object, without the server: requests in, vectors and errors out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from lamina.apis.common import ImageContentItem, TextContentItem
from lamina.apis.inference import EmbeddingsRequest, OpenAIEmbeddingsRequest
from lamina.apis.models import Model
from lamina.errors import BadRequestError, NotImplementedByProviderError
from lamina.providers import ProviderContext
from lamina.specs import Api
from lamina_onnx_embeddings.config import SentenceTransformersInferenceConfig
from lamina_onnx_embeddings.provider import OnnxEmbeddingsProvider, create_provider, decode_base64

CAT = "A cat sits on the mat"
KITTEN = "A kitten is sitting on a rug"
TAX = "Quarterly tax filing deadlines"
LONG = " ".join(f"token{i}" for i in range(300))

MODEL = Model(
    identifier="all-MiniLM-L6-v2",
    provider_resource_id="all-MiniLM-L6-v2",
    provider_id="st",
    model_type="embedding",
    metadata={"embedding_dimension": 384},
)


async def _provider(tmp_path: Path, **config: object) -> OnnxEmbeddingsProvider:
    context = ProviderContext(
        api=Api.inference, provider_id="st", provider_type="inline::sentence-transformers", state_dir=tmp_path
    )
    provider = await create_provider(SentenceTransformersInferenceConfig(**config), {}, context)
    await provider.initialize()
    return provider


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[OnnxEmbeddingsProvider]:
    provider = await _provider(tmp_path, max_batch_size=8)
    yield provider
    await provider.shutdown()


def _native(contents: list, **kw: object) -> EmbeddingsRequest:
    return EmbeddingsRequest(model_id=MODEL.identifier, contents=contents, **kw)


def _cos(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b))


def test_llama_stack_configs_validate() -> None:
    """Llama Stack 0.2.x's config is empty; later ones add trust_remote_code."""
    assert SentenceTransformersInferenceConfig.model_validate({}).max_batch_size == 32
    cfg = SentenceTransformersInferenceConfig.model_validate({"trust_remote_code": True})
    assert 1 <= cfg.intra_op_threads() <= 2
    with pytest.raises(ValueError, match="max_batch_size"):
        SentenceTransformersInferenceConfig.model_validate({"max_batch_size": 0})


async def test_native_embeddings(provider: OnnxEmbeddingsProvider) -> None:
    answer = await provider.embeddings(MODEL, _native([CAT, KITTEN, TAX]))
    cat, kitten, tax = answer.embeddings
    items = await provider.embeddings(MODEL, _native([TextContentItem(text=t) for t in (CAT, KITTEN, TAX)]))
    assert items.embeddings == answer.embeddings
    assert all(len(v) == 384 for v in answer.embeddings)
    assert all(abs(np.linalg.norm(v) - 1) < 1e-5 for v in answer.embeddings)
    assert _cos(cat, kitten) > max(_cos(cat, tax), _cos(kitten, tax))
    again = await provider.embeddings(MODEL, _native([CAT]))
    assert again.embeddings[0] == cat


async def test_native_truncation(provider: OnnxEmbeddingsProvider) -> None:
    with pytest.raises(BadRequestError, match=r"contents\[1\].*text_truncation") as info:
        await provider.embeddings(MODEL, _native([CAT, LONG]))
    assert info.value.param == "contents"
    end = (await provider.embeddings(MODEL, _native([LONG], text_truncation="end"))).embeddings[0]
    start = (await provider.embeddings(MODEL, _native([LONG], text_truncation="start"))).embeddings[0]
    assert end != start
    head = " ".join(LONG.split()[:60])
    assert _cos(end, (await provider.embeddings(MODEL, _native([head]))).embeddings[0]) > _cos(
        start, (await provider.embeddings(MODEL, _native([head]))).embeddings[0]
    )


async def test_output_dimension(provider: OnnxEmbeddingsProvider) -> None:
    same = await provider.embeddings(MODEL, _native([CAT], output_dimension=384))
    assert len(same.embeddings[0]) == 384
    with pytest.raises(BadRequestError, match="Matryoshka") as info:
        await provider.embeddings(MODEL, _native([CAT], output_dimension=128))
    assert info.value.param == "output_dimension"
    with pytest.raises(BadRequestError) as info:
        await provider.openai_embeddings(MODEL, OpenAIEmbeddingsRequest(model="m", input=CAT, dimensions=64))
    assert info.value.param == "dimensions"


async def test_images_are_refused(provider: OnnxEmbeddingsProvider) -> None:
    image = ImageContentItem.model_validate({"type": "image", "image": {"url": {"uri": "http://x/y.png"}}})
    with pytest.raises(BadRequestError, match=r"contents\[1\] is an image"):
        await provider.embeddings(MODEL, _native([TextContentItem(text=CAT), image]))


async def test_openai_float_and_base64(provider: OnnxEmbeddingsProvider) -> None:
    floats = await provider.openai_embeddings(MODEL, OpenAIEmbeddingsRequest(model="m", input=[CAT, TAX]))
    b64 = await provider.openai_embeddings(
        MODEL, OpenAIEmbeddingsRequest(model="m", input=[CAT, TAX], encoding_format="base64")
    )
    assert floats["object"] == "list" and floats["model"] == MODEL.identifier
    assert [d["index"] for d in floats["data"]] == [0, 1]
    for f, b in zip(floats["data"], b64["data"], strict=True):
        decoded = decode_base64(b["embedding"])
        assert decoded.dtype == np.dtype("<f4") and decoded.shape == (384,)
        # float32 values survive JSON as doubles exactly, so the two encodings agree bit for bit.
        assert np.array_equal(decoded, np.array(f["embedding"], dtype=np.float32))
    # WordPiece tokens with [CLS] and [SEP]: "[CLS] a cat sits on the mat [SEP]" is 8.
    expected = sum(len(provider.engine.tokenizer.encode(t).ids) for t in (CAT, TAX))
    assert provider.engine.tokenizer.encode(CAT).tokens[1:-1] == ["a", "cat", "sits", "on", "the", "mat"]
    assert floats["usage"] == {"prompt_tokens": expected, "total_tokens": expected}
    single = await provider.openai_embeddings(MODEL, OpenAIEmbeddingsRequest(model="m", input=CAT))
    assert single["data"][0]["embedding"] == floats["data"][0]["embedding"]


async def test_openai_truncates_the_end_by_default_like_sentence_transformers(
    provider: OnnxEmbeddingsProvider, tmp_path: Path
) -> None:
    answer = await provider.openai_embeddings(MODEL, OpenAIEmbeddingsRequest(model="m", input=LONG))
    native = await provider.embeddings(MODEL, _native([LONG], text_truncation="end"))
    assert answer["data"][0]["embedding"] == native.embeddings[0]
    assert answer["usage"]["prompt_tokens"] == 256
    strict = await _provider(tmp_path, openai_text_truncation="none")
    try:
        with pytest.raises(BadRequestError, match=r"input\[0\] is \d+ tokens") as info:
            await strict.openai_embeddings(MODEL, OpenAIEmbeddingsRequest(model="m", input=[LONG]))
        assert info.value.param == "input"
    finally:
        await strict.shutdown()


async def test_openai_token_ids_are_refused(provider: OnnxEmbeddingsProvider) -> None:
    with pytest.raises(BadRequestError, match="token ids") as info:
        await provider.openai_embeddings(MODEL, OpenAIEmbeddingsRequest(model="m", input=[[1, 2, 3]]))
    assert info.value.param == "input"


async def test_too_many_inputs(tmp_path: Path) -> None:
    small = await _provider(tmp_path, max_inputs=3)
    try:
        with pytest.raises(BadRequestError, match="at most 3") as info:
            await small.embeddings(MODEL, _native(["a", "b", "c", "d"]))
        assert info.value.param == "contents"
    finally:
        await small.shutdown()


async def test_register_model_checks(provider: OnnxEmbeddingsProvider) -> None:
    assert await provider.register_model(MODEL) is MODEL
    hf = MODEL.model_copy(update={"provider_resource_id": "sentence-transformers/all-MiniLM-L6-v2"})
    assert await provider.register_model(hf) is hf
    cases = {
        "provider_model_id": MODEL.model_copy(
            update={"provider_resource_id": "nomic-ai/nomic-embed-text-v1.5"}
        ),
        "model_type": MODEL.model_copy(update={"model_type": "llm"}),
        "metadata.embedding_dimension": MODEL.model_copy(update={"metadata": {"embedding_dimension": 768}}),
    }
    for param, model in cases.items():
        with pytest.raises(BadRequestError) as info:
            await provider.register_model(model)
        assert info.value.param == param


async def test_generation_is_not_served(provider: OnnxEmbeddingsProvider) -> None:
    with pytest.raises(NotImplementedByProviderError, match="embeddings only"):
        await provider.chat_completion(MODEL, None)  # type: ignore[arg-type]


async def test_batch_of_100_equals_one_by_one_and_is_coalesced(provider: OnnxEmbeddingsProvider) -> None:
    texts = [f"Item {i}: " + "a sentence about embeddings " * (i % 9) for i in range(100)]
    batched = np.array((await provider.embeddings(MODEL, _native(texts))).embeddings)
    single = np.array([(await provider.embeddings(MODEL, _native([t]))).embeddings[0] for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)

    # 40 concurrent one-text requests share batches (max_batch_size 8), and each gets its own vector.
    before = provider.batcher.batches_run
    answers = await asyncio.gather(*(provider.embeddings(MODEL, _native([t])) for t in texts[:40]))
    assert provider.batcher.batches_run - before < 40
    np.testing.assert_allclose(np.array([a.embeddings[0] for a in answers]), single[:40], atol=1e-5)


async def test_runs_off_the_event_loop(provider: OnnxEmbeddingsProvider) -> None:
    """While a large request is embedded, the loop keeps ticking."""
    texts = [f"{i} " + "lorem ipsum dolor sit amet " * 20 for i in range(64)]
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticker = asyncio.create_task(tick())
    loop = asyncio.get_running_loop()
    started = loop.time()
    await provider.embeddings(MODEL, _native(texts))
    elapsed = loop.time() - started
    ticker.cancel()
    assert ticks >= max(3, int(elapsed / 0.005 * 0.2)), (ticks, elapsed)


async def test_a_cancelled_request_does_not_break_others(provider: OnnxEmbeddingsProvider) -> None:
    """A request whose client went away stops taking batches; the others are served."""
    batcher = provider.batcher
    big = asyncio.create_task(provider.embeddings(MODEL, _native([f"text {i}" for i in range(400)])))
    for _ in range(5000):  # until the request is queued (its tokenizing runs on a thread first)
        if batcher._pending:
            break
        await asyncio.sleep(0.001)
    assert batcher._pending
    before = batcher.batches_run
    big.cancel()
    answer = await provider.embeddings(MODEL, _native([CAT]))
    assert len(answer.embeddings[0]) == 384
    assert batcher.batches_run - before < 400 // batcher.max_batch_size
    with pytest.raises(asyncio.CancelledError):
        await big
