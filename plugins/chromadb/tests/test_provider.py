"""remote::chromadb against a real Chroma server: storage, both query modes, restarts, failures."""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lamina.apis.vector_io import Chunk, ChunkQuery, VectorDB
from lamina.errors import BadRequestError, UpstreamError
from lamina.testing.processes import ServerProcess, free_port
from lamina_chromadb import open_for_bench
from lamina_chromadb.provider import ChromaVectorIOProvider

from .conftest import chroma_process

DIM = 8


def unit(vec: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vec)) or 1.0
    return [x / norm for x in vec]


def rand_vec(rng: random.Random, dim: int = DIM) -> list[float]:
    return unit([rng.gauss(0, 1) for _ in range(dim)])


def chunk(cid: str, text: Any, emb: list[float], **metadata: Any) -> Chunk:
    return Chunk(content=text, metadata=metadata, embedding=emb, chunk_id=cid)


def vq(emb: list[float], k: int = 3) -> ChunkQuery:
    return ChunkQuery(mode="vector", k=k, embedding=emb)


def kq(text: str, k: int = 5) -> ChunkQuery:
    return ChunkQuery(mode="keyword", k=k, text=text)


def finite(scores: list[float]) -> bool:
    return all(isinstance(s, float) and math.isfinite(s) for s in scores)


@pytest.fixture
async def opened(chroma_server: ServerProcess) -> AsyncIterator[tuple[ChromaVectorIOProvider, VectorDB]]:
    provider, vdb = await open_for_bench(chroma_server.url, DIM, vector_db_id=f"t-{uuid.uuid4().hex[:10]}")
    try:
        yield provider, vdb
    finally:
        await provider.unregister_vector_db(vdb)
        await provider.shutdown()


async def count(provider: ChromaVectorIOProvider, vdb: VectorDB) -> int:
    coll = await provider._collection(vdb)
    return await provider.client.call("GET", provider.client.collections(f"/{coll.id}/count"))


# -- vector mode, storage ------------------------------------------------------------------------


async def test_insert_query_exact_match_and_round_trip(opened) -> None:
    provider, vdb = opened
    rng = random.Random(1)
    vecs = [rand_vec(rng) for _ in range(20)]
    meta = {
        "document_id": "doc-1",
        "nested": {"a": {"b": [1, 2, {"c": None}]}, "flag": True},
        "big": 2**70,
        "ratio": 0.25,
        "none": None,
        "unicode": "héllo wörld ✓",
        "lamina:chunk": "user value with a reserved-looking key",
    }
    chunks = [chunk(f"c{i}", f"text number {i}", v, i=i) for i, v in enumerate(vecs)]
    chunks[0] = Chunk(
        content=[{"type": "text", "text": "interleaved"}, {"type": "text", "text": "content"}],
        metadata=meta,
        embedding=vecs[0],
        chunk_id="c0",
        chunk_metadata={"source": "extra field"},
    )
    await provider.insert_chunks(vdb, chunks)

    res = await provider.query_chunks(vdb, vq(vecs[0], k=5))
    assert res.chunks[0].chunk_id == "c0"
    assert len(res.chunks) == 5 and finite(res.scores)
    assert res.scores[0] == pytest.approx(1.0, abs=1e-5)
    assert res.scores == sorted(res.scores, reverse=True)
    assert all(-1.0 <= s <= 1.0 for s in res.scores)
    got = res.chunks[0]
    assert got.metadata == meta  # exact, including None values, nested lists and 2**70
    assert got.model_dump(exclude={"embedding"}) == chunks[0].model_dump(exclude={"embedding"})

    # k larger than the collection; a zero query vector is still finite
    res = await provider.query_chunks(vdb, vq(vecs[3], k=100))
    assert len(res.chunks) == 20 and res.chunks[0].chunk_id == "c3"
    res = await provider.query_chunks(vdb, vq([0.0] * DIM, k=3))
    assert finite(res.scores)


