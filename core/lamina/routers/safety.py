"""The safety router: run-shield and OpenAI moderations, each handed to the shield's provider.

Moderations are built from shields: ``model`` names a shield (its id or its provider_shield_id);
without it the run config's default runs (``safety.default_shield_id``, else the first shield under
``shields:``; see ``ShieldsRoutingTable.for_moderation``). Each input text is judged on its own,
and the result's categories come from the violation's ``metadata.categories`` (see
``lamina.apis.safety.SafetyProvider``). A provider that implements ``run_moderation`` answers all the
texts itself (a classifier that scores safe texts too).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import structlog

from lamina.apis.inference import UserMessage
from lamina.apis.safety import (
    MAX_MODERATION_INPUTS,
    OPENAI_MODERATION_CATEGORIES,
    ModerationImageInput,
    ModerationObject,
    ModerationRequest,
    ModerationResult,
    RunShieldRequest,
    RunShieldResponse,
    SafetyViolation,
    Shield,
)
from lamina.errors import BadRequestError, UpstreamError
from lamina.resources.shields import ShieldsRoutingTable

log = structlog.get_logger(__name__)

MODERATION_CONCURRENCY = 8  # shield runs in flight per moderation request
FLAGGING_LEVELS = ("warn", "error")  # an info-level violation is reported, not flagged


class SafetyRouter:
    def __init__(
        self,
        shields: ShieldsRoutingTable,
        *,
        concurrency: int = MODERATION_CONCURRENCY,
        default_shield_id: str | None = None,
    ) -> None:
        self.shields = shields
        self.concurrency = concurrency
        self.default_shield_id = default_shield_id  # moderations without `model` (lamina.config)

    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse:
        shield, provider = await self.shields.resolve(request.shield_id)
        params = {**(shield.params or {}), **request.params}
        started = time.perf_counter()
        response = await provider.run_shield(shield, request.messages, params)
        violation = response.violation
        log.info(
            "shield_run",
            shield_id=shield.identifier,
            provider_id=shield.provider_id,
            violation=violation.violation_level if violation else None,
            violation_type=violation.metadata.get("violation_type") if violation else None,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return response

    async def run_moderation(self, request: ModerationRequest) -> ModerationObject:
        texts = _input_texts(request.input)
        shield = await self.shields.for_moderation(request.model, default=self.default_shield_id)
        shield, provider = await self.shields.resolve(shield.identifier)
        params = dict(shield.params or {})
        if callable(getattr(provider, "run_moderation", None)):
            results = await provider.run_moderation(shield, texts, params)
            if len(results) != len(texts):
                raise UpstreamError(
                    shield.provider_id,
                    f"run_moderation returned {len(results)} results for {len(texts)} inputs",
                )
            results = [complete_result(r) for r in results]
        else:
            results = await self._moderate_each(shield, provider, texts, params)
        log.info(
            "moderation_run",
            shield_id=shield.identifier,
            inputs=len(texts),
            flagged=sum(r.flagged for r in results),
        )
        return ModerationObject(
            id=f"modr-{uuid.uuid4().hex}", model=request.model or shield.identifier, results=results
        )

    async def _moderate_each(
        self, shield: Shield, provider: Any, texts: list[str], params: dict[str, Any]
    ) -> list[ModerationResult]:
        gate = asyncio.Semaphore(self.concurrency)

        async def one(i: int, text: str) -> ModerationResult:
            async with gate:
                try:
                    response = await provider.run_shield(shield, [UserMessage(content=text)], params)
                except BadRequestError as exc:  # the provider names messages[0]: the client sent input[i]
                    raise BadRequestError(f"input[{i}]: {exc.message}", param=f"input[{i}]") from None
            return result_from_violation(response.violation)

        # A TaskGroup: the first failure cancels the texts still waiting (no work nobody will read).
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(i, t)) for i, t in enumerate(texts)]
        except BaseExceptionGroup as eg:
            raise eg.exceptions[0] from None
        return [task.result() for task in tasks]


def _input_texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not value:
        raise BadRequestError("input is an empty list: send a text or a list of texts", param="input")
    if len(value) > MAX_MODERATION_INPUTS:
        raise BadRequestError(
            f"input has {len(value)} items; at most {MAX_MODERATION_INPUTS} per request: split it",
            param="input",
        )
    texts = []
    for i, item in enumerate(value):
        if isinstance(item, ModerationImageInput):
            raise BadRequestError(
                f"input[{i}] is an image: moderations here run shields over text; send text inputs "
                f"(run a vision guard through POST /v1/safety/run-shield for images)",
                param=f"input[{i}]",
            )
        texts.append(item if isinstance(item, str) else item.text)
    return texts


def result_from_violation(violation: SafetyViolation | None) -> ModerationResult:
    """A moderation result from a shield's verdict: flagged when the level is warn or error, and then
    its ``metadata.categories`` are set (score from ``metadata.category_scores``, else 1.0)."""
    if violation is None:
        return complete_result(
            ModerationResult(
                flagged=False, categories={}, category_scores={}, category_applied_input_types={}
            )
        )
    meta = violation.metadata
    flagged = violation.violation_level in FLAGGING_LEVELS
    # An info-level violation is reported in metadata only: a category set means flagged, as in OpenAI's.
    names = [str(c) for c in meta.get("categories") or []] if flagged else []
    scores = meta.get("category_scores") or {}
    return complete_result(
        ModerationResult(
            flagged=flagged,
            categories=dict.fromkeys(names, True),
            category_scores={c: float(scores.get(c, 1.0)) for c in names},
            category_applied_input_types={c: ["text"] for c in names},
            user_message=violation.user_message,
            metadata={**meta, "violation_level": violation.violation_level},
        )
    )


def complete_result(result: ModerationResult) -> ModerationResult:
    """Every OpenAI category present (False / 0.0 / []), beside the shield's own extra ones."""
    categories = dict.fromkeys(OPENAI_MODERATION_CATEGORIES, False) | result.categories
    scores = dict.fromkeys(OPENAI_MODERATION_CATEGORIES, 0.0) | result.category_scores
    applied = {c: [] for c in OPENAI_MODERATION_CATEGORIES} | result.category_applied_input_types
    for name in categories:
        scores.setdefault(name, 1.0 if categories[name] else 0.0)
        applied.setdefault(name, ["text"] if categories[name] else [])
    return result.model_copy(
        update={"categories": categories, "category_scores": scores, "category_applied_input_types": applied}
    )
