"""The localfs provider in-process, on SQLite and on the real PostgreSQL: storage, paging, expiry,
atomicity and the start-up cleanup."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from lamina.apis.binary import UploadFile
from lamina.apis.files import (
    ExpiresAfter,
    FileIdRequest,
    ListFilesRequest,
    StoreFileRequest,
    UploadFileRequest,
)
from lamina.errors import BadRequestError, NotFoundError, PayloadTooLargeError
from lamina.storage.files_store import FileRecord
from lamina_localfs.provider import LocalfsFilesImpl


def upload(
    data: bytes, name: str | None = "a.txt", purpose: str = "assistants", **kw: Any
) -> UploadFileRequest:
    return UploadFileRequest(
        file=UploadFile.from_bytes(data, filename=name, chunk=1000), purpose=purpose, **kw
    )


def leftovers(provider: LocalfsFilesImpl) -> tuple[list[str], list[str]]:
    """(files in storage_dir, files in .partial)."""
    stored = sorted(p.name for p in provider.storage_dir.iterdir() if p.name != ".partial")
    return stored, sorted(p.name for p in provider.partial_dir.iterdir())


async def test_upload_retrieve_content_delete(provider: LocalfsFilesImpl) -> None:
    data = b"line\n" * 5000
    obj = await provider.openai_upload_file(upload(data, "notes.jsonl", "batch"))
    assert obj.id.startswith("file-") and len(obj.id) == 37
    assert (obj.bytes, obj.filename, obj.purpose, obj.object) == (len(data), "notes.jsonl", "batch", "file")
    assert obj.expires_at == obj.created_at + provider.config.ttl_secs
    assert await provider.openai_retrieve_file(FileIdRequest(file_id=obj.id)) == obj
    content = await provider.openai_retrieve_file_content(FileIdRequest(file_id=obj.id))
    assert content.path is not None and content.path.read_bytes() == data
    assert content.filename == "notes.jsonl"
    assert content.content_type == "application/octet-stream"  # .jsonl: no registered type
    assert leftovers(provider) == ([obj.id], [])

    deleted = await provider.openai_delete_file(FileIdRequest(file_id=obj.id))
    assert deleted.deleted and deleted.id == obj.id
    for call in (
        provider.openai_retrieve_file,
        provider.openai_retrieve_file_content,
        provider.openai_delete_file,
    ):
        with pytest.raises(NotFoundError, match=obj.id):
            await call(FileIdRequest(file_id=obj.id))
    assert leftovers(provider) == ([], [])
    assert (await provider.openai_list_files(ListFilesRequest())).data == []


async def test_the_server_stores_batch_output_files_that_a_client_cannot_upload(
    provider: LocalfsFilesImpl,
) -> None:
    """A batch's output and error files have OpenAI's purpose ``batch_output``; uploads cannot claim it."""
    with pytest.raises(ValidationError, match="purpose"):
        upload(b"{}\n", "out.jsonl", "batch_output")
    request = StoreFileRequest(
        file=UploadFile.from_bytes(b"{}\n", filename="out.jsonl"), purpose="batch_output"
    )
    obj = await provider.openai_upload_file(request)
    assert obj.purpose == "batch_output"
    assert await provider.openai_retrieve_file(FileIdRequest(file_id=obj.id)) == obj
    listed = await provider.openai_list_files(ListFilesRequest(purpose="batch_output"))
    assert [f.id for f in listed.data] == [obj.id]


async def test_content_type_from_the_part_else_the_name(provider: LocalfsFilesImpl) -> None:
    typed = UploadFileRequest(
        file=UploadFile.from_bytes(b"{}", filename="x.bin", content_type="application/json"),
        purpose="user_data",
    )
    obj = await provider.openai_upload_file(typed)
    assert (await provider.openai_retrieve_file_content(FileIdRequest(file_id=obj.id))).content_type == (
        "application/json"
    )
    obj = await provider.openai_upload_file(upload(b"hi", "hello.txt"))
    assert (
        await provider.openai_retrieve_file_content(FileIdRequest(file_id=obj.id))
    ).content_type == "text/plain"
    obj = await provider.openai_upload_file(upload(b"hi", None))
    assert obj.filename == "upload"


async def test_paging_by_created_at_then_id_in_both_orders(provider: LocalfsFilesImpl) -> None:
    # Uploaded within the same second or two: ties on created_at are broken by id, so no file is
    # skipped or repeated across pages.
    ids = []
    for i in range(7):
        obj = await provider.openai_upload_file(upload(b"x", f"{i}.txt", "assistants" if i % 2 else "vision"))
        ids.append((obj.created_at, obj.id))
    for order in ("asc", "desc"):
        expected = [i for _, i in sorted(ids, reverse=order == "desc")]
        seen, after = [], None
        while True:
            page = await provider.openai_list_files(ListFilesRequest(limit=2, order=order, after=after))
            seen += [f.id for f in page.data]
            assert page.first_id == page.data[0].id and page.last_id == page.data[-1].id
            if not page.has_more:
                break
            after = page.last_id
        assert seen == expected
    vision = await provider.openai_list_files(ListFilesRequest(purpose="vision"))
    assert len(vision.data) == 4 and {f.purpose for f in vision.data} == {"vision"}
    assert not vision.has_more
    with pytest.raises(BadRequestError, match="after") as exc:
        await provider.openai_list_files(ListFilesRequest(after="file-" + "0" * 32))
    assert exc.value.param == "after"
    empty = await provider.openai_list_files(ListFilesRequest(purpose="evals"))
    assert (empty.data, empty.first_id, empty.last_id, empty.has_more) == ([], "", "", False)


async def test_too_large_is_a_413_naming_the_limit_and_leaves_nothing(
    make_provider: Callable[..., Any],
) -> None:
    provider = await make_provider(max_file_size=10_000)
    ok = await provider.openai_upload_file(upload(b"x" * 10_000))  # exactly the limit is fine
    with pytest.raises(PayloadTooLargeError, match=r"limit of 10000 bytes .*max_file_size") as exc:
        await provider.openai_upload_file(upload(b"x" * 10_001))
    assert exc.value.status == 413
    assert leftovers(provider) == ([ok.id], [])
    assert [f.id for f in (await provider.openai_list_files(ListFilesRequest())).data] == [ok.id]


async def test_a_broken_upload_leaves_nothing(provider: LocalfsFilesImpl) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 3_000_000  # past one write: some bytes reached the partial file
        raise ConnectionResetError("client went away")

    request = UploadFileRequest(file=UploadFile(broken(), filename="b.bin"), purpose="assistants")
    with pytest.raises(ConnectionResetError):
        await provider.openai_upload_file(request)
    assert leftovers(provider) == ([], [])
    assert (await provider.openai_list_files(ListFilesRequest())).data == []


async def test_expiry(provider: LocalfsFilesImpl) -> None:
    obj = await provider.openai_upload_file(
        upload(b"soon", expires_after=ExpiresAfter(anchor="created_at", seconds=3600))
    )
    assert obj.expires_at == obj.created_at + 3600
    # A file whose time has come: invisible at once, purged (row and bytes) by the sweep.
    gone_id = f"file-{uuid.uuid4().hex}"
    (provider.storage_dir / gone_id).write_bytes(b"old")
    now = int(time.time())
    await provider.store.insert(
        FileRecord(gone_id, "old.txt", "assistants", 3, now - 100, now - 1, "text/plain", "")
    )
    listed = [f.id for f in (await provider.openai_list_files(ListFilesRequest())).data]
    assert listed == [obj.id]
    with pytest.raises(NotFoundError):
        await provider.openai_retrieve_file(FileIdRequest(file_id=gone_id))
    await provider._purge_expired()
    assert await provider.store.ids() == {obj.id}
    assert leftovers(provider) == ([obj.id], [])


async def test_no_ttl_keeps_files_until_deleted(make_provider: Callable[..., Any]) -> None:
    provider = await make_provider(ttl_secs=None)
    obj = await provider.openai_upload_file(upload(b"forever"))
    assert obj.expires_at is None
    assert (await provider.openai_list_files(ListFilesRequest())).data == [obj]


async def test_startup_removes_partial_uploads_and_orphans_and_keeps_stored_files(
    make_provider: Callable[..., Any], tmp_path: Path
) -> None:
    first = await make_provider()
    kept = await first.openai_upload_file(upload(b"keep me"))
    await first.shutdown()
    partial = first.partial_dir / f"file-{uuid.uuid4().hex}"
    partial.write_bytes(b"half")
    orphan = first.storage_dir / f"file-{uuid.uuid4().hex}"  # renamed, but the row never written
    orphan.write_bytes(b"orphan")
    unrelated = first.storage_dir / "README"  # not ours: left alone
    unrelated.write_text("hi")

    second = await make_provider()
    assert leftovers(second) == (sorted(["README", kept.id]), [])
    content = await second.openai_retrieve_file_content(FileIdRequest(file_id=kept.id))
    assert content.path is not None and content.path.read_bytes() == b"keep me"


async def test_defaults_live_under_the_state_dir(tmp_path: Path) -> None:
    from lamina.providers.base import ProviderContext
    from lamina.specs import Api
    from lamina_localfs.config import LocalfsFilesImplConfig

    context = ProviderContext(Api.files, "fs", "inline::localfs", state_dir=tmp_path / "providers" / "fs")
    provider = LocalfsFilesImpl(LocalfsFilesImplConfig(), context)
    await provider.initialize()
    try:
        assert provider.storage_dir == (tmp_path / "providers" / "fs" / "files").resolve()
        assert (tmp_path / "providers" / "fs" / "files_metadata.db").is_file()
        assert provider.config.max_file_size == 512 * 1024 * 1024
    finally:
        await provider.shutdown()
