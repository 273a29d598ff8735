"""Record encoding and BM25, without a server."""

from __future__ import annotations

import math

from lamina.apis.vector_io import Chunk
from lamina_chromadb import bm25, codec


def test_collection_names() -> None:
    assert codec.collection_name("my-docs_1.v2") == "my-docs_1.v2"
    for odd in ("ab", "conformance/x", "a b", "x..y", "-lead", "1.2.3.4", "é" * 5, "a" * 600):
        name = codec.collection_name(odd)
        assert codec.collection_name(name) == name  # valid names map to themselves
        assert name != odd and 3 <= len(name) <= 512
    assert codec.collection_name("a/b") != codec.collection_name("a b")


def test_search_document_and_terms() -> None:
    assert codec.search_document("Hello, WORLD! naïve Straße") == " hello world naïve strasse "
    assert codec.query_terms("What is the Eiffel tower? the tower!") == ["eiffel", "tower"]
    assert codec.query_terms("the of") == ["the", "of"]


def test_round_trip_and_flatten() -> None:
    meta = {"a": {"b": 1, "c": [1, "x"]}, "n": None, "f": math.inf, "big": -(2**64), "#x": 1, "s": "v"}
    chunk = Chunk(content="t", metadata=meta, chunk_id="id", embedding=[1.0], extra_field={"k": 1})
    flat = codec.record_metadata(codec.chunk_blob(chunk))
    assert flat["a.b"] == 1 and flat["a.c"] == '[1,"x"]' and flat["big"] == str(-(2**64))
    assert "n" not in flat and "f" not in flat and "#x" not in flat and flat["s"] == "v"
    back = codec.record_chunk("id", flat, " t ")
    assert back.model_dump(exclude={"embedding"}) == chunk.model_dump(exclude={"embedding"})


def test_bm25_properties() -> None:
    ids = ["short", "long", "twice", "none"]
    docs = [" fox den ", " fox " + "x " * 40, " fox fox den ", " cat "]
    ranked = bm25.rank(ids, docs, ["fox"], total=100, k=10)
    assert [i for i, _ in ranked] == ["twice", "short", "long"]
    assert all(s > 0 and math.isfinite(s) for _, s in ranked)
    # a rarer term weighs more
    ranked = bm25.rank(["a", "b", "c"], [" fox ", " den ", " den "], ["fox", "den"], total=3, k=3)
    assert ranked[0][0] == "a"
    # every candidate matching: idf stays positive
    ranked = bm25.rank(["a"], [" fox "], ["fox"], total=1, k=1)
    assert ranked[0][1] > 0
