"""The provider object against a real PostgreSQL with pgvector, without the server."""

from __future__ import annotations

import asyncio
import math
import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lamina.apis.vector_io import Chunk, ChunkQuery, QueryChunksResponse, VectorDB
from lamina.errors import ConflictError, UpstreamError
from lamina.plugins import PluginManager
from lamina.specs import Api
from lamina.testing.pgvector import start_pgvector
from lamina.testing.postgres import PostgresServer
from lamina.testing.processes import free_port
from lamina_pgvector import PGVectorVectorIOConfig, open_for_bench
from lamina_pgvector.bench import make_provider, make_vector_db
from lamina_pgvector.provider import PGVectorVectorIOProvider, table_name

pytestmark = pytest.mark.postgres

DIM = 8


def _unit(seed: int, dim: int = DIM) -> list[float]:
    rng = random.Random(seed)
    v = [rng.gauss(0, 1) for _ in range(dim)]
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def _vdb(dim: int = DIM, **kw: object) -> VectorDB:
    return make_vector_db(f"test-{uuid.uuid4().hex[:8]}", dim, **kw)


def _chunk(cid: str, text: str, seed: int, dim: int = DIM, **metadata: object) -> Chunk:
    return Chunk(content=text, chunk_id=cid, embedding=_unit(seed, dim), metadata={"doc": cid, **metadata})


def _check(response: QueryChunksResponse, k: int, low: float, high: float) -> list[str]:
    assert len(response.chunks) == len(response.scores) <= k
    assert all(math.isfinite(s) and low <= s <= high for s in response.scores), response.scores
    assert response.scores == sorted(response.scores, reverse=True)
    return [c.chunk_id for c in response.chunks]


async def _open(server: PostgresServer, provider_id: str = "pgv") -> PGVectorVectorIOProvider:
    provider = make_provider(PGVectorVectorIOConfig.from_dsn(server.dsn()), provider_id)
    await provider.initialize()
    return provider


@pytest.fixture
async def provider(pgvector_server: PostgresServer) -> AsyncIterator[PGVectorVectorIOProvider]:
    provider = await _open(pgvector_server)
    yield provider
    await provider.shutdown()


DOCS = {
    "fox": "The quick brown fox jumps over the lazy dog.",
    "dogs": "Lazy dogs sleep all day long; the dogs never hunt.",
    "cats": "Cats purr when they are content and warm.",
    "tax": "Quarterly tax filing deadlines for small businesses.",
}


async def _filled(provider: PGVectorVectorIOProvider) -> VectorDB:
    vdb = _vdb()
    await provider.register_vector_db(vdb)
    await provider.insert_chunks(vdb, [_chunk(cid, text, i) for i, (cid, text) in enumerate(DOCS.items())])
    return vdb


# -- config, names, plugin ---------------------------------------------------------------------------


def test_llama_stack_config_validates_unchanged() -> None:
    cfg = PGVectorVectorIOConfig.model_validate(
        {"host": "db.example", "port": "6543", "db": "rag", "user": "me", "password": 12345}
    )
    assert (cfg.host, cfg.port, cfg.db, cfg.user, cfg.password_value()) == (
        "db.example",
        6543,
        "rag",
        "me",
        "12345",
    )
    defaults = PGVectorVectorIOConfig.model_validate({})
    assert (defaults.host, defaults.port, defaults.db, defaults.user) == (
        "localhost",
        5432,
        "postgres",
        "postgres",
    )
    assert defaults.password_value() == "mysecretpassword"
    newer = PGVectorVectorIOConfig.model_validate({"kvstore": {"type": "sqlite", "db_path": "/x.db"}})
    assert newer.kvstore is not None
    assert "12345" not in repr(cfg)  # the password is a secret
    dsn = PGVectorVectorIOConfig.from_dsn("postgresql://u:p%40ss@h:5433/d")
    assert (dsn.host, dsn.port, dsn.db, dsn.user, dsn.password_value()) == ("h", 5433, "d", "u", "p@ss")
    sample = PGVectorVectorIOConfig.sample_run_config()
    assert set(sample) == {"host", "port", "db", "user", "password"}


