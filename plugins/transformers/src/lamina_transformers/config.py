"""The inline::transformers config."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class TransformersInferenceConfig(BaseModel):
    device: str = Field(default="cpu", description="cpu, or cuda / cuda:N when torch sees that device.")
    max_loaded_models: int = Field(
        default=2, ge=1, description="Checkpoints kept in memory; the least recently used one is dropped."
    )
    default_max_tokens: int = Field(
        default=256, ge=1, description="Tokens generated when a request sets no limit."
    )
    torch_threads: int | None = Field(
        default=None, ge=1, description="torch's intra-op threads (absent: default)."
    )
    trust_remote_code: bool = Field(default=False, description="Run code a checkpoint ships (off: never).")

    @classmethod
    def sample_run_config(cls, distro_dir: str) -> dict[str, Any]:
        return {"device": "cpu"}
