"""The provider config: Llama Stack's ``ReferenceBatchesImplConfig`` fields, and Lamina's knobs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from lamina.storage.config import KVStoreConfig


class ReferenceBatchesImplConfig(BaseModel):
    kvstore: KVStoreConfig | None = Field(
        default=None,
        description="Where batches and their finished lines are kept (absent: <state_dir>/batches.db).",
    )
    max_concurrent_batches: int = Field(
        default=1, ge=1, le=1000, description="Batches running at once in one server process."
    )
    max_concurrent_requests_per_batch: int = Field(
        default=10, ge=1, le=1000, description="Lines of one batch in flight at once."
    )
    completion_window_seconds: int = Field(
        default=24 * 3600,
        ge=1,
        description="How long a batch's `24h` completion window lasts here: a batch not done by then ends "
        "`expired` with the lines it finished (a deployment may want batches to end sooner).",
    )
    max_lines: int = Field(
        default=50_000, ge=1, description="Request lines one input file may hold (OpenAI's limit: 50,000)."
    )

    @classmethod
    def sample_run_config(cls, distro_dir: str) -> dict[str, Any]:
        return {"kvstore": {"type": "sqlite", "db_path": f"{distro_dir}/batches.db"}}