def test_table_names() -> None:
    ids = ["docs", "Docs", "my-docs/2024 é", "x" * 500, "ünï", "", "a;DROP TABLE x"]
    names = [table_name(i) for i in ids]
    assert len(set(names)) == len(ids)
    for name in names:
        assert len(name.encode()) <= 63 - len("_hnsw")
        assert name.replace("_", "").isalnum() and name.isascii() and name == name.lower()
    assert table_name("my-docs/2024 é").startswith("lamina_vdb_my_docs_2024_")


def test_plugin_offers_remote_pgvector() -> None:
    specs = PluginManager().load_entry_points().provider_specs(Api.vector_io)
    spec = specs["remote::pgvector"]
    assert spec.config_class == "lamina_pgvector.config:PGVectorVectorIOConfig"
    assert spec.factory == "lamina_pgvector.provider:create_provider"


# -- insert, query, delete ---------------------------------------------------------------------------


async def test_vector_query_exact_match_and_round_trip(provider: PGVectorVectorIOProvider) -> None:
    vdb = _vdb()
    await provider.register_vector_db(vdb)
    await provider.register_vector_db(vdb)  # idempotent
    rich = Chunk(
        content=[{"type": "text", "text": "Rich "}, {"type": "text", "text": "content"}],
        chunk_id="rich",
        embedding=_unit(99),
        metadata={"document_id": "d1", "n": 3, "nested": {"a": [1, 2.5, None]}, "nul": "a\x00b"},
        stored_chunk_id="extra-field",
    )
    await provider.insert_chunks(vdb, [rich, *(_chunk(f"c{i}", f"chunk number {i}", i) for i in range(20))])
    assert await provider.count_chunks(vdb) == 21
    response = await provider.query_chunks(vdb, ChunkQuery(mode="vector", k=5, embedding=_unit(7)))
    ids = _check(response, 5, -1.0, 1.0)
    assert ids[0] == "c7"
    assert response.scores[0] == pytest.approx(1.0, abs=1e-5)
    assert response.chunks[0].content == "chunk number 7"
    assert response.chunks[0].metadata == {"doc": "c7"}
    assert response.chunks[0].embedding == pytest.approx(_unit(7), abs=1e-6)
    # the opposite vector scores -1, and a vector query returns every chunk when k is large
    opposite = [-x for x in _unit(7)]
    everything = await provider.query_chunks(vdb, ChunkQuery(mode="vector", k=100, embedding=opposite))
    assert _check(everything, 100, -1.0, 1.0)[-1] == "c7"
    assert len(everything.chunks) == 21
    assert everything.scores[-1] == pytest.approx(-1.0, abs=1e-5)
    got = (await provider.query_chunks(vdb, ChunkQuery(mode="vector", k=1, embedding=_unit(99)))).chunks[0]
    assert got.model_dump(exclude={"embedding"}) == rich.model_dump(exclude={"embedding"})


async def test_upsert_replaces_and_last_duplicate_wins(provider: PGVectorVectorIOProvider) -> None:
    vdb = _vdb()
    await provider.insert_chunks(vdb, [_chunk("a", "first version", 1), _chunk("b", "bee", 2)])  # no register
    await provider.insert_chunks(
        vdb, [_chunk("a", "second version", 3), _chunk("a", "third version", 4, v=3)]
    )
    assert await provider.count_chunks(vdb) == 2
    response = await provider.query_chunks(vdb, ChunkQuery(mode="vector", k=1, embedding=_unit(4)))
    assert response.chunks[0].chunk_id == "a"
    assert response.chunks[0].content == "third version"
    assert response.chunks[0].metadata == {"doc": "a", "v": 3}
    keyword = await provider.query_chunks(vdb, ChunkQuery(mode="keyword", k=5, text="first"))
    assert keyword.chunks == []


