"""``server.quota``: Llama Stack 0.2.12's ``QuotaConfig`` (kvstore, anonymous_max_requests,
authenticated_max_requests, period), so its run configs run unchanged, with Lamina's additions beside
its keys: more periods, ``max_concurrent_requests`` and ``token_budgets``."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lamina.storage.config import KVStoreConfig


class QuotaPeriod(StrEnum):
    minute = "minute"
    hour = "hour"
    day = "day"

    @property
    def seconds(self) -> int:
        return {"minute": 60, "hour": 3600, "day": 86400}[self.value]


# Health checks and the version stay answerable whatever a client has spent (load balancers call them).
DEFAULT_EXEMPT_PATHS = ("/v1/health", "/v1/health/ready", "/v1/version")


class QuotaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kvstore: KVStoreConfig = Field(
        description="Where requests are counted (type: sqlite with db_path, or type: postgres); replicas "
        "sharing one store share every client's count."
    )
    anonymous_max_requests: int = Field(
        default=100,
        ge=1,
        description="Requests per period from a client without a principal (counted per client address).",
    )
    authenticated_max_requests: int = Field(
        default=1000, ge=1, description="Requests per period from one authenticated principal."
    )
    period: QuotaPeriod = Field(
        default=QuotaPeriod.day,
        description="The counting window: minute, hour or day (Llama Stack 0.2.12 has day only). Windows "
        "are aligned to the clock (a day starts at 00:00 UTC); a refused request's Retry-After is the "
        "seconds to the window's end.",
    )
    max_concurrent_requests: int | None = Field(
        default=None,
        ge=1,
        description="Lamina: requests one client may have in flight at once in one server process (a "
        "stream counts until it ends); more are refused with 429. Unset: no limit.",
    )
    token_budgets: dict[str, int] = Field(
        default_factory=dict,
        description="Lamina: inference tokens (prompt + completion, from each answer's usage) one client "
        "may spend per period, per model id; the key '*' applies to every model without its own entry. "
        "A request for a model whose budget is spent is refused with 429.",
    )
    exempt_paths: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EXEMPT_PATHS),
        description="Paths never counted nor limited.",
    )

    @field_validator("token_budgets")
    @classmethod
    def _budgets(cls, value: dict[str, int]) -> dict[str, int]:
        for model, tokens in value.items():
            if not isinstance(tokens, int) or tokens < 1:
                raise ValueError(f"token_budgets[{model!r}] must be a whole number of tokens, at least 1")
        return value
