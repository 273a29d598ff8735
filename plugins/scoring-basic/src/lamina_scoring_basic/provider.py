"""The inline::basic scoring provider: scoring functions that need no model, scored on plain dicts.

A function registered with this provider names one of ``FUNCTIONS`` as its ``provider_scoring_fn_id``
(the built-ins do; a user may register another id on the same scorer with other params, say other
regexes or aggregations). Small pages score on the event loop (equality costs well under a
microsecond a row); pages of the regex and math functions over ``OFFLOAD_ROWS`` rows go to a thread,
and ifeval always does (language detection costs a millisecond or more a row, and its first call
loads nltk and langdetect's profiles).
"""

from __future__ import annotations

import asyncio
from typing import Any

from lamina.apis.scoring import ScoringFn
from lamina.errors import BadRequestError
from lamina.providers import ProviderBase, ProviderContext
from lamina_scoring_basic.config import BasicScoringConfig
from lamina_scoring_basic.functions import FUNCTIONS, equality, ifeval, subset_of

OFFLOAD_ROWS = 500
_INLINE = (equality, subset_of)  # cheap enough never to leave the loop
_THREAD = (ifeval,)  # too slow a row for the loop, however small the page


async def create_provider(
    config: BasicScoringConfig, deps: dict[Any, Any], context: ProviderContext
) -> BasicScoringProvider:
    return BasicScoringProvider(config, context)


class BasicScoringProvider(ProviderBase):
    def __init__(self, config: BasicScoringConfig, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config

    def _function(self, fn: ScoringFn) -> tuple[Any, tuple[str, ...]]:
        entry = FUNCTIONS.get(fn.provider_scoring_fn_id)
        if entry is None:
            raise BadRequestError(
                f"scoring function '{fn.identifier}': provider_scoring_fn_id '{fn.provider_scoring_fn_id}' "
                f"is not an {self.context.provider_type} function; use one of {', '.join(FUNCTIONS)}",
                param="provider_scoring_fn_id",
            )
        return entry[0], entry[1]

    def _check_params(self, fn: ScoringFn, params: Any, kinds: tuple[str, ...], where: str) -> None:
        if params is not None and params.type not in kinds:
            raise BadRequestError(
                f"scoring function '{fn.identifier}' takes params of type {' or '.join(kinds)}, not "
                f'\'{params.type}\'; send {{"type": "{kinds[0]}", ...}} or null',
                param=where,
            )

    async def register_scoring_function(self, fn: ScoringFn) -> None:
        _, kinds = self._function(fn)
        self._check_params(fn, fn.params, kinds, "params")

    async def score_rows(
        self, fn: ScoringFn, rows: list[dict[str, Any]], params: Any
    ) -> list[dict[str, Any]]:
        scorer, kinds = self._function(fn)
        self._check_params(fn, params, kinds, f"scoring_functions.{fn.identifier}")
        if scorer in _INLINE or (len(rows) <= OFFLOAD_ROWS and scorer not in _THREAD):
            return scorer(rows, fn, params)
        return await asyncio.to_thread(scorer, rows, fn, params)
