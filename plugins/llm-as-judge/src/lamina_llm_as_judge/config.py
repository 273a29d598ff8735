"""The inline::llm-as-judge provider's config (Llama Stack's LlmAsJudgeScoringConfig has no fields)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class LlmAsJudgeScoringConfig(BaseModel):
    max_concurrency: int = Field(
        default=4,
        ge=1,
        le=256,
        description="Judge calls in flight at once, over every score call of this provider (a local model "
        "serves one or two at a time; a hosted one many).",
    )
    max_tokens: int | None = Field(
        default=256,
        ge=1,
        description="Most tokens a judge answer may take (a score and a sentence of reasons); null: the "
        "model's default.",
    )
