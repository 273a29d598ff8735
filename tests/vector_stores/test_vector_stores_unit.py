"""The vector stores router in process, on fakes of the routers it uses: filters, expiry, paging,
resuming ingestion after a restart and cleaning up chunks."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from lamina.apis.binary import BinaryResponse
from lamina.apis.files import OpenAIFileObject
from lamina.apis.vector_io import VectorDB
from lamina.apis.vector_stores import (
    SearchVectorStoreRequest,
    UpdateVectorStoreRequest,
    VectorStoreFileRequest,
    VectorStoreIdRequest,
)
from lamina.errors import BadRequestError, NotFoundError
from lamina.providers.documents.chunking import chunk_id_for
from lamina.routers.vector_store_ingest import now
from lamina.routers.vector_stores import VectorStoresRouter, _page, matches
from lamina.storage import open_kvstore
from lamina.storage.config import SqliteKVStoreConfig


class FakeFiles:
    def __init__(self, files: dict[str, tuple[str, bytes]]) -> None:
        self.files = files

    async def openai_retrieve_file(self, request: Any) -> OpenAIFileObject:
        if request.file_id not in self.files:
            raise NotFoundError(f"file '{request.file_id}' not found")
        name, data = self.files[request.file_id]
        return OpenAIFileObject(
            id=request.file_id, bytes=len(data), created_at=0, filename=name, purpose="assistants"
        )

    async def openai_retrieve_file_content(self, request: Any) -> BinaryResponse:
        return BinaryResponse(content_type="application/octet-stream", body=self.files[request.file_id][1])


class FakeProvider:
    def __init__(self) -> None:
        self.chunks: dict[str, Any] = {}

    async def delete_chunks(self, vector_db: VectorDB, chunk_ids: list[str]) -> None:
        for cid in chunk_ids:
            self.chunks.pop(cid, None)


class FakeVectorIO:
    def __init__(self, provider: FakeProvider) -> None:
        self.provider = provider

    async def insert_chunks(self, request: Any) -> None:
        for chunk in request.chunks:
            self.provider.chunks[chunk.chunk_id] = chunk


class FakeVectorDBs:
    def __init__(self, provider: FakeProvider) -> None:
        self.provider = provider
        self.unregister_guards: list = []

    async def remove(self, vs_id: str) -> None:
        self.provider.chunks.clear()

    async def resolve(self, vs_id: str) -> tuple[VectorDB, FakeProvider]:
        vdb = VectorDB(identifier=vs_id, provider_id="p", embedding_model="m", embedding_dimension=3)
        return vdb, self.provider


async def make_router(tmp_path: Path, files: dict[str, tuple[str, bytes]]) -> tuple[VectorStoresRouter, Any]:
    kv = await open_kvstore(SqliteKVStoreConfig(db_path=str(tmp_path / "kv.db")))
    provider = FakeProvider()
    router = VectorStoresRouter(FakeVectorDBs(provider), FakeVectorIO(provider), FakeFiles(files))
    await router.start(kv)
    return router, kv


async def wait_status(router: VectorStoresRouter, vs_id: str, file_id: str) -> dict[str, Any]:
    for _ in range(500):
        record = router.state.files[vs_id][file_id]
        if record["status"] != "in_progress":
            return record
        await asyncio.sleep(0.01)
    raise AssertionError("still in progress")


def store_doc(vs_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": vs_id, "created_at": now(), "last_active_at": now(), "metadata": {}, **extra}


async def test_files_left_in_progress_are_ingested_at_start(tmp_path: Path) -> None:
    text = " ".join(f"word{i}" for i in range(300)).encode()
    files = {"file-a": ("a.txt", text)}
    router, kv = await make_router(tmp_path, files)
    await router.state.put_store(store_doc("vs_1"))
    record = {
        "id": "file-a",
        "vector_store_id": "vs_1",
        "attributes": {"k": "v"},
        "chunking_strategy": {
            "type": "static",
            "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0},
        },
        "created_at": now(),
        "status": "in_progress",
        "attach_id": "x",
        "chunk_count": 0,
    }
    await router.state.put_file(record)
    await kv.close()

    router, kv = await make_router(tmp_path, files)  # "restart": resumes file-a
    done = await wait_status(router, "vs_1", "file-a")
    assert done["status"] == "completed" and done["chunk_count"] >= 3 and done["filename"] == "a.txt"
    provider = router.ingestor.vector_dbs.provider
    assert set(provider.chunks) == {chunk_id_for("file-a", i) for i in range(done["chunk_count"])}
    meta = provider.chunks[chunk_id_for("file-a", 0)].metadata
    assert meta["file_id"] == "file-a" and meta["filename"] == "a.txt" and meta["k"] == "v"
    assert meta["chunk_index"] == 0

    content = await router.openai_retrieve_vector_store_file_contents(
        VectorStoreFileRequest(vector_store_id="vs_1", file_id="file-a")
    )
    assert len(content.content) == done["chunk_count"] and content.content[0].text.startswith("word0")

    await router.openai_delete_vector_store_file(
        VectorStoreFileRequest(vector_store_id="vs_1", file_id="file-a")
    )
    assert provider.chunks == {}
    await router.shutdown()
    await kv.close()


async def test_a_missing_file_fails_with_last_error(tmp_path: Path) -> None:
    router, kv = await make_router(tmp_path, {})
    await router.state.put_store(store_doc("vs_1"))
    from lamina.apis.vector_stores import AttachFileRequest

    obj = await router.openai_attach_file_to_vector_store(
        AttachFileRequest(vector_store_id="vs_1", file_id="file-gone")
    )
    assert obj.status == "failed"  # the attach waited for the ingestion, which failed at once
    record = await wait_status(router, "vs_1", "file-gone")
    assert record["status"] == "failed" and record["last_error"]["code"] == "server_error"
    assert "file-gone" in record["last_error"]["message"]
    await router.shutdown()
    await kv.close()


async def test_expired_store_is_expired_and_refuses_search_until_updated(tmp_path: Path) -> None:
    router, kv = await make_router(tmp_path, {})
    old = now() - 3 * 86400
    doc = store_doc(
        "vs_old", created_at=old, last_active_at=old, expires_after={"anchor": "last_active_at", "days": 2}
    )
    await router.state.put_store(doc)
    got = await router.openai_retrieve_vector_store(VectorStoreIdRequest(vector_store_id="vs_old"))
    assert got.status == "expired" and got.expires_at == old + 2 * 86400
    with pytest.raises(BadRequestError) as err:
        await router.openai_search_vector_store(SearchVectorStoreRequest(vector_store_id="vs_old", query="x"))
    assert err.value.param == "vector_store_id" and "expired" in err.value.message
    revived = await router.openai_update_vector_store(
        UpdateVectorStoreRequest(vector_store_id="vs_old", name="n")
    )
    assert revived.status == "completed" and revived.expires_at > now()
    await kv.close()


def test_filters() -> None:
    attrs = {"s": "a", "n": 5, "f": 2.5, "b": True}
    assert matches(attrs, {"type": "eq", "key": "s", "value": "a"})
    assert not matches(attrs, {"type": "eq", "key": "b", "value": 1}), "booleans are not numbers"
    assert matches(attrs, {"type": "eq", "key": "b", "value": True})
    assert matches(attrs, {"type": "gt", "key": "n", "value": 4.5}) and not matches(
        attrs, {"type": "gt", "key": "n", "value": 5}
    )
    assert matches(attrs, {"type": "gte", "key": "n", "value": 5})
    assert matches(attrs, {"type": "lt", "key": "f", "value": 3}) and matches(
        attrs, {"type": "lte", "key": "f", "value": 2.5}
    )
    assert not matches(attrs, {"type": "gt", "key": "s", "value": 1}), (
        "a string is not compared with a number"
    )
    assert not matches(attrs, {"type": "ne", "key": "missing", "value": 1}), "a missing key never matches"
    assert matches(attrs, {"type": "in", "key": "s", "value": ["a", "b"]})
    assert matches(attrs, {"type": "nin", "key": "n", "value": [1, 2]})
    nested = {
        "type": "or",
        "filters": [
            {
                "type": "and",
                "filters": [{"type": "eq", "key": "s", "value": "z"}, {"type": "eq", "key": "n", "value": 5}],
            },
            {"type": "lt", "key": "n", "value": 6},
        ],
    }
    assert matches(attrs, nested)


def test_paging() -> None:
    ids = ["a", "b", "c", "d", "e"]
    assert _page(ids, "asc", None, None, 2, "x") == (["a", "b"], True)
    assert _page(ids, "desc", None, None, 2, "x") == (["e", "d"], True)
    assert _page(ids, "asc", "b", None, 2, "x") == (["c", "d"], True)
    assert _page(ids, "asc", "c", None, 5, "x") == (["d", "e"], False)
    assert _page(ids, "asc", None, "d", 2, "x") == (["b", "c"], True)
    assert _page(ids, "asc", "a", "d", 5, "x") == (["b", "c"], False)
    assert _page(ids, "asc", None, None, 5, "x", keep=lambda i: i in "ace") == (["a", "c", "e"], False)
    with pytest.raises(BadRequestError) as err:
        _page(ids, "asc", "zz", None, 2, "file")
    assert err.value.param == "after"


# -- waiting for ingestion, file batches (issue 11, item 4) ----------------------------------------


class GatedVectorIO(FakeVectorIO):
    """Inserts wait until ``gate`` is set: ingestion that takes as long as a test wants."""

    def __init__(self, provider: FakeProvider) -> None:
        super().__init__(provider)
        self.gate = asyncio.Event()

    async def insert_chunks(self, request: Any) -> None:
        await self.gate.wait()
        await super().insert_chunks(request)


async def gated_router(
    tmp_path: Path, files: dict[str, tuple[str, bytes]], wait: float
) -> tuple[VectorStoresRouter, GatedVectorIO, Any]:
    kv = await open_kvstore(SqliteKVStoreConfig(db_path=str(tmp_path / "kv.db")))
    provider = FakeProvider()
    vector_io = GatedVectorIO(provider)
    router = VectorStoresRouter(FakeVectorDBs(provider), vector_io, FakeFiles(files), ingestion_wait=wait)
    await router.start(kv)
    await router.state.put_store(store_doc("vs_1"))
    return router, vector_io, kv


TEXT = {f"file-{i}": (f"{i}.txt", f"File {i} says hello.".encode()) for i in range(3)}


async def test_attach_waits_up_to_the_bound_and_a_cancelled_caller_leaves_ingestion_running(
    tmp_path: Path,
) -> None:
    from lamina.apis.vector_stores import AttachFileRequest

    router, vector_io, kv = await gated_router(tmp_path, TEXT, wait=0.2)
    slow = await router.openai_attach_file_to_vector_store(
        AttachFileRequest(vector_store_id="vs_1", file_id="file-0")
    )
    assert slow.status == "in_progress"  # the bound passed; the ingestion goes on
    caller = asyncio.create_task(
        router.openai_attach_file_to_vector_store(AttachFileRequest(vector_store_id="vs_1", file_id="file-1"))
    )
    await asyncio.sleep(0.05)
    caller.cancel()  # as when aiohttp cancels a handler whose client left
    await asyncio.gather(caller, return_exceptions=True)
    vector_io.gate.set()
    for file_id in ("file-0", "file-1"):
        assert (await wait_status(router, "vs_1", file_id))["status"] == "completed"
    await router.shutdown()
    await kv.close()


async def test_cancel_stops_queued_and_running_files_and_deletes_their_chunks(tmp_path: Path) -> None:
    from lamina.apis.vector_store_file_batches import CreateFileBatchRequest, FileBatchRequest

    router, vector_io, kv = await gated_router(tmp_path, TEXT, wait=0)
    batches = router.file_batches
    batch = await batches.openai_create_vector_store_file_batch(
        CreateFileBatchRequest(vector_store_id="vs_1", file_ids=list(TEXT))
    )
    assert batch.status == "in_progress" and batch.file_counts.in_progress == 3
    await asyncio.sleep(0.05)  # two files run (INGEST_CONCURRENCY), blocked in insert; one is queued
    cancelled = await batches.openai_cancel_vector_store_file_batch(
        FileBatchRequest(vector_store_id="vs_1", batch_id=batch.id)
    )
    assert cancelled.status == "cancelled" and cancelled.file_counts.cancelled == 3
    assert not router.ingestor.tasks
    vector_io.gate.set()
    await asyncio.sleep(0.05)
    assert router.ingestor.vector_dbs.provider.chunks == {}
    assert {r["status"] for r in router.state.files["vs_1"].values()} == {"cancelled"}
    # cancelling again, or an ended batch, changes nothing
    again = await batches.openai_cancel_vector_store_file_batch(
        FileBatchRequest(vector_store_id="vs_1", batch_id=batch.id)
    )
    assert again == cancelled
    await router.shutdown()
    await kv.close()


async def test_a_restart_resumes_a_batch_cut_short_and_cancels_a_cancelled_ones_files(tmp_path: Path) -> None:
    from lamina.apis.vector_store_file_batches import FileBatchRequest

    router, _vector_io, kv = await gated_router(tmp_path, TEXT, wait=0)
    auto = {"type": "auto"}
    # A crash right after the batch was written, before any of its files was attached...
    await router.state.put_batch(
        {
            "id": "vsfb_cut",
            "vector_store_id": "vs_1",
            "created_at": now(),
            "status": "in_progress",
            "attached": False,
            "files": [{"file_id": f, "attributes": {"b": 1}, "chunking_strategy": auto} for f in TEXT],
        }
    )
    # ...and a batch cancelled while its file was still in progress, before the file was stopped.
    await router.state.put_batch(
        {
            "id": "vsfb_gone",
            "vector_store_id": "vs_1",
            "created_at": now(),
            "status": "cancelled",
            "attached": True,
            "files": [{"file_id": "file-9", "attributes": {}, "chunking_strategy": auto}],
        }
    )
    record = {
        "id": "file-9",
        "vector_store_id": "vs_1",
        "attributes": {},
        "chunking_strategy": auto,
        "created_at": now(),
        "status": "in_progress",
        "attach_id": "a9",
        "chunk_count": 0,
        "batch_id": "vsfb_gone",
    }
    await router.state.put_file(record)
    await router.shutdown()
    await kv.close()

    files = {**TEXT, "file-9": ("9.txt", b"Never ingested.")}
    kv = await open_kvstore(SqliteKVStoreConfig(db_path=str(tmp_path / "kv.db")))
    provider = FakeProvider()
    router = VectorStoresRouter(FakeVectorDBs(provider), FakeVectorIO(provider), FakeFiles(files))
    await router.start(kv)
    assert router.state.files["vs_1"]["file-9"]["status"] == "cancelled"
    for file_id in TEXT:
        done = await wait_status(router, "vs_1", file_id)
        assert done["status"] == "completed" and done["attributes"] == {"b": 1}
    cut = await router.file_batches.openai_retrieve_vector_store_file_batch(
        FileBatchRequest(vector_store_id="vs_1", batch_id="vsfb_cut")
    )
    assert cut.status == "completed" and cut.file_counts.completed == 3
    assert not any(c.metadata.get("file_id") == "file-9" for c in provider.chunks.values())
    await router.shutdown()
    await kv.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def metadata_store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "sqlite":
        return {"type": "sqlite", "db_path": str(tmp_path / "kv.db")}
    server = request.getfixturevalue("postgres_server")
    return server.kvstore_config(table_name=f"kv_{uuid.uuid4().hex[:12]}")


async def test_batches_are_kept_in_either_metadata_store(metadata_store: dict[str, Any]) -> None:
    from pydantic import TypeAdapter

    from lamina.apis.vector_store_file_batches import (
        CreateFileBatchRequest,
        FileBatchRequest,
        ListFilesInBatchRequest,
    )
    from lamina.storage import KVStoreConfig

    config = TypeAdapter(KVStoreConfig).validate_python(metadata_store)

    async def started() -> tuple[VectorStoresRouter, Any]:
        kv = await open_kvstore(config)
        provider = FakeProvider()
        router = VectorStoresRouter(FakeVectorDBs(provider), FakeVectorIO(provider), FakeFiles(TEXT))
        await router.start(kv)
        return router, kv

    router, kv = await started()
    await router.state.put_store(store_doc("vs_1"))
    batch = await router.file_batches.openai_create_vector_store_file_batch(
        CreateFileBatchRequest(vector_store_id="vs_1", file_ids=[*TEXT, "file-x"], attributes={"k": "v"})
    )
    for file_id in [*TEXT, "file-x"]:
        await wait_status(router, "vs_1", file_id)
    await router.shutdown()
    await kv.close()

    router, kv = await started()
    got = await router.file_batches.openai_retrieve_vector_store_file_batch(
        FileBatchRequest(vector_store_id="vs_1", batch_id=batch.id)
    )
    assert got.status == "completed" and (got.file_counts.completed, got.file_counts.failed) == (3, 1)
    failed = await router.file_batches.openai_list_files_in_vector_store_file_batch(
        ListFilesInBatchRequest(vector_store_id="vs_1", batch_id=batch.id, filter="failed")
    )
    assert [f.id for f in failed.data] == ["file-x"]
    await router.openai_delete_vector_store(VectorStoreIdRequest(vector_store_id="vs_1"))
    with pytest.raises(NotFoundError):
        await router.file_batches.openai_retrieve_vector_store_file_batch(
            FileBatchRequest(vector_store_id="vs_1", batch_id=batch.id)
        )
    assert [k for k, _ in await kv.items_with_prefix("vector_store")] == []  # nothing of it is left
    await router.shutdown()
    await kv.close()