async def test_cosine_scores_match_definition(opened) -> None:
    provider, vdb = opened
    a = unit([1, 0, 0, 0, 0, 0, 0, 0])
    b = unit([1, 1, 0, 0, 0, 0, 0, 0])
    c = unit([-1, 0, 0, 0, 0, 0, 0, 0])
    await provider.insert_chunks(vdb, [chunk("a", "a", a), chunk("b", "b", b), chunk("c", "c", c)])
    res = await provider.query_chunks(vdb, vq([2.0, 0, 0, 0, 0, 0, 0, 0], k=3))  # not normalised
    assert [x.chunk_id for x in res.chunks] == ["a", "b", "c"]
    assert res.scores == pytest.approx([1.0, math.sqrt(0.5), -1.0], abs=1e-5)


async def test_upsert_replaces_and_delete(opened) -> None:
    provider, vdb = opened
    rng = random.Random(2)
    v1, v2 = rand_vec(rng), rand_vec(rng)
    await provider.insert_chunks(vdb, [chunk("x", "old text", v1, version=1), chunk("y", "other", v2)])
    await provider.insert_chunks(vdb, [chunk("x", "new text", v2, version=2)])
    assert await count(provider, vdb) == 2
    res = await provider.query_chunks(vdb, vq(v2, k=2))
    assert {c.chunk_id for c in res.chunks} == {"x", "y"}
    x = next(c for c in res.chunks if c.chunk_id == "x")
    assert x.content == "new text" and x.metadata == {"version": 2}
    assert (await provider.query_chunks(vdb, kq("old"))).chunks == []

    # duplicates inside one insert: the later one wins
    await provider.insert_chunks(vdb, [chunk("z", "first", v1), chunk("z", "second", v1)])
    res = await provider.query_chunks(vdb, kq("second"))
    assert [c.chunk_id for c in res.chunks] == ["z"]

    await provider.delete_chunks(vdb, ["x", "never-stored"])
    res = await provider.query_chunks(vdb, vq(v2, k=10))
    assert {c.chunk_id for c in res.chunks} == {"y", "z"}
    assert (await provider.query_chunks(vdb, kq("new"))).chunks == []


async def test_register_idempotent_names_and_unregister(chroma_server: ServerProcess) -> None:
    odd = f"conformance/{uuid.uuid4().hex[:6]} with spaces:and..dots"
    provider, vdb = await open_for_bench(chroma_server.url, DIM, vector_db_id=odd)
    try:
        v = rand_vec(random.Random(3))
        await provider.insert_chunks(vdb, [chunk("a", "alpha", v)])
        provider._collections.clear()  # as after a Lamina restart
        await provider.register_vector_db(vdb)
        assert [c.chunk_id for c in (await provider.query_chunks(vdb, vq(v))).chunks] == ["a"]
        await provider.unregister_vector_db(vdb)
        await provider.unregister_vector_db(vdb)  # already gone: no error
        await provider.register_vector_db(vdb)
        assert (await provider.query_chunks(vdb, vq(v))).chunks == []
        # another dimension for an existing non-empty collection is refused
        await provider.insert_chunks(vdb, [chunk("a", "alpha", v)])
        other = vdb.model_copy(update={"embedding_dimension": DIM * 2})
        provider._collections.clear()
        with pytest.raises(BadRequestError, match="dimension"):
            await provider.register_vector_db(other)
    finally:
        await provider.unregister_vector_db(vdb)
        await provider.shutdown()


async def test_collection_deleted_behind_our_back_is_recreated(opened) -> None:
    provider, vdb = opened
    v = rand_vec(random.Random(4))
    await provider.insert_chunks(vdb, [chunk("a", "alpha", v)])
    coll = await provider._collection(vdb)
    await provider.client.call("DELETE", provider.client.collections(f"/{coll.name}"))
    await provider.insert_chunks(vdb, [chunk("b", "beta", v)])  # stale id -> 404 -> reopened
    assert [c.chunk_id for c in (await provider.query_chunks(vdb, vq(v))).chunks] == ["b"]


# -- keyword mode ----------------------------------------------------------------------------------

DOCS = {
    "d1": "The quick brown fox jumps over the lazy dog.",
    "d2": "Foxes are small omnivores. A fox, a FOX and another fox!",
    "d3": "Dogs are loyal companions and excellent guard dogs.",
    "d4": "A long essay about gardening, compost, tomatoes, soil, weather, seasons, tools and a fox "
    "that once visited the garden at night while everyone was asleep in the house nearby.",
    "d5": "Nothing relevant here at all.",
}


