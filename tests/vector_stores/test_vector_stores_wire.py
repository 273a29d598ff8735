"""Issue 11, items 3 and 4, through a real ``lamina run`` (inline::sentence-transformers, inline::faiss,
inline::localfs) and the official clients (the OpenAI SDK and llama-stack-client 0.2.12):

- chunks inserted with ``POST /v1/vector-io/insert`` into a vector store are found by its search,
  with their metadata as ``attributes`` (filters work on them), and an exact-match query scores
  finitely in every search mode;
- attaching a file (and ``create`` with ``file_ids``) waits for ordinary files, so they answer
  ``completed``, while a big one answers ``in_progress`` and finishes in the background, even when
  its client went away;
- file batches: create (and poll), retrieve, list files, cancel, and restarts (clean and crash);
- search results are paged (``has_more`` / ``next_page``).

Two servers: ``server`` with the default ingestion wait, and ``short`` with
``vector_stores.ingestion_wait_seconds: 0.2`` for files that outlast the wait.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from llama_stack_client import LlamaStackClient
from openai import OpenAI

from lamina.testing.processes import ServerProcess, lamina_server, pid_alive

pytestmark = pytest.mark.e2e

# Llama Stack v0.2.12's sample chunks (tests/integration/vector_io/test_openai_vector_stores.py).
SAMPLE_CHUNKS = [
    {
        "content": "Python is a high-level programming language that emphasizes code readability and allows "
        "programmers to express concepts in fewer lines of code than would be possible in languages such "
        "as C++ or Java.",
        "metadata": {"document_id": "doc1", "topic": "programming"},
    },
    {
        "content": "Machine learning is a subset of artificial intelligence that enables systems to "
        "automatically learn and improve from experience without being explicitly programmed, using "
        "statistical techniques to give computer systems the ability to progressively improve performance "
        "on a specific task.",
        "metadata": {"document_id": "doc2", "topic": "ai"},
    },
    {
        "content": "Data structures are fundamental to computer science because they provide organized ways "
        "to store and access data efficiently, enable faster processing of data through optimized "
        "algorithms, and form the building blocks for more complex software systems.",
        "metadata": {"document_id": "doc3", "topic": "computer_science"},
    },
    {
        "content": "Neural networks are inspired by biological neural networks found in animal brains, using "
        "interconnected nodes called artificial neurons to process information through weighted "
        "connections that can be trained to recognize patterns and solve complex problems through "
        "iterative learning.",
        "metadata": {"document_id": "doc4", "topic": "ai"},
    },
]
WORDS = (
    "harbour lantern granite meadow orchard falcon copper willow thunder velvet saffron glacier "
    "pepper marble canyon ember quartz tide juniper compass lattice bramble cobalt prairie"
).split()


def big_text(chunks: int) -> bytes:
    """About ``chunks`` 100-token windows of varied words (each window embeds separately)."""
    lines = []
    for i in range(chunks * 10):
        lines.append(" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(9)) + f" line {i}.")
    return "\n".join(lines).encode()


STATIC_100 = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}}


def run_config(root: Path, wait: float | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "version": 2,
        "image_name": "vector-stores-wire",
        "providers": {
            "inference": [{"provider_id": "st", "provider_type": "inline::sentence-transformers"}],
            "vector_io": [
                {"provider_id": "faiss", "provider_type": "inline::faiss", "config": {"index": "flat"}}
            ],
            "files": [
                {
                    "provider_id": "localfs",
                    "provider_type": "inline::localfs",
                    "config": {"storage_dir": str(root / "files")},
                }
            ],
        },
    }
    if wait is not None:
        config["vector_stores"] = {"ingestion_wait_seconds": wait}
    return config


def _server(root: Path, wait: float | None) -> ServerProcess:
    proc = lamina_server(run_config(root, wait), root)
    proc.ready_timeout = 120
    return proc


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("wire")
    with _server(root, None) as proc:
        yield proc


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("wire-short")
    with _server(root, 0.2) as proc:
        yield proc


def oa_for(server: ServerProcess, **kw: Any) -> OpenAI:
    kw.setdefault("timeout", 120)
    return OpenAI(base_url=server.url + "/v1/openai/v1", api_key="none", max_retries=0, **kw)


@pytest.fixture(scope="module")
def oa(server: ServerProcess) -> OpenAI:
    return oa_for(server)


@pytest.fixture(scope="module")
def ls(server: ServerProcess) -> LlamaStackClient:
    return LlamaStackClient(base_url=server.url, max_retries=0, timeout=120)


def upload(oa: OpenAI, name: str, data: bytes) -> str:
    return oa.files.create(file=(name, data), purpose="assistants").id


def wait_file(oa: OpenAI, vs_id: str, file_id: str, timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        f = oa.vector_stores.files.retrieve(file_id, vector_store_id=vs_id)
        if f.status != "in_progress":
            return f
        time.sleep(0.2)
    raise AssertionError(f"{file_id} still in_progress after {timeout}s")


def wait_batch(oa: OpenAI, vs_id: str, batch_id: str, timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        b = oa.vector_stores.file_batches.retrieve(batch_id, vector_store_id=vs_id)
        if b.status != "in_progress":
            return b
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} still in_progress after {timeout}s")


@pytest.fixture
def chunks_store(oa: OpenAI, ls: LlamaStackClient) -> Iterator[str]:
    vs = oa.vector_stores.create(name="chunks", metadata={"purpose": "chunks_testing"})
    ls.vector_io.insert(vector_db_id=vs.id, chunks=SAMPLE_CHUNKS)
    yield vs.id
    oa.vector_stores.delete(vs.id)


# -- item 3: natively inserted chunks ----------------------------------------------------------


def test_natively_inserted_chunks_are_found_with_their_metadata(
    oa: OpenAI, ls: LlamaStackClient, chunks_store: str
) -> None:
    for client in (oa, ls):
        page = client.vector_stores.search(
            vector_store_id=chunks_store, query="What is Python programming language?", max_num_results=3
        )
        assert len(page.data) == 3, page
        top = page.data[0]
        assert "Python" in top.content[0].text
        assert top.attributes["document_id"] == "doc1" and top.attributes["topic"] == "programming"
        assert top.score > 0 and math.isfinite(top.score)
        # no file behind the chunk: its document id stands in for the file's id and name
        assert top.file_id == "doc1" and top.filename == "doc1"
    for query, doc in [
        ("What makes Python different from other languages?", "doc1"),
        ("How do systems learn automatically?", "doc2"),
        ("Why are data structures important?", "doc3"),
        ("What inspires neural networks?", "doc4"),
    ]:
        top = oa.vector_stores.search(chunks_store, query=query, max_num_results=4).data[0]
        assert top.attributes["document_id"] == doc, query


def test_filters_apply_to_chunk_metadata(oa: OpenAI, ls: LlamaStackClient, chunks_store: str) -> None:
    ai = {"type": "eq", "key": "topic", "value": "ai"}
    docs = {
        h.attributes["document_id"]
        for h in oa.vector_stores.search(chunks_store, query="AI", filters=ai).data
    }
    assert docs == {"doc2", "doc4"}
    # Llama Stack's tests send the shorthand {key: value}: every pair must match
    found = ls.vector_stores.search(
        vector_store_id=chunks_store,
        query="artificial intelligence",
        filters={"topic": "ai"},
        max_num_results=5,
    )
    assert {h.attributes["document_id"] for h in found.data} == {"doc2", "doc4"}
    both = {"type": "and", "filters": [ai, {"type": "ne", "key": "document_id", "value": "doc2"}]}
    assert [
        h.attributes["document_id"]
        for h in oa.vector_stores.search(chunks_store, query="AI", filters=both).data
    ] == ["doc4"]


def test_score_threshold_keeps_only_the_exact_match(oa: OpenAI, chunks_store: str) -> None:
    query = (
        "Python is a high-level programming language with code readability and fewer lines than C++ or Java"
    )
    first = oa.vector_stores.search(chunks_store, query=query, max_num_results=3).data
    assert len(first) > 1
    only = oa.vector_stores.search(
        chunks_store,
        query=query,
        max_num_results=10,
        ranking_options={"score_threshold": first[1].score + 0.0001},
    ).data
    assert [h.attributes["document_id"] for h in only] == ["doc1"]


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_an_exact_match_scores_finitely(server: ServerProcess, chunks_store: str, mode: str) -> None:
    text = SAMPLE_CHUNKS[2]["content"]
    answer = httpx.post(
        f"{server.url}/v1/vector_stores/{chunks_store}/search",
        json={"query": text, "search_mode": mode, "max_num_results": 4},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert "Infinity" not in answer.text and "NaN" not in answer.text
    data = json.loads(answer.text)["data"]
    assert data and all(math.isfinite(h["score"]) for h in data)
    assert data[0]["attributes"]["document_id"] == "doc3"
    if mode == "vector":
        assert data[0]["score"] == pytest.approx(1.0, abs=1e-3)


def test_search_results_are_paged(oa: OpenAI, ls: LlamaStackClient, chunks_store: str) -> None:
    q = "learning systems and software"
    first = oa.vector_stores.search(
        chunks_store, query=q, max_num_results=2, ranking_options={"score_threshold": -1}
    )
    assert len(first.data) == 2 and first.has_more is True and first.next_page
    second = oa.vector_stores.search(
        chunks_store,
        query=q,
        max_num_results=2,
        ranking_options={"score_threshold": -1},
        extra_body={"page": first.next_page},
    )
    assert len(second.data) == 2 and second.has_more is False and second.next_page is None
    seen = [h.attributes["document_id"] for h in [*first.data, *second.data]]
    assert sorted(seen) == ["doc1", "doc2", "doc3", "doc4"]
    assert first.data[-1].score >= second.data[0].score
    whole = oa.vector_stores.search(
        chunks_store, query=q, max_num_results=4, ranking_options={"score_threshold": -1}
    )
    assert [h.attributes["document_id"] for h in whole.data] == seen and whole.has_more is False
    # llama-stack-client 0.2.12 pages the same way
    everything = {"score_threshold": -1}
    one = ls.vector_stores.search(
        vector_store_id=chunks_store, query=q, max_num_results=3, ranking_options=everything
    )
    assert len(one.data) == 3 and one.has_more and one.next_page
    two = ls.vector_stores.search(
        vector_store_id=chunks_store,
        query=q,
        max_num_results=3,
        ranking_options=everything,
        extra_body={"page": one.next_page},
    )
    assert [h.attributes["document_id"] for h in [*one.data, *two.data]] == seen and not two.has_more
    # a page token belongs to its query
    with pytest.raises(openai.BadRequestError) as err:
        oa.vector_stores.search(chunks_store, query="another query", extra_body={"page": first.next_page})
    assert err.value.body["param"] == "page"
    with pytest.raises(openai.BadRequestError) as err:
        oa.vector_stores.search(chunks_store, query=q, extra_body={"page": "garbage"})
    assert err.value.body["param"] == "page"


# -- item 4: waiting for ingestion -------------------------------------------------------------


def test_attach_answers_completed(oa: OpenAI, ls: LlamaStackClient) -> None:
    vs = oa.vector_stores.create(name="attach")
    fid = upload(oa, "secret.txt", b"The secret string is foobazbar.")
    attached = oa.vector_stores.files.create(vector_store_id=vs.id, file_id=fid)
    assert attached.status == "completed" and not attached.last_error
    store = oa.vector_stores.retrieve(vs.id)
    assert (store.file_counts.completed, store.file_counts.in_progress, store.file_counts.total) == (1, 0, 1)
    hit = oa.vector_stores.search(vs.id, query="What is the secret string?", max_num_results=1).data[0]
    assert "foobazbar" in hit.content[0].text and hit.file_id == fid and hit.filename == "secret.txt"
    # llama-stack-client 0.2.12 cannot poll a file: it gets the finished state at once
    other = upload(oa, "other.txt", b"Owls can rotate their heads about 270 degrees.")
    f = ls.vector_stores.files.create(vs.id, file_id=other, attributes={"foo": "bar"})
    assert f.status == "completed" and f.attributes == {"foo": "bar"}
    assert ls.vector_stores.retrieve(vs.id).file_counts.completed == 2
    oa.vector_stores.delete(vs.id)


def test_create_with_file_ids_answers_final_counts(oa: OpenAI, ls: LlamaStackClient) -> None:
    ids = [upload(oa, f"t{i}.txt", f"This is a test file {i}".encode()) for i in range(3)]
    for client in (oa, ls):
        vs = client.vector_stores.create(name="on-create", file_ids=[*ids, "invalid_file_id"])
        counts = vs.file_counts
        assert (counts.completed, counts.failed, counts.in_progress, counts.total) == (3, 1, 0, 4)
        assert vs.status == "completed"
        oa.vector_stores.delete(vs.id)


def test_a_big_file_answers_in_progress_then_completes(short: ServerProcess) -> None:
    oa = oa_for(short)
    vs = oa.vector_stores.create(name="big")
    small = upload(oa, "small.txt", b"Tiny.")
    big = upload(oa, "big.txt", big_text(60))
    attached = oa.vector_stores.files.create(vector_store_id=vs.id, file_id=big, chunking_strategy=STATIC_100)
    assert attached.status == "in_progress"
    assert oa.vector_stores.retrieve(vs.id).file_counts.in_progress == 1
    assert wait_file(oa, vs.id, big).status == "completed"
    store = oa.vector_stores.retrieve(vs.id)
    assert store.file_counts.completed == 1 and store.file_counts.in_progress == 0
    oa.vector_stores.files.create(vector_store_id=vs.id, file_id=small)
    assert wait_file(oa, vs.id, small).status == "completed"
    oa.vector_stores.delete(vs.id)


def test_a_client_that_leaves_does_not_cancel_ingestion(server: ServerProcess, oa: OpenAI) -> None:
    vs = oa.vector_stores.create(name="leaver")
    big = upload(oa, "leaver.txt", big_text(150))
    impatient = oa_for(server, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        impatient.vector_stores.files.create(vector_store_id=vs.id, file_id=big, chunking_strategy=STATIC_100)
    done = wait_file(oa, vs.id, big)
    assert done.status == "completed", done.last_error
    oa.vector_stores.delete(vs.id)


# -- item 4: file batches ----------------------------------------------------------------------


def test_file_batch_create_and_poll(oa: OpenAI, server: ServerProcess) -> None:
    vs = oa.vector_stores.create(name="batches")
    ids = [
        upload(oa, f"b{i}.txt", f"Batch file number {i} talks about lighthouses.".encode()) for i in range(3)
    ]
    batch = oa.vector_stores.file_batches.create_and_poll(
        vector_store_id=vs.id, file_ids=[*ids, "file-missing"], attributes={"source": "batch"}
    )
    assert batch.id.startswith("vsfb_") and batch.object == "vector_store.files_batch"
    assert batch.vector_store_id == vs.id and batch.status == "completed"
    counts = batch.file_counts
    assert (counts.completed, counts.failed, counts.in_progress, counts.cancelled, counts.total) == (
        3,
        1,
        0,
        0,
        4,
    )
    got = oa.vector_stores.file_batches.retrieve(batch.id, vector_store_id=vs.id)
    assert got.id == batch.id and got.file_counts.total == 4
    files = list(oa.vector_stores.file_batches.list_files(batch.id, vector_store_id=vs.id))
    assert {f.id for f in files} == {*ids, "file-missing"}
    assert all(f.attributes == {"source": "batch"} for f in files)
    failed = oa.vector_stores.file_batches.list_files(batch.id, vector_store_id=vs.id, filter="failed")
    assert [f.id for f in failed.data] == ["file-missing"]
    page = oa.vector_stores.file_batches.list_files(batch.id, vector_store_id=vs.id, limit=2, order="asc")
    assert len(page.data) == 2 and page.has_more
    rest = oa.vector_stores.file_batches.list_files(
        batch.id, vector_store_id=vs.id, limit=2, order="asc", after=page.data[-1].id
    )
    assert len(rest.data) == 2 and not rest.has_more
    assert {f.id for f in [*page.data, *rest.data]} == {*ids, "file-missing"}
    # the batch's files are the store's files, searchable and filterable by the batch's attributes
    assert oa.vector_stores.retrieve(vs.id).file_counts.completed == 3
    hits = oa.vector_stores.search(
        vs.id, query="lighthouses", filters={"type": "eq", "key": "source", "value": "batch"}
    )
    assert hits.data and {h.file_id for h in hits.data} <= set(ids)
    # per-file attributes with `files`
    per_file = oa.vector_stores.file_batches.create_and_poll(
        vector_store_id=vs.id, files=[{"file_id": ids[0], "attributes": {"n": 1}}]
    )
    assert per_file.file_counts.completed == 1
    assert oa.vector_stores.files.retrieve(ids[0], vector_store_id=vs.id).attributes == {"n": 1}
    # the same routes at /v1/vector_stores
    v1 = OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
    assert v1.vector_stores.file_batches.retrieve(batch.id, vector_store_id=vs.id).id == batch.id
    with pytest.raises(openai.NotFoundError):
        oa.vector_stores.file_batches.retrieve("vsfb_nope", vector_store_id=vs.id)
    with pytest.raises(openai.NotFoundError):
        oa.vector_stores.file_batches.create(vector_store_id="vs_nope", file_ids=ids)
    with pytest.raises(openai.BadRequestError) as err:
        oa.vector_stores.file_batches.create(vector_store_id=vs.id, file_ids=[])
    assert err.value.body["param"] == "file_ids"
    with pytest.raises(openai.BadRequestError) as err:
        oa.vector_stores.file_batches.create(vector_store_id=vs.id, file_ids=ids, files=[{"file_id": ids[0]}])
    assert "files" in err.value.body["message"]
    oa.vector_stores.delete(vs.id)


def test_cancelling_a_batch_stops_its_pending_files(short: ServerProcess) -> None:
    oa = oa_for(short)
    vs = oa.vector_stores.create(name="cancel")
    ids = [upload(oa, f"c{i}.txt", big_text(60)) for i in range(4)]
    batch = oa.vector_stores.file_batches.create(
        vector_store_id=vs.id, file_ids=ids, chunking_strategy=STATIC_100
    )
    assert batch.status == "in_progress" and batch.file_counts.in_progress == 4
    cancelled = oa.vector_stores.file_batches.cancel(batch.id, vector_store_id=vs.id)
    assert cancelled.status == "cancelled"
    assert cancelled.file_counts.in_progress == 0 and cancelled.file_counts.cancelled >= 3
    files = list(
        oa.vector_stores.file_batches.list_files(batch.id, vector_store_id=vs.id, filter="cancelled")
    )
    assert len(files) == cancelled.file_counts.cancelled
    # nothing of a cancelled file stays searchable, and nothing ingests it later
    time.sleep(1)
    after = oa.vector_stores.file_batches.retrieve(batch.id, vector_store_id=vs.id)
    assert after.status == "cancelled" and after.file_counts == cancelled.file_counts
    body = {
        "vector_db_id": vs.id,
        "query": "harbour lantern",
        "params": {"mode": "keyword", "max_chunks": 1000},
    }
    chunks = httpx.post(short.url + "/v1/vector-io/query", json=body, timeout=60).json()["chunks"]
    cancelled_ids = {f.id for f in files}
    assert not [c for c in chunks if c["metadata"].get("file_id") in cancelled_ids]
    oa.vector_stores.delete(vs.id)


def test_batches_survive_a_restart_and_a_crash(short: ServerProcess) -> None:
    oa = oa_for(short)
    vs = oa.vector_stores.create(name="restarts")
    small = [upload(oa, f"r{i}.txt", f"Restart file {i} about comets.".encode()) for i in range(2)]
    done = oa.vector_stores.file_batches.create_and_poll(vector_store_id=vs.id, file_ids=small)
    assert done.status == "completed"
    big = [upload(oa, f"k{i}.txt", big_text(60)) for i in range(2)]
    running = oa.vector_stores.file_batches.create(
        vector_store_id=vs.id, file_ids=big, chunking_strategy=STATIC_100
    )
    assert running.status == "in_progress"

    old = short.kill()  # a crash in the middle of the batch
    assert not pid_alive(old)
    short.start()
    oa = oa_for(short)
    again = oa.vector_stores.file_batches.retrieve(done.id, vector_store_id=vs.id)
    assert again.status == "completed" and again.file_counts.completed == 2
    resumed = wait_batch(oa, vs.id, running.id)
    assert resumed.status == "completed" and resumed.file_counts.completed == 2, resumed

    short.restart()  # a clean one
    oa = oa_for(short)
    final = oa.vector_stores.file_batches.retrieve(running.id, vector_store_id=vs.id)
    assert final.status == "completed" and final.file_counts.total == 2
    assert {f.id for f in oa.vector_stores.file_batches.list_files(running.id, vector_store_id=vs.id)} == set(
        big
    )
    oa.vector_stores.delete(vs.id)
