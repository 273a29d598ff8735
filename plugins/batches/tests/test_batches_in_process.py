"""The batches provider in process, on a real job manager (SQLite) and a real localfs files provider, with
a recording inference router in place of the real one: what these tests check (the work class each line's
call runs under, how many calls are in flight at once) is visible only inside the server process, never
to an upstream. The end-to-end tests (tests/e2e/test_batches.py) drive the real router and a real server.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lamina.apis.batches import BatchIdRequest, BatchObject, CreateBatchRequest
from lamina.apis.binary import UploadFile
from lamina.apis.files import UploadFileRequest
from lamina.jobs import JobManager, WorkApis, WorkEnvironment, jobs_store_config, open_jobs_store
from lamina.providers.base import ProviderContext
from lamina.request_context import WORK_CLASS
from lamina.specs import Api
from lamina_batches.config import ReferenceBatchesImplConfig
from lamina_batches.provider import ReferenceBatchesProvider
from lamina_localfs.config import LocalfsFilesImplConfig
from lamina_localfs.provider import LocalfsFilesImpl


class RecordingInference:
    """Answers every chat completion after a short wait; records the work class and what was in flight."""

    def __init__(self) -> None:
        self.classes: list[str] = []
        self.active: dict[str, int] = {}  # batch tag -> calls in flight
        self.peak_per_batch = 0
        self.batches_at_once = 0

    async def openai_chat_completion(self, request: Any) -> dict[str, Any]:
        self.classes.append(WORK_CLASS.get())
        tag = request.messages[0].content.split(":")[0]
        self.active[tag] = self.active.get(tag, 0) + 1
        self.peak_per_batch = max(self.peak_per_batch, self.active[tag])
        self.batches_at_once = max(self.batches_at_once, sum(1 for n in self.active.values() if n))
        try:
            await asyncio.sleep(0.002)
        finally:
            self.active[tag] -= 1
        message = {"role": "assistant", "content": f"re {request.messages[0].content}"}
        return {"id": "c", "object": "chat.completion", "choices": [{"index": 0, "message": message}]}


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[ReferenceBatchesProvider, LocalfsFilesImpl, Any]]:
    def context(api: Api, provider_type: str, jobs: Any = None) -> ProviderContext:
        return ProviderContext(api, api.value, provider_type, tmp_path / api.value, jobs=jobs)

    files_config = {
        "storage_dir": str(tmp_path / "files"),
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "f.db")},
    }
    files = LocalfsFilesImpl(
        LocalfsFilesImplConfig.model_validate(files_config), context(Api.files, "inline::localfs")
    )
    await files.initialize()
    store = await open_jobs_store(jobs_store_config(None, tmp_path / "jobs.db"))
    inference = RecordingInference()
    # The routers work items see (lamina.jobs.work): here the recording inference provider.
    work = WorkEnvironment(WorkApis({Api.inference: inference}, {Api.inference}))
    jobs = JobManager(store, poll_seconds=0.1, progress_interval=0.05, work=work)
    config = ReferenceBatchesImplConfig(
        kvstore={"type": "sqlite", "db_path": str(tmp_path / "batches.db")},
        max_concurrent_batches=1,
        max_concurrent_requests_per_batch=3,
    )
    deps = {Api.inference: inference, Api.files: files}
    provider = ReferenceBatchesProvider(config, deps, context(Api.batches, "inline::reference", jobs))
    await provider.initialize()
    await jobs.start()
    yield provider, files, inference
    await jobs.shutdown()
    await provider.shutdown()
    await files.shutdown()
    await store.close()


async def create(
    provider: ReferenceBatchesProvider, files: LocalfsFilesImpl, tag: str, n: int
) -> BatchObject:
    lines = [
        {
            "custom_id": f"{tag}{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "m", "messages": [{"role": "user", "content": f"{tag}:{i}"}]},
        }
        for i in range(n)
    ]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    upload = UploadFileRequest(purpose="batch", file=UploadFile.from_bytes(data, filename="in.jsonl"))
    file = await files.openai_upload_file(upload)
    request = CreateBatchRequest(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    return await provider.create_batch(request)


async def ended(provider: ReferenceBatchesProvider, batch_id: str) -> BatchObject:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        batch = await provider.retrieve_batch(BatchIdRequest(batch_id=batch_id))
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        await asyncio.sleep(0.02)
    raise AssertionError(f"batch {batch_id} did not end")


async def test_lines_are_batch_work_within_both_concurrency_limits(stack: Any) -> None:
    provider, files, inference = stack
    first = await create(provider, files, "A", 20)
    second = await create(provider, files, "B", 20)
    for batch in (await ended(provider, first.id), await ended(provider, second.id)):
        assert batch.status == "completed" and batch.request_counts.completed == 20
    assert inference.classes == ["batch"] * 40  # provider limits serve interactive calls first
    assert 1 < inference.peak_per_batch <= 3  # max_concurrent_requests_per_batch
    assert inference.batches_at_once == 1  # max_concurrent_batches
    assert provider.lines_sent == 40
