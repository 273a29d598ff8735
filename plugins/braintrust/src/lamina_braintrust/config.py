"""The inline::braintrust provider's config: Llama Stack's ``openai_api_key``, and which models judge."""

from __future__ import annotations

from pydantic import BaseModel, Field


class BraintrustScoringConfig(BaseModel):
    openai_api_key: str | None = Field(
        default=None,
        description="Llama Stack's key for OpenAI. Accepted, and sent as the bearer token when base_url "
        "points elsewhere; Lamina's own routes need none.",
    )
    judge_model: str | None = Field(
        default=None,
        description="The registered llm model that judges (any model this server serves); the LLM "
        "scorers answer 400 naming this key while it is unset.",
    )
    embedding_model: str | None = Field(
        default=None,
        description="The registered embedding model for the scorers that compare embeddings "
        "(answer-similarity, answer-correctness, answer-relevancy, context-entity-recall).",
    )
    base_url: str | None = Field(
        default=None,
        description="The OpenAI-compatible endpoint autoevals calls; unset: this server's own "
        "/v1/openai/v1 (so the judge is one of its models).",
    )
    max_concurrency: int = Field(default=4, ge=1, le=256, description="Rows judged at once.")
    timeout: float = Field(default=120.0, gt=0, description="Seconds one judge or embedding call may take.")


class BraintrustProviderData(BaseModel):
    """What this provider reads from the X-LlamaStack-Provider-Data header (Llama Stack's validator)."""

    openai_api_key: str | None = None
