"""The inline::basic provider's config: Llama Stack's BasicScoringConfig has no fields, nor does this."""

from __future__ import annotations

from pydantic import BaseModel


class BasicScoringConfig(BaseModel):
    pass
