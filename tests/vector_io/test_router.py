"""The VectorDBs routing table and the Vector IO router, in process.

The providers here are fakes defined in this module, good for router logic only (fusion, dedup,
thresholds, validation messages, embedding batching): ``FakeEmbedder`` stands for an inference
provider (deterministic bag-of-words vectors), ``FakeStore`` for a Vector IO provider whose query
answers the tests script. Real providers are checked end to end by the conformance kit
(test_conformance.py).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from lamina.apis.inference import EmbeddingsRequest, EmbeddingsResponse
from lamina.apis.models import Model, RegisterModelRequest
from lamina.apis.vector_io import (
    MAX_CHUNK_CHARS,
    Chunk,
    ChunkQuery,
    GetVectorDBRequest,
    InsertChunksRequest,
    QueryChunksRequest,
    QueryChunksResponse,
    RegisterVectorDBRequest,
    RRFRanker,
    VectorDB,
    WeightedRanker,
)
from lamina.config import RunConfig
from lamina.errors import BadRequestError, ConfigError, ConflictError, NotFoundError, UpstreamError
from lamina.hookspecs import hookimpl
from lamina.plugins import PluginManager
from lamina.resources.models import ModelsRoutingTable
from lamina.resources.registry import ResourceRegistry
from lamina.resources.vector_dbs import VectorDBsRoutingTable
from lamina.routers.inference import InferenceRouter
from lamina.routers.vector_io import VectorIORouter, fuse, hybrid_pool, parse_params
from lamina.specs import Api, ProviderSpec
from lamina.stack import Stack

DIM = 8


def bag_vector(text: str) -> list[float]:
    vector = [0.0] * DIM
    for word in text.lower().split():
        vector[sum(map(ord, word)) % DIM] += 1.0
    return vector if any(vector) else [1.0] + [0.0] * (DIM - 1)


class FakeEmbedder:
    """An inference provider serving one embedding model; records every embeddings call."""

    def __init__(self, *, truncation_ok: bool = True, dimension: int = DIM) -> None:
        self.calls: list[EmbeddingsRequest] = []
        self.truncation_ok = truncation_ok
        self.dimension = dimension

    async def register_model(self, model: Model) -> Model:
        return model

    async def unregister_model(self, model: Model) -> None:
        return None

    async def embeddings(self, model: Model, request: EmbeddingsRequest) -> EmbeddingsResponse:
        self.calls.append(request)
        if request.text_truncation != "none" and not self.truncation_ok:
            raise BadRequestError("this provider does not truncate", param="text_truncation")
        vectors = [bag_vector(str(t))[: self.dimension] for t in request.contents]
        return EmbeddingsResponse(embeddings=vectors)


class FakeStore:
    """A Vector IO provider: keeps inserts; queries answer ``answers[mode]`` when set."""

    def __init__(self) -> None:
        self.registered: list[str] = []
        self.unregistered: list[str] = []
        self.inserted: list[Chunk] = []
        self.queries: list[ChunkQuery] = []
        self.answers: dict[str, QueryChunksResponse] = {}

    async def register_vector_db(self, vector_db: VectorDB) -> None:
        self.registered.append(vector_db.identifier)

    async def unregister_vector_db(self, vector_db: VectorDB) -> None:
        self.unregistered.append(vector_db.identifier)

    async def insert_chunks(self, vector_db: VectorDB, chunks: list[Chunk]) -> None:
        self.inserted.extend(chunks)

    async def delete_chunks(self, vector_db: VectorDB, chunk_ids: list[str]) -> None:
        return None

    async def query_chunks(self, vector_db: VectorDB, query: ChunkQuery) -> QueryChunksResponse:
        self.queries.append(query)
        return self.answers.get(query.mode, QueryChunksResponse(chunks=[], scores=[]))


def answer(*pairs: tuple[str, float]) -> QueryChunksResponse:
    return QueryChunksResponse(
        chunks=[Chunk(content=f"text {cid}", chunk_id=cid, embedding=[1.0] * DIM) for cid, _ in pairs],
        scores=[s for _, s in pairs],
    )


def ranked(*pairs: tuple[str, float]) -> list[tuple[Chunk, float]]:
    return [(Chunk(content=cid, chunk_id=cid), s) for cid, s in pairs]


class World:
    def __init__(self, registry: ResourceRegistry, embedder: FakeEmbedder, store: FakeStore) -> None:
        pm = PluginManager(strict=True, allow=(), deny=(), trace=False)
        self.registry = registry
        self.embedder = embedder
        self.store = store
        self.models = ModelsRoutingTable(registry, {"emb": embedder}, pm)
        self.tables = VectorDBsRoutingTable(registry, {"store": store}, pm, self.models)
        self.router = VectorIORouter(self.tables, InferenceRouter(self.models), embed_batch=64)

    async def setup(self) -> None:
        await self.models.register_model(
            RegisterModelRequest(
                model_id="emb-model", model_type="embedding", metadata={"embedding_dimension": DIM}
            )
        )
        await self.models.register_model(RegisterModelRequest(model_id="chat", model_type="llm"))
        await self.tables.register_vector_db(
            RegisterVectorDBRequest(vector_db_id="docs/a", embedding_model="emb-model")
        )

    async def insert(self, *chunks: dict[str, Any], db: str = "docs/a") -> None:
        await self.router.insert_chunks(InsertChunksRequest(vector_db_id=db, chunks=list(chunks)))

    async def query(self, text: str = "query", db: str = "docs/a", **params: Any) -> QueryChunksResponse:
        return await self.router.query_chunks(QueryChunksRequest(vector_db_id=db, query=text, params=params))


@pytest.fixture
async def world(registry: ResourceRegistry) -> World:
    w = World(registry, FakeEmbedder(), FakeStore())
    await w.setup()
    return w


# -- fusion ------------------------------------------------------------------------------------


def test_rrf_sums_reciprocal_ranks() -> None:
    fused = fuse(ranked(("a", 0.9), ("b", 0.8), ("c", 0.1)), ranked(("c", 7.0), ("d", 2.0)), RRFRanker())
    scores = {c.chunk_id: s for c, s in fused}
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert scores["a"] == pytest.approx(1 / 61)
    assert scores["b"] == scores["d"] == pytest.approx(1 / 62)
    assert [c.chunk_id for c, _ in fused] == ["c", "a", "b", "d"]  # ties by chunk_id


def test_rrf_impact_factor() -> None:
    fused = fuse(ranked(("a", 0.9)), ranked(("b", 1.0)), RRFRanker(impact_factor=1))
    assert [s for _, s in fused] == [pytest.approx(0.5), pytest.approx(0.5)]


def test_weighted_fuses_min_max_normalised_scores() -> None:
    vector = ranked(("a", 0.9), ("b", 0.5), ("c", 0.1))
    keyword = ranked(("c", 3.0), ("d", 1.0))
    scores = {c.chunk_id: s for c, s in fuse(vector, keyword, WeightedRanker(alpha=0.7))}
    assert scores == {
        "a": pytest.approx(0.7),
        "b": pytest.approx(0.35),
        "c": pytest.approx(0.3),
        "d": pytest.approx(0.0),
    }


def test_weighted_with_one_score_per_list_normalises_to_one() -> None:
    scores = {c.chunk_id: s for c, s in fuse(ranked(("a", 0.2)), ranked(("a", 5.0)), WeightedRanker())}
    assert scores == {"a": pytest.approx(1.0)}


def test_hybrid_pool() -> None:
    assert (
        hybrid_pool(1) == 20 and hybrid_pool(10) == 40 and hybrid_pool(50) == 100 and hybrid_pool(300) == 300
    )


# -- queries -----------------------------------------------------------------------------------


async def test_hybrid_asks_both_modes_for_the_pool_and_fuses(world: World) -> None:
    world.store.answers = {
        "vector": answer(("a", 0.9), ("b", 0.2)),
        "keyword": answer(("b", 4.0), ("c", 1.0)),
    }
    response = await world.query("some words", mode="hybrid", max_chunks=2)
    assert sorted(q.mode for q in world.store.queries) == ["keyword", "vector"]
    assert {q.k for q in world.store.queries} == {hybrid_pool(2)}
    keyword = next(q for q in world.store.queries if q.mode == "keyword")
    assert keyword.text == "some words" and keyword.embedding is None
    assert [c.chunk_id for c in response.chunks] == ["b", "a"]
    assert response.scores == [pytest.approx(1 / 62 + 1 / 61), pytest.approx(1 / 61)]


async def test_results_are_deduplicated_by_chunk_id(world: World) -> None:
    world.store.answers = {"vector": answer(("a", 0.5), ("a", 0.9), ("b", 0.7))}
    response = await world.query(max_chunks=3)
    assert [c.chunk_id for c in response.chunks] == ["a", "b"] and response.scores == [0.9, 0.7]


async def test_results_are_sorted_and_cut_to_max_chunks(world: World) -> None:
    world.store.answers = {"keyword": answer(("a", 1.0), ("b", 3.0), ("c", 2.0))}
    response = await world.query(mode="keyword", max_chunks=3)
    assert response.scores == [3.0, 2.0, 1.0] and [c.chunk_id for c in response.chunks] == ["b", "c", "a"]
    world.store.answers["vector"] = answer(("d", 0.3))
    response = await world.query(mode="hybrid", max_chunks=2)
    assert [c.chunk_id for c in response.chunks] == ["b", "d"]  # rank 1 of each list, ties by id


async def test_score_threshold(world: World) -> None:
    world.store.answers = {"vector": answer(("a", 0.9), ("b", 0.5), ("c", -0.2))}
    response = await world.query(max_chunks=3, score_threshold=0.5)
    assert [c.chunk_id for c in response.chunks] == ["a", "b"]
    world.store.answers["keyword"] = answer(("a", 2.0))
    # hybrid: on the fused score (a: in both lists; b, c: in one)
    response = await world.query(mode="hybrid", max_chunks=3, score_threshold=1 / 61 + 1e-9)
    assert [c.chunk_id for c in response.chunks] == ["a"]


async def test_embeddings_are_stripped_unless_asked(world: World) -> None:
    world.store.answers = {"vector": answer(("a", 0.9))}
    assert (await world.query()).chunks[0].embedding is None
    assert (await world.query(include_embeddings=True)).chunks[0].embedding == [1.0] * DIM


async def test_the_query_is_embedded_with_the_vector_dbs_model(world: World) -> None:
    await world.query("hello there", mode="vector")
    assert world.embedder.calls[-1].model_id == "emb-model"
    assert world.embedder.calls[-1].contents == ["hello there"]
    assert world.store.queries[-1].embedding == bag_vector("hello there")
    await world.query("hello there", mode="keyword")
    assert len(world.embedder.calls) == 1  # keyword mode embeds nothing


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"mode": "telepathic"}, "params.mode"),
        ({"max_chunks": 0}, "params.max_chunks"),
        ({"max_chunks": "many"}, "params.max_chunks"),
        ({"score_threshold": "high"}, "params.score_threshold"),
        ({"ranker": {"type": "weighted", "alpha": 2}}, "params.ranker.alpha"),
        ({"ranker": {"type": "rrf", "impact_factor": 0}}, "params.ranker.impact_factor"),
        ({"ranker": {"type": "borda"}}, "params.ranker"),
    ],
)
def test_bad_params_name_the_field(params: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequestError) as info:
        parse_params(params)
    assert info.value.param == field and field in info.value.message


def test_mode_is_case_insensitive() -> None:
    assert parse_params({"mode": "HYBRID"}).mode == "hybrid"


async def test_query_refusals(world: World) -> None:
    with pytest.raises(BadRequestError) as info:
        await world.query("   ")
    assert info.value.param == "query"
    with pytest.raises(NotFoundError, match="docs/a"):  # the registered ones are listed
        await world.query(db="docs/none")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (QueryChunksResponse(chunks=[Chunk(content="x", chunk_id="a")], scores=[math.nan]), "non-finite"),
        (QueryChunksResponse(chunks=[Chunk(content="x", chunk_id="a")], scores=[math.inf]), "non-finite"),
        (QueryChunksResponse(chunks=[Chunk(content="x", chunk_id="a")], scores=[]), "scores"),
        (answer(*((str(i), 0.5) for i in range(4))), "for k=3"),
    ],
)
async def test_a_provider_breaking_the_contract_is_a_502_naming_it(
    world: World, bad: QueryChunksResponse, message: str
) -> None:
    world.store.answers = {"vector": bad}
    with pytest.raises(UpstreamError, match=message) as info:
        await world.query(max_chunks=3)
    assert info.value.status == 502 and "'store'" in info.value.message


# -- inserts -----------------------------------------------------------------------------------


async def test_insert_assigns_chunk_ids_and_embeds(world: World) -> None:
    await world.insert(
        {"content": "one", "chunk_id": "own"},
        {"content": "two", "metadata": {"chunk_id": "from-meta"}},
        {"content": "three"},
        {"content": "four", "embedding": [0.5] * DIM},
    )
    ids = [c.chunk_id for c in world.store.inserted]
    assert ids[:2] == ["own", "from-meta"] and len(ids[2]) == 32 and ids[3] != ids[2]
    assert [c.embedding for c in world.store.inserted[:3]] == [bag_vector(t) for t in ("one", "two", "three")]
    assert world.store.inserted[3].embedding == [0.5] * DIM
    assert world.embedder.calls[0].contents == ["one", "two", "three"]  # given embeddings are kept
    assert world.embedder.calls[0].text_truncation == "end"


async def test_the_last_of_one_chunk_id_wins(world: World) -> None:
    await world.insert(
        {"content": "first", "chunk_id": "x"}, {"content": "other"}, {"content": "last", "chunk_id": "x"}
    )
    assert [c.content for c in world.store.inserted] == ["other", "last"]


async def test_embeddings_are_computed_in_batches(world: World) -> None:
    await world.insert(*({"content": f"chunk {i}"} for i in range(150)))
    assert sorted(len(c.contents) for c in world.embedder.calls) == [22, 64, 64]
    assert [c.embedding for c in world.store.inserted] == [bag_vector(f"chunk {i}") for i in range(150)]


async def test_a_provider_that_does_not_truncate_is_asked_without(registry: ResourceRegistry) -> None:
    world = World(registry, FakeEmbedder(truncation_ok=False), FakeStore())
    await world.setup()
    await world.insert({"content": "a"})
    await world.insert({"content": "b"})
    assert [c.text_truncation for c in world.embedder.calls] == ["end", "none", "none"]
    assert len(world.store.inserted) == 2


async def test_an_embedder_answering_the_wrong_dimension_is_a_502(registry: ResourceRegistry) -> None:
    world = World(registry, FakeEmbedder(dimension=DIM - 1), FakeStore())
    await world.setup()
    with pytest.raises(UpstreamError, match="emb-model"):
        await world.insert({"content": "a"})
    assert world.store.inserted == []


@pytest.mark.parametrize(
    ("chunk", "field", "text"),
    [
        ({"content": ""}, "chunks[1].content", "no text"),
        (
            {"content": [{"type": "image", "image": {"url": {"uri": "http://x/y.png"}}}]},
            "chunks[1].content",
            "no text",
        ),
        ({"content": "x" * (MAX_CHUNK_CHARS + 1)}, "chunks[1].content", "oversized chunk"),
        ({"content": "x", "embedding": [1.0] * (DIM + 1)}, "chunks[1].embedding", f"{DIM} dimensions"),
        ({"content": "x", "embedding": [math.nan] * DIM}, "chunks[1].embedding", "NaN"),
    ],
)
async def test_bad_chunks_name_the_field(world: World, chunk: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(BadRequestError) as info:
        await world.insert({"content": "fine"}, chunk)
    assert info.value.param == field and field in info.value.message and text in info.value.message
    assert world.store.inserted == [] and world.embedder.calls == []


async def test_insert_into_an_unknown_vector_db_is_a_404(world: World) -> None:
    with pytest.raises(NotFoundError, match="docs/a"):
        await world.insert({"content": "x"}, db="nope")


# -- the routing table -------------------------------------------------------------------------


async def test_register_checks_the_embedding_model(world: World) -> None:
    register = world.tables.register_vector_db
    with pytest.raises(BadRequestError) as info:
        await register(RegisterVectorDBRequest(vector_db_id="v", embedding_model="nope"))
    assert info.value.param == "embedding_model" and "emb-model (8 dims)" in info.value.message
    with pytest.raises(BadRequestError, match="llm model") as info:
        await register(RegisterVectorDBRequest(vector_db_id="v", embedding_model="chat"))
    assert info.value.param == "embedding_model"
    with pytest.raises(BadRequestError) as info:
        await register(
            RegisterVectorDBRequest(vector_db_id="v", embedding_model="emb-model", embedding_dimension=384)
        )
    assert (
        info.value.param == "embedding_dimension"
        and "384" in info.value.message
        and "8" in info.value.message
    )


async def test_register_is_idempotent_and_conflicts_on_a_different_definition(world: World) -> None:
    got = await world.tables.get_vector_db(GetVectorDBRequest(vector_db_id="docs/a"))
    assert (
        got.embedding_dimension == DIM and got.provider_id == "store" and got.provider_resource_id == "docs/a"
    )
    same = RegisterVectorDBRequest(
        vector_db_id="docs/a", embedding_model="emb-model", embedding_dimension=DIM
    )
    assert (await world.tables.register_vector_db(same)).created == got.created
    assert world.store.registered == ["docs/a"]  # not prepared twice
    other = RegisterVectorDBRequest(
        vector_db_id="docs/a", embedding_model="emb-model", provider_vector_db_id="b"
    )
    with pytest.raises(ConflictError):
        await world.tables.register_vector_db(other)


async def test_unregister_and_reopen(world: World) -> None:
    await world.tables.register_vector_db(
        RegisterVectorDBRequest(vector_db_id="docs/b", embedding_model="emb-model")
    )
    world.store.registered.clear()
    await world.tables.reopen()
    assert world.store.registered == ["docs/a", "docs/b"]
    await world.tables.unregister_vector_db(GetVectorDBRequest(vector_db_id="docs/b"))
    assert world.store.unregistered == ["docs/b"]
    assert [v.identifier for v in (await world.tables.list_vector_dbs(None)).data] == ["docs/a"]


# -- the stack ---------------------------------------------------------------------------------


class _VectorPlugin:
    @hookimpl
    def lamina_vector_io_providers(self) -> list[ProviderSpec]:
        return [
            ProviderSpec(
                api=Api.vector_io,
                provider_type="inline::unit-vectors",
                config_class="lamina.apis.common:Empty",
                factory="tests.nothing:create",
            )
        ]


def test_vector_io_without_an_inference_provider_fails_start_up() -> None:
    pm = PluginManager(strict=True, allow=(), deny=(), trace=False)
    pm.register(_VectorPlugin(), name="unit-vectors")
    config = RunConfig.model_validate(
        {"providers": {"vector_io": [{"provider_id": "v", "provider_type": "inline::unit-vectors"}]}}
    )
    with pytest.raises(ConfigError, match=r"providers\.vector_io: vector DBs need embeddings"):
        Stack.build(config, pm)
