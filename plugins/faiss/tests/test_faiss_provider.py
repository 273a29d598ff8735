"""The provider object, without a server: chunks in, ranked chunks and errors out, state on disk."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lamina.apis.vector_io import Chunk, ChunkQuery, QueryChunksResponse, VectorDB
from lamina.errors import BadRequestError, ConflictError
from lamina_faiss.provider import FaissVectorIOProvider
from lamina_faiss.store import fts_query

DIM = 16


def vdb(identifier: str = "docs", dimension: int = DIM, **kw: Any) -> VectorDB:
    return VectorDB(
        identifier=identifier,
        provider_id="faiss",
        embedding_model="test-embedder",
        embedding_dimension=dimension,
        **kw,
    )


def unit_rows(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def chunks_of(vectors: np.ndarray, prefix: str = "c", texts: list[str] | None = None) -> list[Chunk]:
    return [
        Chunk(
            content=texts[i] if texts else f"chunk number {i}",
            chunk_id=f"{prefix}{i}",
            metadata={"i": i, "prefix": prefix},
            embedding=[float(x) for x in v],
        )
        for i, v in enumerate(vectors)
    ]


async def vq(provider: FaissVectorIOProvider, db: VectorDB, vector: Any, k: int = 10) -> QueryChunksResponse:
    response = await provider.query_chunks(
        db, ChunkQuery(mode="vector", k=k, embedding=[float(x) for x in vector])
    )
    check(response, k)
    return response


async def kq(provider: FaissVectorIOProvider, db: VectorDB, text: str, k: int = 10) -> QueryChunksResponse:
    response = await provider.query_chunks(db, ChunkQuery(mode="keyword", k=k, text=text))
    check(response, k)
    assert all(s >= 0 for s in response.scores)
    return response


def check(response: QueryChunksResponse, k: int) -> None:
    assert len(response.chunks) == len(response.scores) <= k
    assert all(math.isfinite(s) for s in response.scores)
    assert response.scores == sorted(response.scores, reverse=True)
    assert len({c.chunk_id for c in response.chunks}) == len(response.chunks)


def ids(response: QueryChunksResponse) -> list[str]:
    return [c.chunk_id for c in response.chunks]


def handle(provider: FaissVectorIOProvider, key: str = "docs") -> Any:
    return provider._dbs[key]


TEXTS = [
    "The cheetah is the fastest land animal.",
    "Emperor penguins huddle together in the Antarctic winter.",
    "Paris, the capital of France, has the Eiffel Tower.",
    "A café in Paris serves coffee and croissants.",
    "Octopuses have three hearts and blue blood.",
    "C++ and C# are programming languages; so is Python 3.11!",
    'She said "hello" (quietly) -- and left: NEAR the door * AND OR NOT',
]


# -- vector search -------------------------------------------------------------------------------


async def test_vector_search_ranks_by_cosine_similarity(make_provider: Any, kind: str) -> None:
    provider = await make_provider(index=kind)
    db = vdb()
    data = unit_rows(400)
    await provider.insert_chunks(db, chunks_of(data * 7.5))  # not unit length: cosine, not dot product
    queries = unit_rows(20, seed=1)
    for q in queries:
        response = await vq(provider, db, q * 0.1, k=10)
        exact = np.argsort(-(data @ q))[:10]
        assert ids(response) == [f"c{i}" for i in exact]
        assert response.scores == pytest.approx((data @ q)[exact].tolist(), abs=1e-5)
    top = await vq(provider, db, data[42], k=1)
    assert ids(top) == ["c42"] and top.scores[0] == pytest.approx(1.0, abs=1e-5)
    chunk = top.chunks[0]
    assert chunk.content == "chunk number 42" and chunk.metadata == {"i": 42, "prefix": "c"}


async def test_k_beyond_the_chunk_count_and_an_empty_vector_db(make_provider: Any, kind: str) -> None:
    provider = await make_provider(index=kind)
    db = vdb()
    await provider.register_vector_db(db)
    assert (await vq(provider, db, unit_rows(1)[0], k=5)).chunks == []
    assert (await kq(provider, db, "cheetah")).chunks == []
    await provider.insert_chunks(db, chunks_of(unit_rows(3)))
    assert len((await vq(provider, db, unit_rows(1)[0], k=1000)).chunks) == 3


async def test_zero_vectors_score_zero_not_nan(make_provider: Any, kind: str) -> None:
    provider = await make_provider(index=kind)
    db = vdb()
    vectors = unit_rows(3)
    vectors[1] = 0.0
    await provider.insert_chunks(db, chunks_of(vectors))
    response = await vq(provider, db, vectors[0])
    assert dict(zip(ids(response), response.scores, strict=True))["c1"] == 0.0
    response = await vq(provider, db, np.zeros(DIM))
    assert response.scores == [0.0, 0.0, 0.0]


async def test_hnsw_finds_the_exact_neighbours_of_a_larger_set(make_provider: Any) -> None:
    provider = await make_provider(index="hnsw")
    db = vdb(dimension=32)
    data = unit_rows(5000, dim=32, seed=3)
    await provider.insert_chunks(db, chunks_of(data))
    queries = unit_rows(50, dim=32, seed=4)
    found = 0
    for q in queries:
        exact = {f"c{i}" for i in np.argsort(-(data @ q))[:10]}
        found += len(exact & set(ids(await vq(provider, db, q, k=10))))
    assert found / 500 >= 0.95  # recall@10


# -- keyword search ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cheetah", '"cheetah"'),
        ("Cheetah's speed?", '"cheetah" OR "s" OR "speed"'),
        ('"unbalanced AND (x OR', '"unbalanced" OR "and" OR "x" OR "or"'),
        ("NEAR(a b) * ^col: -x", '"near" OR "a" OR "b" OR "col" OR "x"'),
        ("dup dup DUP", '"dup"'),
        ("café", '"café"'),
        ("  ?!*()\"':- ", ""),
        ("", ""),
    ],
)
def test_keyword_queries_become_quoted_terms(text: str, expected: str) -> None:
    assert fts_query(text) == expected


async def test_keyword_search_returns_only_matching_chunks(make_provider: Any, kind: str) -> None:
    provider = await make_provider(index=kind)
    db = vdb()
    await provider.insert_chunks(db, chunks_of(unit_rows(len(TEXTS)), texts=TEXTS))
    assert ids(await kq(provider, db, "cheetah")) == ["c0"]
    assert set(ids(await kq(provider, db, "Paris"))) == {"c2", "c3"}
    assert ids(await kq(provider, db, "penguin")) == ["c1"]  # stemmed: penguins
    assert ids(await kq(provider, db, "cafe")) == ["c3"]  # diacritics folded
    assert (await kq(provider, db, "qwxzvbnmplk")).chunks == []
    # the more query words a chunk has, the higher it ranks
    assert ids(await kq(provider, db, "Paris capital France"))[0] == "c2"
    # k is honoured
    assert len((await kq(provider, db, "the", k=1)).chunks) == 1


@pytest.mark.parametrize(
    "text",
    [
        'She said "hello"',
        "NEAR the door * AND OR NOT",
        "(((",
        "C++ C#",
        "a:b",
        "-- and left:",
        "'",
        '"',
        "^",
        "?",
        "\x00",
        "x" * 5000,
        " ".join(f"w{i}" for i in range(500)),
    ],
)
async def test_punctuation_never_breaks_a_keyword_query(make_provider: Any, text: str) -> None:
    provider = await make_provider()
    db = vdb()
    await provider.insert_chunks(db, chunks_of(unit_rows(len(TEXTS)), texts=TEXTS))
    response = await kq(provider, db, text)
    if "hello" in text:
        assert ids(response) == ["c6"]


async def test_an_exact_match_keyword_score_is_finite(make_provider: Any) -> None:
    provider = await make_provider()
    db = vdb()
    await provider.insert_chunks(db, chunks_of(unit_rows(len(TEXTS)), texts=TEXTS))
    # every chunk holding every word: BM25's IDF is at its floor; scores stay finite and >= 0
    response = await kq(provider, db, TEXTS[4])
    assert ids(response)[0] == "c4" and response.scores[0] > 0
    one = await make_provider()
    db1 = vdb("single")
    await one.insert_chunks(db1, chunks_of(unit_rows(1), texts=[TEXTS[0]]))
    response = await kq(one, db1, TEXTS[0])
    assert ids(response) == ["c0"] and response.scores[0] >= 0


async def test_content_items_are_searchable(make_provider: Any) -> None:
    provider = await make_provider()
    db = vdb()
    chunk = Chunk(
        content=[{"type": "text", "text": "alpha "}, {"type": "text", "text": "bravo"}],
        chunk_id="items",
        embedding=[1.0] * DIM,
    )
    await provider.insert_chunks(db, [chunk])
    response = await kq(provider, db, "bravo")
    assert ids(response) == ["items"]
    assert response.chunks[0].model_dump()["content"][1]["text"] == "bravo"


# -- replace and delete --------------------------------------------------------------------------


async def test_reinserting_a_chunk_id_replaces_it(make_provider: Any, kind: str) -> None:
    provider = await make_provider(index=kind)
    db = vdb()
    data = unit_rows(4)
    await provider.insert_chunks(db, chunks_of(data, texts=TEXTS[:4]))
    replacement = Chunk(
        content="a totally new text", chunk_id="c0", metadata={"v": 2}, embedding=data[3].tolist()
    )
    await provider.insert_chunks(db, [replacement])
    response = await vq(provider, db, data[0], k=10)
    assert sorted(ids(response)) == ["c0", "c1", "c2", "c3"]
    assert response.chunks[ids(response).index("c0")].metadata == {"v": 2}
    near3 = await vq(provider, db, data[3], k=2)
    assert set(ids(near3)) == {"c0", "c3"} and near3.scores[1] == pytest.approx(1.0, abs=1e-5)
    assert (await kq(provider, db, "cheetah")).chunks == []
    assert ids(await kq(provider, db, "totally")) == ["c0"]
    # two chunks with one id in one insert: the last wins
    await provider.insert_chunks(
        db,
        [
            Chunk(content="first twin", chunk_id="twin", embedding=data[0].tolist()),
            Chunk(content="second twin", chunk_id="twin", embedding=data[1].tolist()),
        ],
    )
    assert [c.content for c in (await kq(provider, db, "twin")).chunks] == ["second twin"]


async def test_delete_chunks(make_provider: Any, kind: str) -> None:
    provider = await make_provider(index=kind)
    db = vdb()
    data = unit_rows(50)
    await provider.insert_chunks(db, chunks_of(data))
    await provider.delete_chunks(db, ["c1", "c2", "no-such-chunk"])
    response = await vq(provider, db, data[1], k=50)
    assert len(response.chunks) == 48 and not {"c1", "c2"} & set(ids(response))
    assert not {"c1", "c2"} & set(ids(await kq(provider, db, "chunk number", k=50)))
    await provider.delete_chunks(db, [])


async def test_many_deletes_rebuild_the_hnsw_index(make_provider: Any) -> None:
    provider = await make_provider(index="hnsw", tombstone_rebuild_ratio=0.25)
    db = vdb()
    data = unit_rows(400)
    await provider.insert_chunks(db, chunks_of(data))
    await provider.delete_chunks(db, [f"c{i}" for i in range(50)])
    h = handle(provider)
    assert len(h.index.tombstones) == 50 and h._rebuild_task is None  # 50/400 is under the ratio
    await provider.delete_chunks(db, [f"c{i}" for i in range(50, 150)])
    assert h._rebuild_task is not None
    await provider.insert_chunks(db, chunks_of(unit_rows(5, seed=9), prefix="late"))  # while it builds
    for _ in range(200):
        if h._rebuild_task is None:
            break
        await asyncio.sleep(0.05)
    assert h._rebuild_task is None
    assert h.index.tombstones == set() and h.index.ntotal == 255
    response = await vq(provider, db, data[10], k=300)
    assert len(response.chunks) == 255 and "c10" not in ids(response)
    assert {f"late{i}" for i in range(5)} <= set(ids(response))


# -- bad input -----------------------------------------------------------------------------------


async def test_bad_chunks_are_refused_and_nothing_is_stored(make_provider: Any) -> None:
    provider = await make_provider()
    db = vdb()
    good = chunks_of(unit_rows(2))
    wrong_dim = Chunk(content="x", chunk_id="w", embedding=[0.1] * (DIM - 1))
    with pytest.raises(BadRequestError, match=r"chunks\[2\]\.embedding has 15 values") as info:
        await provider.insert_chunks(db, [*good, wrong_dim])
    assert info.value.param == "chunks[2].embedding"
    nan = Chunk(content="x", chunk_id="n", embedding=[0.1] * (DIM - 1) + [float("nan")])
    with pytest.raises(BadRequestError, match=r"chunks\[1\]\.embedding has a NaN"):
        await provider.insert_chunks(db, [good[0], nan])
    with pytest.raises(BadRequestError, match=r"chunks\[0\] has no embedding"):
        await provider.insert_chunks(db, [Chunk(content="x", chunk_id="e")])
    assert (await vq(provider, db, unit_rows(1)[0])).chunks == []
    with pytest.raises(BadRequestError, match="query embedding has 3 values") as info:
        await provider.query_chunks(db, ChunkQuery(mode="vector", k=3, embedding=[1.0, 2.0, 3.0]))
    assert info.value.param == "embedding"


async def test_another_dimension_for_a_stored_vector_db_conflicts(make_provider: Any) -> None:
    provider = await make_provider()
    await provider.insert_chunks(vdb(), chunks_of(unit_rows(2)))
    with pytest.raises(ConflictError, match="16-dimensional embeddings, not 32"):
        await provider.register_vector_db(vdb(dimension=32))
    await provider.shutdown()
    provider = await make_provider()
    with pytest.raises(ConflictError, match="unregister it"):
        await provider.register_vector_db(vdb(dimension=32))
    await provider.unregister_vector_db(vdb())
    await provider.register_vector_db(vdb(dimension=32))


# -- vector DBs ----------------------------------------------------------------------------------


async def test_vector_dbs_are_separate(make_provider: Any, tmp_path: Path) -> None:
    provider = await make_provider()
    a, b = vdb("a"), vdb("b/with/slashes", provider_resource_id="b-at-provider")
    await provider.insert_chunks(a, chunks_of(unit_rows(3), texts=TEXTS[:3]))
    await provider.insert_chunks(b, chunks_of(unit_rows(3, seed=5), texts=TEXTS[3:6]))
    assert ids(await kq(provider, a, "cheetah")) == ["c0"]
    assert (await kq(provider, b, "cheetah")).chunks == []
    assert "b-at-provider" in provider._dbs  # keyed by the provider's resource id
    await provider.unregister_vector_db(a)
    assert ids(await kq(provider, b, "octopuses")) == ["c1"]
    await provider.register_vector_db(a)
    assert (await vq(provider, a, unit_rows(1)[0])).chunks == []
    assert [p.name for p in (tmp_path / "indexes").glob("*.tmp")] == []


async def test_unregister_drops_tables_and_index_file(make_provider: Any, tmp_path: Path) -> None:
    provider = await make_provider(index_save_interval=0)
    db = vdb()
    await provider.insert_chunks(db, chunks_of(unit_rows(5)))
    await provider.shutdown()
    provider = await make_provider()
    await provider.register_vector_db(db)
    assert len(list((tmp_path / "indexes").iterdir())) == 1
    await provider.unregister_vector_db(db)
    await provider.unregister_vector_db(db)  # again: nothing to do
    assert list((tmp_path / "indexes").iterdir()) == []
    with sqlite3.connect(tmp_path / "faiss_store.db") as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert not [n for n in names if n.startswith(("faiss_chunks", "faiss_fts"))], names


async def test_namespaces_share_one_file_without_mixing(make_provider: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    one = await make_provider(kvstore={"type": "sqlite", "db_path": path, "namespace": "one"})
    two = await make_provider(kvstore={"type": "sqlite", "db_path": path, "namespace": "two::x"})
    await one.insert_chunks(vdb(), chunks_of(unit_rows(2), texts=TEXTS[:2]))
    await two.insert_chunks(vdb(), chunks_of(unit_rows(2), texts=TEXTS[2:4]))
    assert ids(await kq(one, vdb(), "cheetah")) == ["c0"]
    assert (await kq(two, vdb(), "cheetah")).chunks == []


# -- persistence ---------------------------------------------------------------------------------


async def test_a_restart_loads_the_saved_index(make_provider: Any, kind: str) -> None:
    provider = await make_provider(index=kind, index_save_interval=3600)
    db = vdb()
    data = unit_rows(300)
    await provider.insert_chunks(db, chunks_of(data, texts=[f"text {i}" for i in range(300)]))
    before = await vq(provider, db, data[7])
    await provider.shutdown()  # saves the index
    provider = await make_provider(index=kind)
    after = await vq(provider, db, data[7])
    assert handle(provider).open_stats == {"index_file": "loaded", "caught_up": 0, "dropped": 0}
    assert ids(after) == ids(before) and after.scores == before.scores
    assert ids(await kq(provider, db, "299")) == ["c299"]


async def test_a_stale_index_file_is_caught_up_from_sqlite(make_provider: Any, tmp_path: Path) -> None:
    provider = await make_provider(index_save_interval=3600)
    db = vdb()
    data = unit_rows(60)
    await provider.insert_chunks(db, chunks_of(data[:40]))
    await provider.shutdown()
    provider = await make_provider(index_save_interval=3600)
    await provider.insert_chunks(db, chunks_of(data[40:], prefix="x"))
    await provider.delete_chunks(db, ["c0", "c1", "c2"])
    await provider.insert_chunks(db, [Chunk(content="moved", chunk_id="c3", embedding=data[59].tolist())])
    # A crash: nothing more is saved; only what SQLite committed remains.
    for h in provider._dbs.values():
        h.closing = True
    provider._dbs.clear()
    provider = await make_provider()
    response = await vq(provider, db, data[59], k=100)
    assert handle(provider).open_stats == {"index_file": "loaded", "caught_up": 21, "dropped": 4}
    assert len(response.chunks) == 57
    assert set(ids(response)[:2]) == {"x19", "c3"}
    assert not {"c0", "c1", "c2"} & set(ids(response))


@pytest.mark.parametrize("damage", ["missing", "garbage", "truncated", "other-kind", "other-m"])
async def test_an_unusable_index_file_is_rebuilt(make_provider: Any, tmp_path: Path, damage: str) -> None:
    provider = await make_provider()
    db = vdb()
    data = unit_rows(100)
    await provider.insert_chunks(db, chunks_of(data))
    await provider.shutdown()
    (path,) = (tmp_path / "indexes").iterdir()
    config: dict[str, Any] = {}
    if damage == "missing":
        path.unlink()
    elif damage == "garbage":
        path.write_bytes(b"not a faiss index")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "other-kind":
        config["index"] = "flat"
    else:
        config["hnsw_m"] = 16
    provider = await make_provider(**config)
    response = await vq(provider, db, data[5], k=100)
    assert handle(provider).open_stats == {"index_file": "built", "caught_up": 100, "dropped": 0}
    assert len(response.chunks) == 100 and ids(response)[0] == "c5"


async def test_saves_are_batched_and_atomic(make_provider: Any, tmp_path: Path) -> None:
    provider = await make_provider(index_save_interval=0.2)
    db = vdb()
    for i in range(10):
        await provider.insert_chunks(db, chunks_of(unit_rows(10, seed=i), prefix=f"b{i}-"))
    h = handle(provider)
    assert h.generation == 10 and h.saved_generation == 0  # nothing written yet: one save follows
    for _ in range(100):
        if h.saved_generation == 10:
            break
        await asyncio.sleep(0.05)
    assert h.saved_generation == 10
    assert [p.suffix for p in (tmp_path / "indexes").iterdir()] == [".faiss"]


async def test_the_event_loop_keeps_running_during_a_large_insert(make_provider: Any) -> None:
    provider = await make_provider()
    db = vdb(dimension=128)
    chunks = chunks_of(unit_rows(4000, dim=128))
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    await provider.insert_chunks(db, chunks)
    took = time.perf_counter() - started
    task.cancel()
    gaps = np.diff(ticks)
    # A blocked loop would tick once or twice; a busy machine may stretch single gaps.
    assert len(ticks) >= max(3, took / 0.01 / 5), (took, len(ticks))
    assert gaps.max() < max(0.5, took / 2), (took, gaps.max())


async def test_concurrent_inserts_and_queries(make_provider: Any, kind: str) -> None:
    provider = await make_provider(index=kind)
    db = vdb()
    batches = [chunks_of(unit_rows(50, seed=s), prefix=f"s{s}-") for s in range(8)]
    queries = [vq(provider, db, q) for q in unit_rows(40, seed=99)]
    results = await asyncio.gather(*(provider.insert_chunks(db, b) for b in batches), *queries)
    assert all(r is None for r in results[:8])
    assert len((await vq(provider, db, unit_rows(1)[0], k=1000)).chunks) == 400


CRASH_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import numpy as np
    from lamina.apis.vector_io import Chunk, VectorDB
    from lamina.providers import ProviderContext
    from lamina.specs import Api
    from lamina_faiss.config import FaissVectorIOConfig
    from lamina_faiss.provider import create_provider

    async def main(state_dir):
        context = ProviderContext(api=Api.vector_io, provider_id="faiss", provider_type="inline::faiss",
                                  state_dir=state_dir)
        provider = await create_provider(FaissVectorIOConfig(index_save_interval=0.3), {}, context)
        await provider.initialize()
        db = VectorDB(identifier="docs", provider_id="faiss", embedding_model="m", embedding_dimension=16)
        rng = np.random.default_rng(0)
        batch = 0
        while True:
            vectors = rng.standard_normal((100, 16))
            chunks = [Chunk(content=f"batch {batch} row {i}", chunk_id=f"{batch}-{i}", embedding=v.tolist())
                      for i, v in enumerate(vectors)]
            await provider.insert_chunks(db, chunks)
            print("ACK", batch, flush=True)  # acknowledged
            batch += 1

    asyncio.run(main(sys.argv[1]))
    """
)