async def test_keyword_ranking(opened) -> None:
    provider, vdb = opened
    rng = random.Random(5)
    await provider.insert_chunks(vdb, [chunk(k, t, rand_vec(rng)) for k, t in DOCS.items()])

    res = await provider.query_chunks(vdb, kq("fox"))
    ids = [c.chunk_id for c in res.chunks]
    assert set(ids) == {"d1", "d2", "d4"}  # whole words only: "Foxes" is not "fox"
    assert ids[0] == "d2"  # four occurrences, case-insensitive
    assert ids.index("d1") < ids.index("d4")  # same tf, shorter document
    assert finite(res.scores) and all(s > 0 for s in res.scores)
    assert res.scores == sorted(res.scores, reverse=True)

    # several terms: matching more of them wins; stopwords do not drag in everything
    res = await provider.query_chunks(vdb, kq("the lazy DOG"))
    ids = [c.chunk_id for c in res.chunks]
    assert ids[0] == "d1" and "d5" not in ids and "d3" not in ids  # d3 has "dogs", not "dog"
    res = await provider.query_chunks(vdb, kq("the", k=10))  # only stopwords: kept
    assert {c.chunk_id for c in res.chunks} == {"d1", "d4"}

    assert (await provider.query_chunks(vdb, kq("zebra"))).chunks == []
    assert (await provider.query_chunks(vdb, kq("?!"))).chunks == []
    res = await provider.query_chunks(vdb, kq("fox", k=1))
    assert [c.chunk_id for c in res.chunks] == ["d2"]
    assert res.chunks[0].content == DOCS["d2"]  # original text, not the search document


async def test_keyword_candidate_cap(chroma_server: ServerProcess) -> None:
    provider, vdb = await open_for_bench(
        chroma_server.url, DIM, vector_db_id=f"cap-{uuid.uuid4().hex[:8]}", keyword_candidates=3
    )
    try:
        rng = random.Random(6)
        await provider.insert_chunks(vdb, [chunk(f"c{i}", f"word {i}", rand_vec(rng)) for i in range(10)])
        res = await provider.query_chunks(vdb, kq("word", k=10))
        assert len(res.chunks) == 3 and finite(res.scores)
    finally:
        await provider.unregister_vector_db(vdb)
        await provider.shutdown()


# -- volume, concurrency ---------------------------------------------------------------------------


async def test_concurrent_inserts_and_queries(opened) -> None:
    provider, vdb = opened
    rng = random.Random(7)
    groups = [[chunk(f"g{g}-{i}", f"group{g} item{i}", rand_vec(rng)) for i in range(25)] for g in range(12)]
    await asyncio.gather(*(provider.insert_chunks(vdb, g) for g in groups))
    assert await count(provider, vdb) == 300

    async def probe(g: int) -> None:
        target = groups[g][g]
        res = await provider.query_chunks(vdb, vq(target.embedding, k=1))
        assert res.chunks[0].chunk_id == target.chunk_id
        res = await provider.query_chunks(vdb, kq(f"group{g}", k=50))
        expected = {c.chunk_id for c in groups[g]}
        assert expected - {f"g{g}-24"} <= {c.chunk_id for c in res.chunks} <= expected  # racing delete

    await asyncio.gather(*(probe(g) for g in range(12)), provider.delete_chunks(vdb, ["g0-24", "g1-24"]))
    assert await count(provider, vdb) == 298


async def test_5k_chunk_insert(chroma_server: ServerProcess, record_property) -> None:
    dim = 384
    provider, vdb = await open_for_bench(chroma_server.url, dim, vector_db_id=f"big-{uuid.uuid4().hex[:8]}")
    try:
        rng = random.Random(8)
        words = [f"w{i}" for i in range(500)]
        chunks = [
            chunk(f"c{i}", " ".join(rng.choice(words) for _ in range(30)), rand_vec(rng, dim), n=i)
            for i in range(5000)
        ]
        t0 = time.perf_counter()
        await provider.insert_chunks(vdb, chunks)
        insert_s = time.perf_counter() - t0
        assert await count(provider, vdb) == 5000
        t0 = time.perf_counter()
        for i in range(0, 5000, 500):
            res = await provider.query_chunks(vdb, vq(chunks[i].embedding, k=5))
            assert res.chunks[0].chunk_id == f"c{i}" and res.scores[0] == pytest.approx(1.0, abs=1e-4)
        vector_ms = (time.perf_counter() - t0) * 100
        t0 = time.perf_counter()
        res = await provider.query_chunks(vdb, kq("w1 w2 w3", k=10))
        keyword_ms = (time.perf_counter() - t0) * 1000
        assert len(res.chunks) == 10 and finite(res.scores)
        record_property("insert_5k_s", round(insert_s, 2))
        timings = f"insert {insert_s:.2f}s, vector query {vector_ms:.1f} ms, keyword {keyword_ms:.0f} ms"
        print(f"\n5k x {dim}: {timings}")
    finally:
        await provider.unregister_vector_db(vdb)
        await provider.shutdown()


