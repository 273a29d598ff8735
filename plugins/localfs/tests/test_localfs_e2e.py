"""The Files API through a real ``lamina run`` with inline::localfs, driven by the OpenAI SDK and
llama-stack-client 0.2.12, with the metadata on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from llama_stack_client import LlamaStackClient
from openai import OpenAI

from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024


def run_config(storage_dir: Path, metadata_store: dict[str, Any], **config: Any) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "files-e2e",
        "apis": ["files"],
        "providers": {
            "files": [
                {
                    "provider_id": "localfs",
                    "provider_type": "inline::localfs",
                    "config": {"storage_dir": str(storage_dir), "metadata_store": metadata_store, **config},
                }
            ]
        },
    }


def oa(server: ServerProcess, prefix: str = "/v1/openai/v1") -> OpenAI:
    return OpenAI(base_url=server.url + prefix, api_key="none", max_retries=0, timeout=120)


def stored_files(storage_dir: Path) -> tuple[list[str], list[str]]:
    """(published files, partial uploads) on disk."""
    published = sorted(p.name for p in storage_dir.iterdir() if p.name.startswith("file-"))
    partial_dir = storage_dir / ".partial"
    return published, sorted(p.name for p in partial_dir.iterdir()) if partial_dir.exists() else []


def vm_hwm(pid: int) -> int:
    """The process's peak resident set size (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


@pytest.fixture
def storage_dir(tmp_path: Path) -> Path:
    return tmp_path / "files"


@pytest.fixture
def files_server(
    start_lamina: Callable[..., ServerProcess], storage_dir: Path, metadata_store: dict[str, Any]
) -> Callable[..., ServerProcess]:
    """Start ``lamina run`` on localfs (same storage and metadata each time, so restarts keep state)."""

    def start(**config: Any) -> ServerProcess:
        return start_lamina(run_config(storage_dir, metadata_store, **config))

    return start


@pytest.mark.parametrize("prefix", ["/v1/openai/v1", "/v1"])
def test_openai_sdk_round_trip(
    files_server: Callable[..., ServerProcess], tmp_path: Path, prefix: str
) -> None:
    client = oa(files_server(), prefix)
    path = tmp_path / "notes.txt"
    path.write_text("hello files\n")
    with open(path, "rb") as fh:
        first = client.files.create(file=fh, purpose="assistants")
    assert first.id.startswith("file-")
    assert (first.filename, first.bytes, first.purpose, first.object) == (
        "notes.txt",
        12,
        "assistants",
        "file",
    )
    assert first.expires_at == first.created_at + 365 * 24 * 3600
    others = [
        client.files.create(
            file=(f"{i}.jsonl", b'{"a": 1}\n' * (i + 1)), purpose="batch" if i % 2 else "user_data"
        )
        for i in range(5)
    ]

    # Pagination: the SDK follows has_more / last_id across pages of 2.
    page = client.files.list(limit=2)
    assert len(page.data) == 2 and page.has_more
    newest_first = [f.id for f in client.files.list(limit=2)]  # auto-paginates
    assert sorted(newest_first) == sorted([first.id] + [o.id for o in others])
    assert newest_first == [f.id for f in client.files.list(limit=10000, order="desc").data]
    assert [f.id for f in client.files.list(order="asc")] == newest_first[::-1]
    batch = client.files.list(purpose="batch")
    assert sorted(f.id for f in batch) == sorted(o.id for i, o in enumerate(others) if i % 2)

    assert client.files.retrieve(first.id) == first
    content = client.files.content(first.id)
    assert content.content == b"hello files\n"
    assert content.response.headers["content-type"].startswith("text/plain")
    assert content.response.headers["content-disposition"] == 'attachment; filename="notes.txt"'

    deleted = client.files.delete(first.id)
    assert (deleted.id, deleted.deleted) == (first.id, True)
    for call in (client.files.retrieve, client.files.content, client.files.delete):
        with pytest.raises(openai.NotFoundError, match=first.id):
            call(first.id)
    assert first.id not in [f.id for f in client.files.list()]


def test_expires_after(files_server: Callable[..., ServerProcess]) -> None:
    client = oa(files_server())
    obj = client.files.create(
        file=("b.jsonl", b"{}\n"), purpose="batch", expires_after={"anchor": "created_at", "seconds": 7200}
    )
    assert obj.expires_at == obj.created_at + 7200
    with pytest.raises(openai.BadRequestError, match=r"expires_after\.seconds"):
        client.files.create(
            file=("b.jsonl", b"{}\n"), purpose="batch", expires_after={"anchor": "created_at", "seconds": 5}
        )