def _kill_after_acks(state_dir: Path, acks: int) -> int:
    """Run CRASH_SCRIPT until it acknowledged ``acks`` inserts, SIGKILL it; returns the last acked batch."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_SCRIPT, str(state_dir)], stdout=subprocess.PIPE, text=True
    )
    acked = -1
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while acked < acks and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("ACK "):
                acked = int(line.split()[1])
            elif not line:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return acked


async def test_acknowledged_inserts_survive_a_kill(make_provider: Any, tmp_path: Path) -> None:
    acked = await asyncio.to_thread(_kill_after_acks, tmp_path, 25)  # past a few background saves
    assert acked >= 25
    provider = await make_provider()
    db = vdb()
    await provider.register_vector_db(db)
    h = handle(provider)

    def stored_ids() -> set[str]:
        return {r[0] for r in h.table.conn.execute(f"SELECT chunk_id FROM {h.table.chunks}")}

    stored = await h._run(stored_ids)
    assert {f"{b}-{i}" for b in range(acked + 1) for i in range(100)} <= stored
    assert h.index.live == len(stored)  # the index holds everything committed
    rng = np.random.default_rng(0)
    vectors = [rng.standard_normal((100, 16)) for _ in range(acked + 1)]
    for b in (0, acked // 2, acked):
        assert ids(await vq(provider, db, vectors[b][7], k=1)) == [f"{b}-7"], b
    assert len((await kq(provider, db, "row", k=1000)).chunks) == 1000


async def test_words_in_most_chunks_rank_like_bm25_without_scanning_them(make_provider: Any) -> None:
    provider = await make_provider()
    db = vdb()
    rng = np.random.default_rng(7)
    texts = [
        f"common filler {'rare' if i % 40 == 0 else 'plain'} words {int(rng.integers(0, 9))}"
        for i in range(400)
    ]
    await provider.insert_chunks(db, chunks_of(unit_rows(400), texts=texts))
    h = handle(provider)

    def full_bm25(query: str, k: int) -> list[tuple[str, float]]:
        sql = f"SELECT rowid, rank FROM {h.table.fts} WHERE {h.table.fts} MATCH ? ORDER BY rank LIMIT ?"
        rows = h.table.conn.execute(sql, (fts_query(query), k)).fetchall()
        return [(f"c{r[0] - 1}", -r[1]) for r in rows]

    response = await kq(provider, db, "common rare", k=10)
    expected = await h._run(full_bm25, "common rare", 10)
    assert ids(response) == [cid for cid, _ in expected]  # the 10 "rare" chunks, ranked as BM25 does
    assert response.scores == pytest.approx([s for _, s in expected])
    # fewer rare matches than asked: chunks with only the common word fill up, scoring ~0
    response = await kq(provider, db, "common rare", k=15)
    assert set(ids(response)[:10]) == {f"c{i}" for i in range(0, 400, 40)}
    assert len(response.chunks) == 15 and response.scores[10:] == [0.0] * 5
    # only common words: any k matching chunks, finite scores
    response = await kq(provider, db, "common filler words", k=7)
    assert len(response.chunks) == 7 and all(s >= 0 for s in response.scores)
    assert h.table._df  # document frequencies were looked up once and kept
