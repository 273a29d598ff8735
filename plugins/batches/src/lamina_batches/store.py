"""What the provider keeps in its kvstore: each batch, and each finished line of a running batch.

- ``batch:<batch id>``: ``{"batch": <OpenAI batch object>, "job_id": <the job running it>, "created":
  <time.time() at creation: orders batches created within one second>, "provider_data": <the create
  request's X-LlamaStack-Provider-Data, until the batch ends>}``
- ``line:<batch id>:<index, 8 digits>``: ``{"ok": bool, "out": <the output or error file line>}``,
  written the moment the line's request finished: a resumed batch reads them and sends only the rest.
  The keys sort in input order, which is the order of the output and error files. They expire
  ``LINES_KEPT_SECONDS`` after the batch's window: by then the batch has ended and its files hold them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lamina.apis.batches import BatchObject
from lamina.storage.kvstore import KVStore, prefix_end

_BATCH = "batch:"
_LINE = "line:"
LINES_KEPT_SECONDS = 30 * 24 * 3600


@dataclass
class BatchRecord:
    batch: BatchObject
    job_id: str | None = None
    created: float = field(default_factory=time.time)
    # The X-LlamaStack-Provider-Data of the create request (a caller's upstream keys): its lines run with
    # it. Never shown; dropped when the batch ends.
    provider_data: dict[str, Any] | None = None

    def dumps(self) -> str:
        doc = {
            "batch": self.batch.model_dump(mode="json"),
            "job_id": self.job_id,
            "created": self.created,
            "provider_data": self.provider_data,
        }
        return json.dumps(doc)

    @classmethod
    def loads(cls, raw: str) -> BatchRecord:
        doc = json.loads(raw)
        batch = BatchObject.model_validate(doc["batch"])
        created = doc.get("created", float(batch.created_at))
        return cls(batch, doc.get("job_id"), created, doc.get("provider_data"))


@dataclass(frozen=True)
class LineResult:
    index: int
    ok: bool
    out: dict[str, Any]


class BatchStore:
    def __init__(self, kv: KVStore) -> None:
        self.kv = kv

    async def get(self, batch_id: str) -> BatchRecord | None:
        raw = await self.kv.get(_BATCH + batch_id)
        return BatchRecord.loads(raw) if raw is not None else None

    async def put(self, record: BatchRecord) -> None:
        await self.kv.set(_BATCH + record.batch.id, record.dumps())

    async def all(self) -> list[BatchRecord]:
        return [BatchRecord.loads(raw) for raw in await self.kv.values_in_range(_BATCH, prefix_end(_BATCH))]

    async def put_line(self, batch_id: str, result: LineResult, window_end: int | None = None) -> None:
        value = json.dumps({"ok": result.ok, "out": result.out})
        until = (
            datetime.fromtimestamp(window_end + LINES_KEPT_SECONDS, UTC) if window_end is not None else None
        )
        await self.kv.set(f"{_LINE}{batch_id}:{result.index:08d}", value, expiration=until)

    async def lines(self, batch_id: str) -> list[LineResult]:
        """The batch's finished lines, in input order."""
        prefix = f"{_LINE}{batch_id}:"
        out = []
        for key, raw in await self.kv.items_in_range(prefix, prefix_end(prefix)):
            doc = json.loads(raw)
            out.append(LineResult(int(key.rsplit(":", 1)[1]), doc["ok"], doc["out"]))
        return out