def test_llama_stack_client(files_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    server = files_server()
    client = LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)
    path = tmp_path / "doc.md"
    path.write_text("# title\n")
    with open(path, "rb") as fh:
        created = client.files.create(file=fh, purpose="assistants")
    assert (created.filename, created.bytes, created.purpose) == ("doc.md", 8, "assistants")
    listed = client.files.list()
    assert [f.id for f in listed.data] == [created.id]
    assert (listed.first_id, listed.last_id, listed.has_more) == (created.id, created.id, False)
    assert client.files.retrieve(created.id).id == created.id
    raw = client.files.with_raw_response.content(created.id)
    assert raw.http_response.content == b"# title\n"
    assert client.files.delete(created.id).deleted is True
    with pytest.raises(Exception) as exc:
        client.files.retrieve(created.id)
    assert getattr(exc.value, "status_code", None) == 404


def test_bad_purpose_is_a_400_naming_purpose(
    files_server: Callable[..., ServerProcess], storage_dir: Path
) -> None:
    server = files_server()
    with pytest.raises(openai.BadRequestError) as exc:
        oa(server).files.create(file=("a.txt", b"x"), purpose="homework")  # type: ignore[arg-type]
    assert "purpose" in str(exc.value) and "fine-tune" in str(exc.value)
    assert exc.value.body["param"] == "purpose"  # type: ignore[index]
    # Sent after the file, a field cannot be known when the file streams: the 400 says so.
    files = {"file": ("a.txt", b"x")}
    resp = httpx.post(f"{server.url}/v1/files", files=files, data={})
    assert resp.status_code == 400 and "purpose: required, but missing" in resp.json()["detail"]
    assert stored_files(storage_dir) == ([], [])


def test_too_large_is_a_413_and_nothing_is_stored(
    files_server: Callable[..., ServerProcess], storage_dir: Path
) -> None:
    client = oa(files_server(max_file_size=MiB))
    with pytest.raises(openai.APIStatusError) as exc:
        client.files.create(file=("big.bin", b"\0" * (3 * MiB)), purpose="assistants")
    assert exc.value.status_code == 413
    assert "limit of 1048576 bytes (1 MiB)" in exc.value.message and "max_file_size" in exc.value.message
    assert client.files.list().data == []
    assert stored_files(storage_dir) == ([], [])
    # The server's max_request_body_bytes (32 MiB) does not apply to uploads; max_file_size does.
    ok = client.files.create(file=("fits.bin", b"\1" * MiB), purpose="assistants")
    assert ok.bytes == MiB


def test_restart_keeps_files(files_server: Callable[..., ServerProcess]) -> None:
    server = files_server()
    obj = oa(server).files.create(file=("keep.txt", b"persisted"), purpose="vision")
    server.stop()
    client = oa(files_server())
    assert client.files.retrieve(obj.id) == obj
    assert client.files.content(obj.id).content == b"persisted"
    assert [f.id for f in client.files.list()] == [obj.id]


@pytest.mark.parametrize("metadata_store", ["sqlite"], indirect=True)
def test_a_50_mb_upload_streams_through_flat_memory(
    files_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Design check, not timing: the server's peak RSS grows by far less than the file's size."""
    server = files_server()
    assert server.proc is not None
    client = oa(server)
    warm = client.files.create(file=("warm.bin", os.urandom(2 * MiB)), purpose="assistants")
    client.files.content(warm.id).read()
    size = 50 * MiB
    path = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        for _ in range(size // MiB):
            block = os.urandom(MiB)
            digest.update(block)
            fh.write(block)
    before = vm_hwm(server.proc.pid)
    with open(path, "rb") as fh:
        obj = client.files.create(file=fh, purpose="assistants")
    assert obj.bytes == size
    with httpx.stream("GET", f"{server.url}/v1/openai/v1/files/{obj.id}/content", timeout=120) as resp:
        got = hashlib.sha256()
        for chunk in resp.iter_bytes():
            got.update(chunk)
    assert got.hexdigest() == digest.hexdigest()
    grown = vm_hwm(server.proc.pid) - before
    assert grown < 16 * MiB, f"peak RSS grew by {grown / MiB:.1f} MiB for a {size // MiB} MiB file"


@pytest.mark.parametrize("metadata_store", ["sqlite"], indirect=True)
def test_killed_mid_upload_leaves_no_file(
    files_server: Callable[..., ServerProcess], storage_dir: Path
) -> None:
    server = files_server()
    assert server.proc is not None
    done = oa(server).files.create(file=("done.txt", b"complete"), purpose="assistants")

    boundary = "lamina-e2e-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="half.bin"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    declared = 64 * MiB
    request = (
        f"POST /v1/openai/v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(head) + declared + len(tail)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(request + head)
        partial_dir = storage_dir / ".partial"
        deadline = time.monotonic() + 30
        while True:  # send slowly until the server has written part of the file aside
            sock.sendall(b"\x07" * (256 * 1024))
            partial = list(partial_dir.iterdir())
            if partial and partial[0].stat().st_size >= MiB:
                break
            assert time.monotonic() < deadline, "the upload never reached the disk"
            time.sleep(0.01)
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
    assert stored_files(storage_dir)[1], "a partial upload is on disk after the kill"

    client = oa(files_server())
    assert [f.id for f in client.files.list()] == [done.id]
    assert stored_files(storage_dir) == ([done.id], [])
    assert client.files.content(done.id).content == b"complete"
