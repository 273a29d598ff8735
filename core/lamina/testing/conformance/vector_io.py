"""The Vector IO conformance kit.

Subclass ``VectorIOConformance`` in a test module (its name must start with ``Test``) and provide
one fixture, ``conformance_lamina``: a started ``lamina run`` (a ``ServerProcess``) whose config has
the provider under ``vector_io`` and an embedding model under ``inference`` (by default
``inline::sentence-transformers`` from lamina-onnx-embeddings, which registers
``all-MiniLM-L6-v2``, 384 dimensions). Every test must pass::

    from lamina.testing.conformance import VectorIOConformance
    from lamina.testing.processes import lamina_server

    RUN_CONFIG = {
        "version": 2,
        "providers": {
            "inference": [{"provider_id": "st", "provider_type": "inline::sentence-transformers"}],
            "vector_io": [{"provider_id": "acme", "provider_type": "remote::acme", "config": {...}}],
        },
    }

    class TestAcmeVectors(VectorIOConformance):
        @pytest.fixture(scope="class")
        @classmethod
        def conformance_lamina(cls, tmp_path_factory):
            with lamina_server(RUN_CONFIG, tmp_path_factory.mktemp("lamina")) as server:
                yield server

The kit registers vector DBs of its own (ids start with ``conformance/``) and unregisters them.
``test_restart_keeps_vector_dbs_and_chunks`` restarts the server with ``restart_lamina`` (by
default ``ServerProcess.restart()``: same config, port and state directory, and it fails unless a
new process replaced the old one); override it when a restart needs more (a remote database is
not restarted: its data must simply survive the server's restart). Set ``provider_id`` when the
run config has several ``vector_io`` providers, and ``llm_model`` to a registered LLM to check that
it is refused as an embedding model.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest
from llama_stack_client import BadRequestError, ConflictError, LlamaStackClient, NotFoundError

from lamina.apis.vector_io import MAX_CHUNK_CHARS
from lamina.testing.conformance.base import ConformanceKit
from lamina.testing.processes import ServerProcess

# ~30 distinct facts; the keys are the chunk ids' suffixes.
FACTS: dict[str, str] = {
    "cheetah": "The cheetah is the fastest land animal, reaching speeds of about 110 kilometres per hour.",
    "blue-whale": "The blue whale is the largest animal known to have ever lived on Earth.",
    "penguin": "Emperor penguins huddle together to survive the bitter Antarctic winter.",
    "octopus": "An octopus has three hearts and blue blood.",
    "honeybee": "Honeybees tell each other where flowers are by performing a waggle dance.",
    "owl": "Owls can rotate their heads about 270 degrees.",
    "elephant": "Elephants recognise themselves in a mirror and mourn their dead.",
    "hummingbird": "Hummingbirds are the only birds that can fly backwards.",
    "sloth": "Sloths move so slowly that algae grows in their fur.",
    "axolotl": "The axolotl can regrow lost limbs, parts of its heart and even its spinal cord.",
    "camel": "Camels store fat, not water, in their humps to survive long desert journeys.",
    "kangaroo": "Kangaroos carry their young in a pouch.",
    "giraffe": "A giraffe's tongue is dark blue and about half a metre long.",
    "paris": "Paris, the capital of France, is home to the Eiffel Tower and the Louvre museum.",
    "tokyo": "Tokyo is the most populous metropolitan area in the world.",
    "venice": "Venice is built on more than a hundred small islands connected by canals and bridges.",
    "cairo": "Cairo lies on the banks of the Nile, near the pyramids of Giza.",
    "reykjavik": "Reykjavik is the northernmost capital of a sovereign state, heated by geothermal water.",
    "rio": "Rio de Janeiro is famous for its carnival and the statue of Christ the Redeemer.",
    "sydney": "Sydney's opera house has a roof shaped like a set of white sails.",
    "new-york": "New York City's subway runs twenty-four hours a day.",
    "rome": "Rome's Colosseum could hold around fifty thousand spectators for gladiator games.",
    "istanbul": "Istanbul straddles two continents, Europe and Asia, across the Bosphorus strait.",
    "etna": "Mount Etna in Sicily is one of the most active volcanoes in the world.",
    "chocolate": "Chocolate is made from the fermented and roasted seeds of the cacao tree.",
    "piano": "A standard piano has eighty-eight keys, fifty-two white and thirty-six black.",
    "cycling": "Regular cycling strengthens the heart and lungs.",
    "coffee": "Coffee beans are the roasted seeds of a cherry-like fruit.",
    "moon": "The Moon always shows the same face to the Earth because of tidal locking.",
    "manuscript": "The archivist catalogued a zyxomorphic manuscript found in a monastery cellar.",
}
RARE_WORD = "zyxomorphic"  # only in FACTS["manuscript"]

# (query, the fact it must find first by meaning); no query shares a rare word with its fact.
SEMANTIC: list[tuple[str, str]] = [
    ("Which animal runs quicker than any other?", "cheetah"),
    ("What is the biggest creature that ever existed?", "blue-whale"),
    ("Which city was built on many little islands joined by waterways?", "venice"),
    ("How do you make cocoa products?", "chocolate"),
]


def chunk_id(key: str) -> str:
    return f"fact-{key}"


def fact_chunks() -> list[dict[str, Any]]:
    """The facts as chunks: half name their id in metadata.chunk_id, half in chunk_id."""
    chunks = []
    for i, (key, text) in enumerate(FACTS.items()):
        metadata = {"document_id": key, "index": i, "tags": ["fact", key], "source": {"kind": "kit"}}
        chunk: dict[str, Any] = {"content": text, "metadata": metadata}
        if i % 2:
            chunk["chunk_id"] = chunk_id(key)
        else:
            metadata["chunk_id"] = chunk_id(key)
        chunks.append(chunk)
    return chunks


def ids_of(response: Any) -> list[str]:
    return [getattr(c, "chunk_id", None) or c.metadata.get("chunk_id") for c in response.chunks]


@pytest.mark.e2e
class VectorIOConformance(ConformanceKit):
    embedding_model: ClassVar[str] = "all-MiniLM-L6-v2"
    embedding_dimension: ClassVar[int] = 384
    provider_id: ClassVar[str | None] = None  # set when several vector_io providers are configured
    llm_model: ClassVar[str | None] = None  # a registered LLM: refused as an embedding model

    # -- clients and helpers -------------------------------------------------------------------

    @pytest.fixture
    def http(self, conformance_lamina: ServerProcess) -> Iterator[httpx.Client]:
        with httpx.Client(base_url=conformance_lamina.url, timeout=120) as client:
            yield client

    @classmethod
    def register(cls, ls: LlamaStackClient, name: str, **kwargs: Any) -> str:
        """Register a fresh vector DB ``conformance/<name>-<random>``; returns its id."""
        vector_db_id = f"conformance/{name}-{uuid.uuid4().hex[:8]}"
        if cls.provider_id:
            kwargs.setdefault("provider_id", cls.provider_id)
        ls.vector_dbs.register(vector_db_id=vector_db_id, embedding_model=cls.embedding_model, **kwargs)
        return vector_db_id

    def query(self, ls: LlamaStackClient, vector_db_id: str, query: str, **params: Any) -> Any:
        response = ls.vector_io.query(vector_db_id=vector_db_id, query=query, params=params)
        assert len(response.chunks) == len(response.scores)
        assert all(math.isfinite(s) for s in response.scores)
        assert response.scores == sorted(response.scores, reverse=True)
        assert len(set(ids_of(response))) == len(response.chunks), "a chunk came back twice"
        return response

    @pytest.fixture(scope="class")
    @classmethod
    def corpus(cls, conformance_lamina: ServerProcess) -> Iterator[str]:
        """A vector DB holding FACTS (embedded by the server), shared by the class's read-only tests."""
        ls = LlamaStackClient(base_url=conformance_lamina.url, max_retries=0, timeout=120)
        vector_db_id = cls.register(ls, "corpus")
        ls.vector_io.insert(vector_db_id=vector_db_id, chunks=fact_chunks())
        yield vector_db_id
        try:
            LlamaStackClient(base_url=conformance_lamina.url, max_retries=0).vector_dbs.unregister(
                vector_db_id
            )
        except Exception:  # the server may be gone already
            pass

    # -- the VectorDBs API ---------------------------------------------------------------------

    def test_register_list_get_unregister(self, ls: LlamaStackClient) -> None:
        vector_db_id = self.register(ls, "crud/with/slashes")
        got = ls.vector_dbs.retrieve(vector_db_id)
        assert got.identifier == vector_db_id and got.type == "vector_db"
        assert got.embedding_model == self.embedding_model
        assert got.embedding_dimension == self.embedding_dimension
        assert vector_db_id in [v.identifier for v in ls.vector_dbs.list()]
        # identical again: fine; different: 409
        again = ls.vector_dbs.register(
            vector_db_id=vector_db_id,
            embedding_model=self.embedding_model,
            embedding_dimension=self.embedding_dimension,
            **({"provider_id": self.provider_id} if self.provider_id else {}),
        )
        assert again.identifier == vector_db_id
        with pytest.raises(ConflictError, match="already registered"):
            ls.vector_dbs.register(
                vector_db_id=vector_db_id,
                embedding_model=self.embedding_model,
                provider_vector_db_id="somewhere-else",
                **({"provider_id": self.provider_id} if self.provider_id else {}),
            )
        ls.vector_dbs.unregister(vector_db_id)
        assert vector_db_id not in [v.identifier for v in ls.vector_dbs.list()]
        with pytest.raises(NotFoundError):
            ls.vector_dbs.retrieve(vector_db_id)

    def test_register_refuses_a_model_that_is_no_embedding_model(self, ls: LlamaStackClient) -> None:
        with pytest.raises(BadRequestError, match="embedding_model") as info:
            ls.vector_dbs.register(
                vector_db_id="conformance/bad", embedding_model="conformance/no-such-model"
            )
        assert self.embedding_model in str(info.value)  # the registered embedding models are listed
        if self.llm_model:
            with pytest.raises(BadRequestError, match="embedding_model"):
                ls.vector_dbs.register(vector_db_id="conformance/bad", embedding_model=self.llm_model)

    def test_register_refuses_a_wrong_dimension(self, ls: LlamaStackClient) -> None:
        wrong = self.embedding_dimension + 1
        with pytest.raises(BadRequestError, match="embedding_dimension") as info:
            ls.vector_dbs.register(
                vector_db_id="conformance/bad",
                embedding_model=self.embedding_model,
                embedding_dimension=wrong,
            )
        assert str(wrong) in str(info.value) and str(self.embedding_dimension) in str(info.value)

    # -- queries -------------------------------------------------------------------------------

    @pytest.mark.parametrize(("text", "key"), SEMANTIC)
    def test_vector_query_finds_the_chunk_by_meaning(
        self, ls: LlamaStackClient, corpus: str, text: str, key: str
    ) -> None:
        response = self.query(ls, corpus, text, max_chunks=3, mode="vector")
        assert ids_of(response)[0] == chunk_id(key)
        assert all(-1.0 - 1e-6 <= s <= 1.0 + 1e-6 for s in response.scores)  # cosine similarity

    def test_default_mode_is_vector(self, ls: LlamaStackClient, corpus: str) -> None:
        text, key = SEMANTIC[0]
        response = ls.vector_io.query(vector_db_id=corpus, query=text)
        assert len(response.chunks) == 3  # Llama Stack's default max_chunks
        assert ids_of(response)[0] == chunk_id(key)

    def test_keyword_query_finds_a_rare_word(self, ls: LlamaStackClient, corpus: str) -> None:
        response = self.query(ls, corpus, RARE_WORD, max_chunks=5, mode="keyword")
        assert ids_of(response) == [chunk_id("manuscript")]  # only matching chunks come back
        assert response.scores[0] >= 0

    def test_keyword_query_without_matches_finds_nothing(self, ls: LlamaStackClient, corpus: str) -> None:
        response = self.query(ls, corpus, "qwxzvbnmplk", max_chunks=5, mode="keyword")
        assert response.chunks == [] and response.scores == []

    @pytest.mark.parametrize("ranker", [None, {"type": "rrf", "impact_factor": 60}, {"type": "weighted"}])
    def test_hybrid_query_finds_both_kinds(
        self, ls: LlamaStackClient, corpus: str, ranker: dict[str, Any] | None
    ) -> None:
        params: dict[str, Any] = {"max_chunks": 5, "mode": "hybrid"}
        if ranker:
            params["ranker"] = ranker
        response = self.query(ls, corpus, f"{RARE_WORD} which animal runs quicker than any other", **params)
        found = ids_of(response)
        assert chunk_id("manuscript") in found and chunk_id("cheetah") in found
        assert len(found) <= 5

    @pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
    def test_an_exact_match_has_finite_scores(self, http: httpx.Client, corpus: str, mode: str) -> None:
        text = FACTS["octopus"]
        answer = http.post(
            "/v1/vector-io/query",
            json={"vector_db_id": corpus, "query": text, "params": {"mode": mode, "max_chunks": 5}},
        )
        assert answer.status_code == 200, answer.text
        assert "Infinity" not in answer.text and "NaN" not in answer.text
        doc = json.loads(answer.text)
        assert doc["scores"] and all(math.isfinite(s) for s in doc["scores"])
        assert doc["scores"] == sorted(doc["scores"], reverse=True)
        top = doc["chunks"][0]
        assert (top.get("chunk_id") or top["metadata"].get("chunk_id")) == chunk_id("octopus")
        if mode == "vector":
            assert doc["scores"][0] == pytest.approx(1.0, abs=1e-3)

    @pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
    def test_max_chunks_is_honoured(self, ls: LlamaStackClient, corpus: str, mode: str) -> None:
        text = "the animal with the heart"  # common words: many keyword matches
        for n in (1, 4, 10):
            response = self.query(ls, corpus, text, max_chunks=n, mode=mode)
            assert 1 <= len(response.chunks) <= n
            if mode != "keyword":
                assert len(response.chunks) == n

    def test_score_threshold_filters(self, ls: LlamaStackClient, corpus: str) -> None:
        text, _ = SEMANTIC[0]
        everything = self.query(ls, corpus, text, max_chunks=10, mode="vector")
        cut = (everything.scores[1] + everything.scores[2]) / 2
        kept = self.query(ls, corpus, text, max_chunks=10, mode="vector", score_threshold=cut)
        assert ids_of(kept) == ids_of(everything)[:2]
        nothing = self.query(ls, corpus, text, max_chunks=10, mode="vector", score_threshold=1.01)
        assert nothing.chunks == []

    def test_metadata_round_trips(self, ls: LlamaStackClient, corpus: str) -> None:
        response = self.query(ls, corpus, FACTS["giraffe"], max_chunks=1, mode="vector")
        chunk = response.chunks[0]
        assert chunk.content == FACTS["giraffe"]
        index = list(FACTS).index("giraffe")
        assert chunk.metadata["document_id"] == "giraffe"
        assert chunk.metadata["index"] == index
        assert chunk.metadata["tags"] == ["fact", "giraffe"]
        assert chunk.metadata["source"] == {"kind": "kit"}
        assert ids_of(response) == [chunk_id("giraffe")]

    # -- inserts -------------------------------------------------------------------------------

    def test_insert_with_precomputed_embeddings(self, ls: LlamaStackClient) -> None:
        vector_db_id = self.register(ls, "precomputed")
        texts = [FACTS["owl"], FACTS["piano"], FACTS["moon"]]
        vectors = ls.inference.embeddings(model_id=self.embedding_model, contents=texts).embeddings
        chunks = [
            {"content": t, "metadata": {"chunk_id": f"pre-{i}"}, "embedding": v}
            for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
        ]
        ls.vector_io.insert(vector_db_id=vector_db_id, chunks=chunks)
        response = self.query(ls, vector_db_id, "How far can an owl turn its head?", max_chunks=3)
        assert ids_of(response)[0] == "pre-0"
        assert len(response.chunks) == 3
        ls.vector_dbs.unregister(vector_db_id)

    def test_reinserting_a_chunk_id_replaces_it(self, ls: LlamaStackClient) -> None:
        vector_db_id = self.register(ls, "replace")
        ls.vector_io.insert(
            vector_db_id=vector_db_id,
            chunks=[
                {"content": FACTS["sloth"], "metadata": {"chunk_id": "one", "version": 1}},
                {"content": FACTS["coffee"], "metadata": {"chunk_id": "two"}},
            ],
        )
        ls.vector_io.insert(
            vector_db_id=vector_db_id,
            chunks=[{"content": FACTS["camel"], "metadata": {"chunk_id": "one", "version": 2}}],
        )
        for mode in ("vector", "keyword", "hybrid"):
            response = self.query(ls, vector_db_id, FACTS["camel"], max_chunks=10, mode=mode)
            found = ids_of(response)
            assert found.count("one") == 1, (mode, found)
            replaced = response.chunks[found.index("one")]
            assert replaced.content == FACTS["camel"] and replaced.metadata["version"] == 2
        vector = self.query(ls, vector_db_id, FACTS["sloth"], max_chunks=10, mode="vector")
        assert sorted(ids_of(vector)) == ["one", "two"]  # the sloth text is gone
        ls.vector_dbs.unregister(vector_db_id)

    def test_unregister_drops_chunks(self, ls: LlamaStackClient) -> None:
        vector_db_id = self.register(ls, "dropped")
        ls.vector_io.insert(vector_db_id=vector_db_id, chunks=fact_chunks()[:5])
        assert self.query(ls, vector_db_id, FACTS["cheetah"], max_chunks=5).chunks
        ls.vector_dbs.unregister(vector_db_id)
        with pytest.raises(NotFoundError):
            ls.vector_io.query(vector_db_id=vector_db_id, query="cheetah")
        ls.vector_dbs.register(
            vector_db_id=vector_db_id,
            embedding_model=self.embedding_model,
            **({"provider_id": self.provider_id} if self.provider_id else {}),
        )
        for mode in ("vector", "keyword", "hybrid"):
            assert self.query(ls, vector_db_id, FACTS["cheetah"], max_chunks=5, mode=mode).chunks == []
        ls.vector_dbs.unregister(vector_db_id)

    # -- bad input -----------------------------------------------------------------------------

    def test_bad_input_is_a_4xx_naming_the_field(self, ls: LlamaStackClient, corpus: str) -> None:
        wrong = [0.1] * (self.embedding_dimension - 1)
        with pytest.raises(BadRequestError, match=r"chunks\[1\]\.embedding"):
            ls.vector_io.insert(
                vector_db_id=corpus,
                chunks=[
                    {"content": "fine", "metadata": {}},
                    {"content": "x", "metadata": {}, "embedding": wrong},
                ],
            )
        with pytest.raises(BadRequestError, match=r"chunks\[0\]\.content"):
            ls.vector_io.insert(vector_db_id=corpus, chunks=[{"content": "   ", "metadata": {}}])
        with pytest.raises(BadRequestError, match=r"chunks\[0\]\.content.*oversized"):
            ls.vector_io.insert(
                vector_db_id=corpus, chunks=[{"content": "a" * (MAX_CHUNK_CHARS + 1), "metadata": {}}]
            )
        with pytest.raises(NotFoundError, match=corpus):  # the registered ones are listed
            ls.vector_io.insert(
                vector_db_id="conformance/no-such-db", chunks=[{"content": "x", "metadata": {}}]
            )
        with pytest.raises(NotFoundError):
            ls.vector_io.query(vector_db_id="conformance/no-such-db", query="x")
        with pytest.raises(BadRequestError, match="query"):
            ls.vector_io.query(vector_db_id=corpus, query="")
        with pytest.raises(BadRequestError, match=r"params\.mode"):
            ls.vector_io.query(vector_db_id=corpus, query="x", params={"mode": "telepathic"})
        with pytest.raises(BadRequestError, match=r"params\.max_chunks"):
            ls.vector_io.query(vector_db_id=corpus, query="x", params={"max_chunks": 0})
        # nothing of the refused inserts was stored
        assert len(self.query(ls, corpus, "fine", max_chunks=40, mode="vector").chunks) == len(FACTS)

    # -- OpenAI vector stores over this provider ---------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def chunk_store(cls, conformance_lamina: ServerProcess) -> Iterator[str]:
        """An OpenAI vector store on this provider holding FACTS, inserted through vector-io."""
        http = httpx.Client(base_url=conformance_lamina.url, timeout=120)
        body: dict[str, Any] = {"name": "conformance", "embedding_model": cls.embedding_model}
        if cls.provider_id:
            body["provider_id"] = cls.provider_id
        created = http.post("/v1/vector_stores", json=body)
        assert created.status_code == 200, created.text
        vs_id = created.json()["id"]
        inserted = http.post("/v1/vector-io/insert", json={"vector_db_id": vs_id, "chunks": fact_chunks()})
        assert inserted.status_code == 200, inserted.text
        yield vs_id
        try:
            http.delete(f"/v1/vector_stores/{vs_id}")
        except httpx.HTTPError:  # the server may be gone already
            pass

    @pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
    def test_vector_store_search_finds_inserted_chunks_with_finite_scores(
        self, http: httpx.Client, chunk_store: str, mode: str
    ) -> None:
        """Chunks inserted through vector-io are a vector store's search results; an exact match of
        their text scores finitely in every mode (no Infinity or NaN reaches the JSON)."""
        answer = http.post(
            f"/v1/vector_stores/{chunk_store}/search",
            json={"query": FACTS["octopus"], "search_mode": mode, "max_num_results": 5},
        )
        assert answer.status_code == 200, answer.text
        assert "Infinity" not in answer.text and "NaN" not in answer.text
        data = json.loads(answer.text)["data"]
        assert data and all(math.isfinite(hit["score"]) for hit in data)
        assert [hit["score"] for hit in data] == sorted((hit["score"] for hit in data), reverse=True)
        top = data[0]
        assert top["attributes"]["document_id"] == "octopus" and top["content"][0]["text"] == FACTS["octopus"]
        assert top["file_id"] == "octopus"
        if mode == "vector":
            assert top["score"] == pytest.approx(1.0, abs=1e-3)
        shorthand = {"document_id": "cheetah"}
        only = http.post(
            f"/v1/vector_stores/{chunk_store}/search",
            json={
                "query": "animal",
                "search_mode": mode,
                "filters": shorthand,
                "ranking_options": {"score_threshold": -1},
            },
        )
        assert only.status_code == 200, only.text
        assert [hit["attributes"]["document_id"] for hit in only.json()["data"]] == ["cheetah"]

    # -- restart -------------------------------------------------------------------------------

    def test_restart_keeps_vector_dbs_and_chunks(
        self, ls: LlamaStackClient, conformance_lamina: ServerProcess
    ) -> None:
        vector_db_id = self.register(ls, "durable")
        ls.vector_io.insert(vector_db_id=vector_db_id, chunks=fact_chunks())
        before = {
            mode: ids_of(self.query(ls, vector_db_id, SEMANTIC[1][0], max_chunks=5, mode=mode))
            for mode in ("vector", "keyword", "hybrid")
        }
        self.restart_lamina(conformance_lamina)
        assert vector_db_id in [v.identifier for v in ls.vector_dbs.list()]
        for mode, ids in before.items():
            after = self.query(ls, vector_db_id, SEMANTIC[1][0], max_chunks=5, mode=mode)
            assert ids_of(after) == ids, mode
        ls.vector_io.insert(
            vector_db_id=vector_db_id,
            chunks=[{"content": "Pangolins are covered in keratin scales.", "metadata": {"chunk_id": "new"}}],
        )
        for mode in ("vector", "keyword", "hybrid"):
            found = ids_of(self.query(ls, vector_db_id, "Pangolins keratin scales", max_chunks=1, mode=mode))
            assert found == ["new"], mode
        ls.vector_dbs.unregister(vector_db_id)