async def test_delete_chunks(provider: PGVectorVectorIOProvider) -> None:
    vdb = await _filled(provider)
    await provider.delete_chunks(vdb, ["fox", "never-stored"])
    await provider.delete_chunks(vdb, [])
    assert await provider.count_chunks(vdb) == 3
    response = await provider.query_chunks(vdb, ChunkQuery(mode="vector", k=10, embedding=_unit(0)))
    assert "fox" not in _check(response, 10, -1, 1)
    keyword = await provider.query_chunks(vdb, ChunkQuery(mode="keyword", k=10, text="fox"))
    assert keyword.chunks == []


async def test_keyword_scores(provider: PGVectorVectorIOProvider) -> None:
    vdb = await _filled(provider)

    async def ask(text: str, k: int = 10) -> tuple[list[str], list[float]]:
        response = await provider.query_chunks(vdb, ChunkQuery(mode="keyword", k=k, text=text))
        return _check(response, k, 0.0, 1.0), response.scores

    ids, scores = await ask("lazy dog")
    assert set(ids) == {"fox", "dogs"}  # both terms in each (stemmed: dogs -> dog)
    assert ids[0] == "dogs"  # "dogs" twice
    ids, scores = await ask("quick cats")  # either term matches
    assert set(ids) == {"fox", "cats"} and all(s > 0 for s in scores)
    ids, _ = await ask("quick brown fox")
    assert ids == ["fox"]
    ids, _ = await ask("sleeping", k=1)  # stemmed: sleeping -> sleep
    assert ids == ["dogs"]
    assert (await ask("the and of a"))[0] == []  # stop words only
    assert (await ask("zebra"))[0] == []
    for odd in ["fox & | ! ( ) <-> : * 'quote\" \\ dog", "-fox", "OR", "fox:*", "\x00fox"]:
        ids, _ = await ask(odd)
        assert set(ids) <= {"fox", "dogs"}
    # more matched terms rank higher
    ids, scores = await ask("tax filing deadlines businesses cats")
    assert ids[0] == "tax" and scores[0] > scores[1]


async def test_zero_vectors_score_finite(provider: PGVectorVectorIOProvider) -> None:
    vdb = _vdb()
    zero = Chunk(content="zero", chunk_id="zero", embedding=[0.0] * DIM)
    await provider.insert_chunks(vdb, [zero, _chunk("one", "one", 1)])
    for embedding in ([0.0] * DIM, _unit(1)):
        response = await provider.query_chunks(vdb, ChunkQuery(mode="vector", k=5, embedding=embedding))
        _check(response, 5, -1, 1)


async def test_persists_across_reopen(pgvector_server: PostgresServer) -> None:
    first = await _open(pgvector_server, "first")
    vdb = await _filled(first)
    await first.shutdown()
    second = await _open(pgvector_server, "second")
    try:
        # before register_vector_db (the core re-registers at start-up, but need not have yet)
        response = await second.query_chunks(vdb, ChunkQuery(mode="vector", k=2, embedding=_unit(2)))
        assert _check(response, 2, -1, 1)[0] == "cats"
        await second.register_vector_db(vdb)
        assert await second.count_chunks(vdb) == len(DOCS)
        keyword = await second.query_chunks(vdb, ChunkQuery(mode="keyword", k=2, text="tax"))
        assert [c.chunk_id for c in keyword.chunks] == ["tax"]
    finally:
        await second.shutdown()


async def test_unregister_drops_and_dimension_conflicts(provider: PGVectorVectorIOProvider) -> None:
    vdb = await _filled(provider)
    other = vdb.model_copy(update={"identifier": "other", "embedding_dimension": DIM * 2})
    with pytest.raises(ConflictError, match="embedding") as info:
        await provider.register_vector_db(other)  # same provider_vector_db_id, other dimension
    assert info.value.status == 409
    await provider.unregister_vector_db(vdb)
    await provider.unregister_vector_db(vdb)  # already gone: fine
    await provider.register_vector_db(other)
    assert await provider.count_chunks(other) == 0
    await provider.insert_chunks(other, [_chunk("x", "x", 1, dim=DIM * 2)])
    assert await provider.count_chunks(other) == 1
    await provider.unregister_vector_db(other)


