"""inline::prompt-guard: prompt-injection and jailbreak detection with jailguard, in a worker process.

A text is scored by jailguard (a MiniLM embedding and a small MLP; a score in [0, 1]) as a whole and,
when it is long enough, window by window (``windows.py``); its score is the highest. A shield flags
when that score reaches the threshold. jailguard runs in worker process(es) of this provider
(``worker.py`` says why), fed by a batcher that coalesces the texts of concurrent requests.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import structlog

from lamina.apis.common import content_to_text
from lamina.apis.inference import Message
from lamina.apis.safety import (
    OPENAI_MODERATION_CATEGORIES,
    ModerationResult,
    RunShieldResponse,
    SafetyViolation,
    Shield,
)
from lamina.errors import BadRequestError, ServiceUnavailableError, UpstreamError
from lamina.providers import ProviderBase, ProviderContext
from lamina_prompt_guard.batcher import Batcher
from lamina_prompt_guard.config import PromptGuardConfig, Scope
from lamina_prompt_guard.engine import ModelFilesError, resolve_model_dir
from lamina_prompt_guard.windows import windows
from lamina_prompt_guard.worker_process import Scored, WorkerError, WorkerProcess

log = structlog.get_logger(__name__)

#: provider_shield_id values served: Llama Stack's (its only one) and Lamina's own name.
LLAMA_STACK_SHIELD_ID = "Prompt-Guard-86M"
SHIELD_IDS = (LLAMA_STACK_SHIELD_ID, "jailguard")
USER_MESSAGE = "Sorry, I cannot do this."
CATEGORY = {"injection": "prompt_injection", "jailbreak": "jailbreak"}
PARAM_KEYS = ("threshold", "scope")


async def create_provider(
    config: PromptGuardConfig, deps: dict, context: ProviderContext
) -> PromptGuardProvider:
    return PromptGuardProvider(config, context)


@dataclass
class _Options:
    threshold: float
    scope: Scope


@dataclass
class _Verdict:
    score: float
    risk: str
    window_start: int


class PromptGuardProvider(ProviderBase):
    def __init__(self, config: PromptGuardConfig, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        self.category = CATEGORY[config.guard_type]
        self.workers: list[WorkerProcess] = []
        self.batcher: Batcher | None = None
        self.model_dir_source: str | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def initialize(self) -> None:
        started = time.perf_counter()
        try:
            model_dir, source = await asyncio.to_thread(
                resolve_model_dir, self.config.model_dir, self.context.state_dir
            )
        except ModelFilesError as exc:
            raise RuntimeError(f"provider '{self.provider_id}' (inline::prompt-guard): {exc}") from None
        self.model_dir_source = source
        workers = [
            WorkerProcess(
                model_dir,
                batch=self.config.use_detect_batch,
                name=f"{self.provider_id}-{i}",
                start_timeout=self.config.startup_timeout,
                request_timeout=self.config.request_timeout,
            )
            for i in range(self.config.workers)
        ]
        try:
            infos = await asyncio.gather(*(w.start() for w in workers))
        except WorkerError as exc:
            await asyncio.gather(*(w.close() for w in workers), return_exceptions=True)
            raise RuntimeError(f"provider '{self.provider_id}' (inline::prompt-guard): {exc}") from None
        self.workers = workers
        self.batcher = Batcher(workers, max_batch_size=self.config.max_batch_size)
        self.batcher.start()
        log.info(
            "prompt_guard_loaded",
            provider_id=self.provider_id,
            jailguard=infos[0].get("jailguard"),
            model_dir=str(model_dir),
            model_dir_source=source,
            workers=len(workers),
            guard_type=self.config.guard_type,
            threshold=self.config.threshold,
            seconds=round(time.perf_counter() - started, 3),
        )

    async def shutdown(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()
            self.batcher = None
        await asyncio.gather(*(w.close() for w in self.workers), return_exceptions=True)
        self.workers = []

    async def health(self) -> dict[str, Any]:
        if self.batcher is None or not self.workers:
            return {"status": "Error", "message": "the jailguard model is not loaded"}
        if not any(w.alive for w in self.workers):
            return {
                "status": "Error",
                "message": "the jailguard worker process is down (it restarts on the next call)",
            }
        return {"status": "OK"}

    def _batcher(self) -> Batcher:
        if self.batcher is None:
            raise ServiceUnavailableError(f"provider '{self.provider_id}': the jailguard model is not loaded")
        return self.batcher

    # -- shields -------------------------------------------------------------------------------

    async def register_shield(self, shield: Shield) -> None:
        if shield.provider_shield_id not in SHIELD_IDS:
            raise BadRequestError(
                f"provider '{self.provider_id}' (inline::prompt-guard) serves the shields "
                f"{', '.join(repr(s) for s in SHIELD_IDS)} (one jailguard classifier, either name), not "
                f"{shield.provider_shield_id!r}. Set provider_shield_id to one of them.",
                param="provider_shield_id",
            )
        self._options(shield.params or {}, {})

    async def unregister_shield(self, shield: Shield) -> None:
        return None

    def _options(self, registered: dict[str, Any], call: dict[str, Any]) -> _Options:
        """The config's settings, overlaid by the shield's params, overlaid by the call's."""
        threshold, scope = self.config.threshold, self.config.scope
        for params in (registered, call):
            unknown = sorted(set(params) - set(PARAM_KEYS))
            if unknown:
                raise BadRequestError(
                    f"params.{unknown[0]} is not a setting of inline::prompt-guard shields; the settings are "
                    f"{', '.join(PARAM_KEYS)}. Remove it.",
                    param=f"params.{unknown[0]}",
                )
            if "threshold" in params:
                value = params["threshold"]
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                    raise BadRequestError(
                        f"params.threshold must be a number from 0 to 1 (a text is flagged when its score "
                        f"reaches it), not {value!r}",
                        param="params.threshold",
                    )
                threshold = float(value)
            if "scope" in params:
                if params["scope"] not in ("last", "all"):
                    raise BadRequestError(
                        f"params.scope must be 'last' (the last message) or 'all' (every message), "
                        f"not {params['scope']!r}",
                        param="params.scope",
                    )
                scope = params["scope"]
        return _Options(threshold, scope)

    # -- scoring -------------------------------------------------------------------------------

    async def _judge(self, texts: list[str]) -> list[_Verdict]:
        """Each text's verdict: the highest score of its pieces (0.0 'safe' for a blank text)."""
        cfg = self.config
        pieces = [
            windows(
                text,
                enabled=cfg.windows,
                min_chars=cfg.window_min_chars,
                max_chars=cfg.window_max_chars,
                text_min_chars=cfg.window_text_min_chars,
                max_windows=cfg.window_max_count,
            )
            for text in texts
        ]
        flat = [w.text for ws in pieces for w in ws]
        try:
            scored = await self._batcher().score(flat)
        except WorkerError as exc:
            raise UpstreamError(self.provider_id, str(exc)) from None
        verdicts: list[_Verdict] = []
        pos = 0
        for ws in pieces:
            best: tuple[Scored, int] | None = None
            for window, result in zip(ws, scored[pos : pos + len(ws)], strict=True):
                if best is None or result.score > best[0].score:
                    best = (result, window.start)
            pos += len(ws)
            if best is None:
                verdicts.append(_Verdict(0.0, "safe", 0))
            else:
                verdicts.append(_Verdict(best[0].score, best[0].risk, best[1]))
        return verdicts

    def _check_length(self, text: str, field: str) -> None:
        """Refuse what cannot be judged whole: too long, or not encodable as UTF-8 (a lone surrogate,
        which would fail the whole batch it is coalesced into, other clients' texts included)."""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BadRequestError(
                f"{field} holds a character that is not valid Unicode text at position {exc.start} (a lone "
                f"surrogate such as \\ud800); send valid UTF-8 text",
                param=field,
            ) from None
        if len(text) > self.config.max_chars:
            raise BadRequestError(
                f"{field} has {len(text)} characters; this prompt-guard shield judges at most "
                f"{self.config.max_chars} (max_chars) and does not judge part of a text. Split it into "
                f"several calls, or raise max_chars in the provider config.",
                param=field,
            )

    def _metadata(self, verdict: _Verdict, threshold: float) -> dict[str, Any]:
        return {
            "violation_type": self.category,
            "categories": [self.category],
            "category_scores": {self.category: verdict.score},
            "score": verdict.score,
            "threshold": threshold,
            "risk": verdict.risk,
            "guard_type": self.config.guard_type,
        }

    async def run_shield(
        self, shield: Shield, messages: list[Message], params: dict[str, Any]
    ) -> RunShieldResponse:
        opts = self._options(shield.params or {}, params or {})
        first = 0 if opts.scope == "all" else max(0, len(messages) - 1)
        indexes = range(first, len(messages))
        chosen: list[tuple[int, str]] = []
        for i in indexes:
            text = content_to_text(messages[i].content, separator="\n")
            self._check_length(text, f"messages[{i}].content")
            chosen.append((i, text))
        verdicts = await self._judge([text for _i, text in chosen])
        if not verdicts:
            return RunShieldResponse(violation=None)
        top = max(range(len(verdicts)), key=lambda k: verdicts[k].score)
        verdict = verdicts[top]
        log.debug(
            "prompt_guard_scored",
            shield_id=shield.identifier,
            score=verdict.score,
            message_index=chosen[top][0],
            threshold=opts.threshold,
        )
        if verdict.score < opts.threshold:
            return RunShieldResponse(violation=None)
        metadata = self._metadata(verdict, opts.threshold)
        metadata["message_index"] = chosen[top][0]
        metadata["window_start"] = verdict.window_start
        return RunShieldResponse(
            violation=SafetyViolation(violation_level="error", user_message=USER_MESSAGE, metadata=metadata)
        )

    async def run_moderation(
        self, shield: Shield, texts: list[str], params: dict[str, Any]
    ) -> list[ModerationResult]:
        opts = self._options(shield.params or {}, params or {})
        for i, text in enumerate(texts):
            self._check_length(text, f"input[{i}]")
        verdicts = await self._judge(texts)
        results = []
        for verdict in verdicts:
            flagged = verdict.score >= opts.threshold
            metadata = self._metadata(verdict, opts.threshold)
            if not flagged:
                del metadata["violation_type"], metadata["categories"], metadata["category_scores"]
            results.append(
                ModerationResult(
                    flagged=flagged,
                    categories={**dict.fromkeys(OPENAI_MODERATION_CATEGORIES, False), self.category: flagged},
                    category_scores={
                        **dict.fromkeys(OPENAI_MODERATION_CATEGORIES, 0.0),
                        self.category: verdict.score,
                    },
                    category_applied_input_types={
                        **{c: [] for c in OPENAI_MODERATION_CATEGORIES},
                        self.category: ["text"],
                    },
                    user_message=USER_MESSAGE if flagged else None,
                    metadata=metadata,
                )
            )
        return results
