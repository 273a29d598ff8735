"""The ``limits`` of a run config's provider entry: what one provider, and each of its models, may take.

They sit beside Llama Stack's ``provider_id``/``provider_type``/``config`` (Llama Stack ignores the key),
so the provider's own ``config`` stays Llama Stack's. docs/limits.md explains them.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Limit(BaseModel):
    """Limits of one scope: a provider, or one model (resource) of it. Unset: no limit."""

    model_config = ConfigDict(extra="forbid")

    max_concurrent: int | None = Field(
        default=None, ge=1, description="Calls in flight at once (a stream holds its slot until it ends)."
    )
    requests_per_minute: int | None = Field(
        default=None, ge=1, description="Calls started in any 60 seconds."
    )
    tokens_per_minute: int | None = Field(
        default=None,
        ge=1,
        description="Inference tokens (prompt and completion) in any 60 seconds: a call counts its prompt "
        "(about 4 characters a token) and its max_tokens when it starts, then what its answer's usage says.",
    )
    batch_max_share: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="The share of each limit background (batch) work may use, keeping the rest for "
        "interactive calls; unset: all of it (interactive calls still go first). A model without its own "
        "takes the provider's.",
    )

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, value: Any) -> Any:
        # pydantic's "Extra inputs are not permitted" would not say what the settings are.
        if isinstance(value, dict):
            known = sorted(cls.model_fields)
            for key in value:
                if key not in cls.model_fields:
                    close = difflib.get_close_matches(str(key), known, n=1)
                    hint = f"did you mean '{close[0]}'? " if close else ""
                    raise ValueError(f"unknown setting '{key}'; {hint}the settings are: {', '.join(known)}")
        return value

    def is_set(self) -> bool:
        return any(
            v is not None for v in (self.max_concurrent, self.requests_per_minute, self.tokens_per_minute)
        )


class ProviderLimits(Limit):
    """``providers.<api>[i].limits``: the provider's own limits, its models' and how long a call may wait."""

    max_queue_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="How long an interactive call waits for a slot before it fails with 429 and Retry-After.",
    )
    batch_max_queue_seconds: float | None = Field(
        default=None,
        ge=0,
        description="The same for background (batch) calls; unset: they wait as long as it takes (their job "
        "bounds how many wait, and cancelling the job cancels them).",
    )
    models: dict[str, Limit] = Field(
        default_factory=dict,
        description="Limits per model id (per resource id for other APIs: shield, vector DB, tool group), "
        "on top of the provider's.",
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_models(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("models") is None and "models" in value:
            value = {**value, "models": {}}  # `models:` with nothing under it
        return value

    def counts_tokens(self) -> bool:
        return self.tokens_per_minute is not None or any(
            m.tokens_per_minute is not None for m in self.models.values()
        )