async def test_table_dropped_behind_its_back_is_recreated(provider: PGVectorVectorIOProvider) -> None:
    vdb = await _filled(provider)
    await provider.pool.execute(f'DROP TABLE "{table_name(vdb.provider_vector_db_id)}"')
    response = await provider.query_chunks(vdb, ChunkQuery(mode="keyword", k=3, text="fox"))
    assert response.chunks == []


# -- concurrency and volume --------------------------------------------------------------------------


async def test_concurrent_writers_and_readers(pgvector_server: PostgresServer) -> None:
    a, b = await _open(pgvector_server, "a"), await _open(pgvector_server, "b")
    try:
        vdb = _vdb()
        await asyncio.gather(a.register_vector_db(vdb), b.register_vector_db(vdb), a.register_vector_db(vdb))

        async def write(provider: PGVectorVectorIOProvider, n: int) -> None:
            # overlapping ids across writers, in different orders
            ids = list(range(50))
            random.Random(n).shuffle(ids)
            await provider.insert_chunks(vdb, [_chunk(f"c{i}", f"chunk {i} from writer {n}", i) for i in ids])

        async def read(provider: PGVectorVectorIOProvider, n: int) -> None:
            for mode in ("vector", "keyword"):
                query = ChunkQuery(mode=mode, k=5, embedding=_unit(n), text="chunk writer")
                _check(await provider.query_chunks(vdb, query), 5, -1 if mode == "vector" else 0, 1)

        tasks = [write(a if n % 2 else b, n) for n in range(12)] + [
            read(b if n % 2 else a, n) for n in range(24)
        ]
        await asyncio.gather(*tasks)
        assert await a.count_chunks(vdb) == 50
        top = await b.query_chunks(vdb, ChunkQuery(mode="vector", k=1, embedding=_unit(33)))
        assert top.chunks[0].chunk_id == "c33"
    finally:
        await a.shutdown()
        await b.shutdown()


async def test_5k_chunk_insert(pgvector_server: PostgresServer) -> None:
    dim, n = 384, 5000
    chunks = [_chunk(f"c{i}", f"document {i} talks about topic{i % 97}", i, dim=dim) for i in range(n)]
    async with open_for_bench(pgvector_server.dsn(), dim, vector_db_id=f"bulk-{uuid.uuid4().hex[:6]}") as (
        provider,
        vdb,
    ):
        lag = 0.0
        stop = asyncio.Event()

        async def ticker() -> None:  # the event loop stays responsive during the insert
            nonlocal lag
            while not stop.is_set():
                t = time.perf_counter()
                await asyncio.sleep(0.01)
                lag = max(lag, time.perf_counter() - t - 0.01)

        tick = asyncio.create_task(ticker())
        start = time.perf_counter()
        await provider.insert_chunks(vdb, chunks)
        elapsed = time.perf_counter() - start
        stop.set()
        await tick
        assert await provider.count_chunks(vdb) == n
        index = table_name(vdb.provider_vector_db_id) + "_hnsw"
        assert (
            await provider.pool.fetchval("SELECT count(*) FROM pg_indexes WHERE indexname = $1", index) == 1
        )
        hits = 0
        query_start = time.perf_counter()
        for i in range(0, n, 250):
            response = await provider.query_chunks(
                vdb, ChunkQuery(mode="vector", k=10, embedding=_unit(i, dim))
            )
            hits += response.chunks[0].chunk_id == f"c{i}"
            assert response.scores[0] == pytest.approx(1.0, abs=1e-4)
        per_query = (time.perf_counter() - query_start) / 20
        keyword = await provider.query_chunks(vdb, ChunkQuery(mode="keyword", k=20, text="topic5"))
        assert len(keyword.chunks) == 20 and all(c.content.endswith("topic5") for c in keyword.chunks)
        print(
            f"\n5k x {dim}d insert: {elapsed:.2f}s ({n / elapsed:.0f} chunks/s), "
            f"max loop lag {lag * 1000:.0f} ms, "
            f"vector query {per_query * 1000:.1f} ms, exact-match top-1 {hits}/20"
        )
        assert hits == 20
        assert lag < 1.0
        await provider.unregister_vector_db(vdb)


