"""Per-deployment file quotas (max_files, max_total_bytes): uploads over them get 409, nothing stored
is lost. Through a real ``lamina run`` driven by the OpenAI SDK, and in-process for concurrent uploads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from lamina.apis.binary import UploadFile
from lamina.apis.files import ListFilesRequest, UploadFileRequest
from lamina.errors import QuotaExceededError
from lamina.testing.processes import ServerProcess
from lamina_localfs.config import LocalfsFilesImplConfig

MiB = 1024 * 1024


def run_config(storage_dir: Path, metadata_store: dict[str, Any], **config: Any) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "files-quota",
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


def on_disk(storage_dir: Path) -> tuple[list[str], list[str]]:
    published = sorted(p.name for p in storage_dir.iterdir() if p.name.startswith("file-"))
    return published, sorted(p.name for p in (storage_dir / ".partial").iterdir())


def test_default_quotas_exist() -> None:
    config = LocalfsFilesImplConfig()
    assert config.max_total_bytes == 8 * 1024 * MiB and config.max_files == 10_000
    unlimited = LocalfsFilesImplConfig(max_total_bytes=None, max_files=None)
    assert unlimited.max_total_bytes is None and unlimited.max_files is None


@pytest.mark.e2e
def test_uploads_over_quota_get_409_through_the_openai_sdk(
    start_lamina: Callable[..., ServerProcess], tmp_path: Path, metadata_store: dict[str, Any]
) -> None:
    storage = tmp_path / "files"
    server = start_lamina(run_config(storage, metadata_store, max_files=3, max_total_bytes=1000))
    client = OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=60)
    a = client.files.create(file=("a.txt", b"a" * 400), purpose="assistants")
    b = client.files.create(file=("b.txt", b"b" * 400), purpose="assistants")

    with pytest.raises(openai.ConflictError) as info:
        client.files.create(file=("c.txt", b"c" * 300), purpose="assistants")
    message = info.value.body["message"] if isinstance(info.value.body, dict) else str(info.value)
    assert "max_total_bytes" in message and "'localfs'" in message and "'c.txt'" in message
    assert info.value.body["type"] == "quota_exceeded" and info.value.body["param"] == "file"
    assert sorted(on_disk(storage)[0]) == sorted([a.id, b.id]) and on_disk(storage)[1] == []

    c = client.files.create(file=("c.txt", b"c" * 200), purpose="assistants")  # exactly 1000 bytes
    with pytest.raises(openai.ConflictError) as info:
        client.files.create(file=("d.txt", b"d"), purpose="assistants")
    assert "max_files" in info.value.body["message"] and "3 files" in info.value.body["message"]

    client.files.delete(a.id)  # room again
    d = client.files.create(file=("d.txt", b"d"), purpose="assistants")
    assert {f.id for f in client.files.list()} == {b.id, c.id, d.id}
    server.stop()

    # Lower quotas than what is stored: every stored file stays listed and readable; new uploads wait.
    server = start_lamina(run_config(storage, metadata_store, max_files=1, max_total_bytes=100))
    client = OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=60)
    assert {f.id for f in client.files.list()} == {b.id, c.id, d.id}
    assert client.files.content(b.id).content == b"b" * 400
    with pytest.raises(openai.ConflictError):
        client.files.create(file=("e.txt", b"e"), purpose="assistants")
    assert {f.id for f in client.files.list()} == {b.id, c.id, d.id}


@pytest.mark.e2e
def test_a_streamed_upload_is_stopped_when_it_crosses_the_byte_quota(
    start_lamina: Callable[..., ServerProcess], tmp_path: Path, metadata_store: dict[str, Any]
) -> None:
    storage = tmp_path / "files"
    server = start_lamina(run_config(storage, metadata_store, max_total_bytes=MiB))
    client = OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=60)
    with pytest.raises(openai.ConflictError) as info:
        client.files.create(file=("big.bin", b"x" * (3 * MiB)), purpose="assistants")
    assert "received so far" in info.value.body["message"]
    assert on_disk(storage) == ([], [])
    assert client.files.create(file=("ok.bin", b"x" * (MiB // 2)), purpose="assistants").bytes == MiB // 2


def _upload(data: bytes, name: str) -> UploadFileRequest:
    return UploadFileRequest(file=UploadFile.from_bytes(data, filename=name, chunk=100), purpose="assistants")


async def test_concurrent_uploads_never_overshoot_the_quota(make_provider: Callable[..., Any]) -> None:
    provider = await make_provider(max_total_bytes=1000, max_files=None)
    started = asyncio.Event()

    async def slow(data: bytes) -> AsyncIterator[bytes]:
        for i in range(0, len(data), 100):
            if i == 300:
                started.set()
            await asyncio.sleep(0.001)
            yield data[i : i + 100]

    async def upload(name: str) -> Any:
        request = UploadFileRequest(file=UploadFile(slow(b"z" * 600), filename=name), purpose="assistants")
        return await provider.openai_upload_file(request)

    results = await asyncio.gather(*(upload(f"{i}.bin") for i in range(4)), return_exceptions=True)
    stored = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, QuotaExceededError)]
    assert len(stored) == 1 and len(refused) == 3, results
    listed = (await provider.openai_list_files(ListFilesRequest())).data
    assert sum(f.bytes for f in listed) == 600
    assert sorted(p.name for p in provider.partial_dir.iterdir()) == []
