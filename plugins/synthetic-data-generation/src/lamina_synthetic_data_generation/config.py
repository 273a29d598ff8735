"""The provider config: which models answer and judge, and the filtering functions' numbers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

DEFAULT_JUDGE_PROMPT = """You are grading an answer to a question.

Question: {input_query}

Answer: {generated_answer}

Rate how correct, helpful and well written the answer is on a scale from 1 (useless) to 5 (excellent).
Reply with one line of the form "Score: N" and nothing else."""


class ReferenceSyntheticDataGenerationConfig(BaseModel):
    model: str | None = Field(
        default=None, description="The registered model that answers when a request names none."
    )
    judge_model: str | None = Field(
        default=None, description="The registered model that judges (default: the answering model)."
    )
    judge_scoring_fn: str = Field(
        default="llm-as-judge::base",
        description="The llm-as-judge scoring function the judge runs as (the Scoring API).",
    )
    judge_prompt_template: str = Field(
        default=DEFAULT_JUDGE_PROMPT,
        description="The judge prompt: {input_query} (the prompt) and {generated_answer} (the candidate).",
    )
    judge_score_regexes: list[str] = Field(
        default_factory=lambda: [r"Score:\s*(-?\d+(?:\.\d+)?)"],
        min_length=1,
        description="Regexes whose first group is the score in the judge's answer (the first that matches).",
    )
    num_candidates: int = Field(default=4, ge=1, le=32, description="Answers generated per prompt.")
    temperature: float = Field(default=0.8, ge=0.0, le=2.0, description="Sampling temperature of candidates.")
    max_tokens: int = Field(default=512, ge=1, description="Most tokens one candidate may have.")
    top_k: int = Field(default=1, ge=1, description="top_k and top_k_top_p keep this many per prompt.")
    top_p: float = Field(
        default=0.9,
        gt=0.0,
        le=1.0,
        description="top_p keeps, per prompt, the best candidates whose share of the prompt's total score "
        "first reaches this.",
    )
    random_keep: float = Field(
        default=0.5, ge=0.0, le=1.0, description="random keeps each candidate with this probability."
    )
    sigmoid_center: float = Field(
        default=3.0,
        description="sigmoid keeps a candidate with probability sigmoid((score - center) / scale).",
    )
    sigmoid_scale: float = Field(default=1.0, gt=0.0, description="See sigmoid_center.")
    seed: int = Field(
        default=0, description="Seed of the random and sigmoid filters (and of the candidates' sampling)."
    )
    max_concurrent: int = Field(default=8, ge=1, le=256, description="Model calls in flight at once.")
    max_inline_candidates: int = Field(
        default=64,
        ge=1,
        description="The most candidates (prompts x num_candidates) /generate answers in one request; "
        "larger generations go to /v1/synthetic-data-generation/jobs.",
    )

    @classmethod
    def sample_run_config(cls, distro_dir: str) -> dict[str, Any]:
        return {}