# -- restarts, failures ----------------------------------------------------------------------------


async def test_persistence_across_chroma_restart(tmp_path: Path) -> None:
    server = chroma_process(tmp_path / "data", tmp_path)
    server.start()
    try:
        provider, vdb = await open_for_bench(server.url, DIM, vector_db_id="persist/me")
        rng = random.Random(9)
        chunks = [chunk(f"p{i}", f"persistent fact {i}", rand_vec(rng), i=i) for i in range(50)]
        await provider.insert_chunks(vdb, chunks)
        await provider.delete_chunks(vdb, ["p49"])
        server.stop()
        with pytest.raises(UpstreamError) as err:  # down: 502 naming the provider
            await provider.query_chunks(vdb, vq(chunks[0].embedding))
        assert err.value.status == 502 and "'chromadb'" in err.value.message
        server.start()
        # the same provider (stale pooled connections) and a fresh one both see everything
        res = await provider.query_chunks(vdb, vq(chunks[7].embedding))
        assert res.chunks[0].chunk_id == "p7"
        await provider.shutdown()
        fresh, vdb = await open_for_bench(server.url, DIM, vector_db_id="persist/me")
        assert await count(fresh, vdb) == 49
        res = await fresh.query_chunks(vdb, kq("fact", k=100))
        assert len(res.chunks) == 49 and finite(res.scores)
        assert res.chunks[0].metadata == {"i": int(res.chunks[0].chunk_id[1:])}
        await fresh.shutdown()
    finally:
        server.stop()


async def test_chroma_down_errors_name_the_provider() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(UpstreamError) as err:
        await open_for_bench(url, DIM, provider_id="my-chroma")
    assert err.value.status == 502
    assert "provider 'my-chroma'" in err.value.message and "cannot connect" in err.value.message
    body = err.value.to_body()
    assert body["error"]["provider_id"] == "my-chroma"


async def test_reads_collections_written_by_llama_stack(opened) -> None:
    """Llama Stack's own provider: default l2 space, the chunk's JSON as the document."""
    provider, _ = opened
    client = provider.client
    name = f"ls-{uuid.uuid4().hex[:8]}"
    coll = await client.call("POST", client.collections(), {"name": name, "metadata": {"vector_db": "{}"}})
    docs = [
        {"content": "llama stack chunk", "metadata": {"document_id": "d"}},
        {"content": "another one", "metadata": {"document_id": "e"}},
    ]
    body = {
        "ids": ["d:chunk-0", "e:chunk-0"],
        "embeddings": [[3.0, 0, 0, 0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0, 0, 0, 0]],
        "documents": [json.dumps(d) for d in docs],
    }
    await client.call("POST", client.collections(f"/{coll['id']}/upsert"), body)
    vdb = VectorDB(identifier=name, provider_id="chromadb", embedding_model="m", embedding_dimension=DIM)
    await provider.register_vector_db(vdb)
    try:
        res = await provider.query_chunks(vdb, vq([1.0, 0, 0, 0, 0, 0, 0, 0], k=2))
        assert [c.chunk_id for c in res.chunks] == ["d:chunk-0", "e:chunk-0"]
        assert res.scores == pytest.approx([1.0, 0.0], abs=1e-6)  # cosine, not l2
        assert res.chunks[0].content == "llama stack chunk"
        assert res.chunks[0].metadata == {"document_id": "d"}
    finally:
        await provider.unregister_vector_db(vdb)
