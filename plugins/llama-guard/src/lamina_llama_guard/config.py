"""The provider config (Llama Stack's ``LlamaGuardConfig`` plus Lamina's fields) and the shield params.

Every field has a default, so Llama Stack's ``config: {excluded_categories: []}`` validates. A
shield's ``params`` (at registration) and a run-shield call's ``params`` may set the same settings
as ``ShieldParams``; the call's win over the shield's, which win over the config's.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lamina_llama_guard.taxonomy import ALL_CODES, TAXONOMIES

TaxonomyName = Literal["llama-guard-1", "llama-guard-2", "llama-guard-3", "llama-guard-4"]


def normalise_codes(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    out: list[str] = []
    for code in value:
        code = str(code).strip().upper()
        if code and code not in out:
            out.append(code)
    return out


def _check_codes(codes: list[str] | None, taxonomy: str | None) -> None:
    """Codes must exist in the named taxonomy, or in some taxonomy when none is named."""
    if not codes:
        return
    valid = TAXONOMIES[taxonomy].codes if taxonomy else sorted(ALL_CODES, key=lambda c: (c[0], int(c[1:])))
    bad = [c for c in codes if c not in valid]
    if bad:
        where = f"{TAXONOMIES[taxonomy].title}'s" if taxonomy else "Llama Guard"
        raise ValueError(
            f"{', '.join(repr(c) for c in bad)} {'is' if len(bad) == 1 else 'are'} not {where} category "
            f"code{'' if len(bad) == 1 else 's'}; valid codes: {', '.join(valid)}"
        )


class _Settings(BaseModel):
    @field_validator("excluded_categories", mode="before", check_fields=False)
    @classmethod
    def _normalise(cls, value: object) -> object:
        if isinstance(value, str):  # "S1,S2" from an environment variable
            value = [v for v in value.replace(",", " ").split() if v]
        return normalise_codes(value) if isinstance(value, list) else value


class LlamaGuardConfig(_Settings):
    excluded_categories: list[str] = Field(
        default_factory=list,
        description="Category codes the guard ignores (left out of the prompt; a verdict naming only "
        "these is safe), e.g. ['S6', 'S8'].",
    )
    taxonomy: TaxonomyName | None = Field(
        default=None,
        description="The guard's taxonomy; unset: picked from the guard model's id (Llama Guard 3 for "
        "models that are no known Llama Guard).",
    )
    constrained_output: bool = Field(
        default=False,
        description="Ask for the verdict as JSON with a json_schema response_format, for general "
        "instruct models used as guards. Known Llama Guard models keep their plain format unless a "
        "shield's params set it.",
    )
    vision: bool | None = Field(
        default=None,
        description="Whether the guard reads images; unset: only Llama-Guard-3-11B-Vision does.",
    )
    max_tokens: int = Field(default=20, ge=1, le=4096, description="Answer budget of the plain format.")
    json_max_tokens: int = Field(
        default=64, ge=8, le=4096, description="Answer budget when constrained_output is on."
    )

    @model_validator(mode="after")
    def _known_codes(self) -> LlamaGuardConfig:
        _check_codes(self.excluded_categories, self.taxonomy)
        return self


class ShieldParams(_Settings):
    """What a shield's params (or a call's) may set; unknown keys are refused.

    Excluded codes are checked by the provider, against the taxonomy the shield ends up with.
    """

    model_config = ConfigDict(extra="forbid")

    excluded_categories: list[str] | None = None
    taxonomy: TaxonomyName | None = None
    constrained_output: bool | None = None
    vision: bool | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=4096)
