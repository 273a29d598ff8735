"""The provider config: Llama Stack 0.2.x's ``MetaReferenceEvalConfig`` (``kvstore``) and Lamina's knobs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from lamina.storage.config import KVStoreConfig


class MetaReferenceEvalConfig(BaseModel):
    kvstore: KVStoreConfig | None = Field(
        default=None,
        description="Where eval job ids, generations and scores are kept (absent: "
        "<state_dir>/eval_store.db).",
    )
    max_concurrency: int = Field(
        default=4,
        ge=1,
        le=256,
        description="Rows generated at once within one eval (a local model serves one or two at a time; a "
        "hosted one many).",
    )
    chunk_rows: int = Field(
        default=16,
        ge=1,
        le=10_000,
        description="Rows read, generated and saved together in a run_eval job: the checkpoint advances a "
        "chunk at a time; after a crash only the chunks in flight (1 + max_concurrency / chunk_rows of "
        "them) are generated again.",
    )
    run_eval_wait_seconds: float = Field(
        default=50.0,
        ge=0,
        le=3600,
        description="How long run_eval waits for its job to end before answering (Llama Stack answers a "
        "finished job; a longer eval answers in_progress and is polled). 0: answer at once.",
    )

    @classmethod
    def sample_run_config(cls, distro_dir: str) -> dict[str, Any]:
        return {"kvstore": {"type": "sqlite", "db_path": f"{distro_dir}/meta_reference_eval.db"}}