async def test_bulk_insert_rebuilds_the_index(pgvector_server: PostgresServer) -> None:
    async with open_for_bench(
        pgvector_server.dsn(), DIM, vector_db_id="bulky", bulk_insert_min_chunks=10
    ) as (
        provider,
        vdb,
    ):
        index = table_name(vdb.provider_vector_db_id) + "_hnsw"
        exists = "SELECT count(*) FROM pg_indexes WHERE indexname = $1"
        await provider.insert_chunks(vdb, [_chunk(f"c{i}", f"first {i}", i) for i in range(20)])  # bulk
        await provider.insert_chunks(
            vdb, [_chunk(f"c{i}", f"second {i}", i + 100) for i in range(10, 30)]
        )  # bulk
        await provider.insert_chunks(
            vdb, [_chunk(f"d{i}", f"third {i}", i + 200) for i in range(5)]
        )  # row by row
        assert await provider.pool.fetchval(exists, index) == 1
        assert await provider.count_chunks(vdb) == 35
        top = await provider.query_chunks(vdb, ChunkQuery(mode="vector", k=1, embedding=_unit(115)))
        assert (top.chunks[0].chunk_id, top.chunks[0].content) == ("c15", "second 15")
        top = await provider.query_chunks(vdb, ChunkQuery(mode="vector", k=1, embedding=_unit(5)))
        assert (top.chunks[0].chunk_id, top.chunks[0].content) == ("c5", "first 5")
        await provider.unregister_vector_db(vdb)


# -- failures ------------------------------------------------------------------------------------------


async def test_postgres_down_at_start_names_the_provider() -> None:
    config = PGVectorVectorIOConfig(host="127.0.0.1", port=free_port(), connect_timeout=3)
    provider = make_provider(config, "my-pgvector")
    with pytest.raises(UpstreamError) as info:
        await provider.initialize()
    assert info.value.status == 502
    assert "provider 'my-pgvector'" in info.value.message and "127.0.0.1" in info.value.message
    with pytest.raises(UpstreamError, match="my-pgvector"):
        await provider.query_chunks(_vdb(), ChunkQuery(mode="keyword", k=1, text="x"))
    assert (await provider.health())["status"] == "Error"


async def test_postgres_going_down_names_the_provider() -> None:
    base = Path(tempfile.mkdtemp(prefix="lamina-pgvector-down-"))
    os.chmod(base, 0o755)
    server = start_pgvector(base)
    try:
        provider = make_provider(PGVectorVectorIOConfig.from_dsn(server.dsn(), connect_timeout=3), "doomed")
        await provider.initialize()
        vdb = await _filled(provider)
        assert (await provider.health())["status"] == "OK"
        server.stop()
        for call in (
            provider.query_chunks(vdb, ChunkQuery(mode="vector", k=1, embedding=_unit(1))),
            provider.query_chunks(vdb, ChunkQuery(mode="keyword", k=1, text="fox")),
            provider.insert_chunks(vdb, [_chunk("z", "z", 1)]),
            provider.delete_chunks(vdb, ["fox"]),
            provider.register_vector_db(_vdb()),
        ):
            with pytest.raises(UpstreamError) as info:
                await call
            assert info.value.status == 502 and "provider 'doomed'" in info.value.message
        health = await provider.health()
        assert health["status"] == "Error" and "doomed" in health["message"]
        await provider.shutdown()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


async def test_missing_extension_says_how_to_fix(postgres_server: PostgresServer) -> None:
    """Debian's PostgreSQL has no pgvector: initialize fails naming the extension and the fix."""
    provider = make_provider(PGVectorVectorIOConfig.from_dsn(postgres_server.dsn()), "nopgv")
    with pytest.raises(UpstreamError) as info:
        await provider.initialize()
    message = info.value.message
    assert "provider 'nopgv'" in message and "pgvector" in message
    assert "CREATE EXTENSION vector" in message and "install pgvector" in message
    await provider.shutdown()
