"""The inline::braintrust scoring provider: autoevals' scorers, judged by a model this server serves.

Llama Stack runs autoevals against OpenAI with the caller's key. Here autoevals' OpenAI client points at
this server's own OpenAI-compatible routes (``<server>/v1/openai/v1``, or ``base_url``), so the judge is
any model Lamina serves (``judge_model``) and the scorers that compare embeddings use one of its
embedding models (``embedding_model``): answer-similarity, answer-correctness (factuality + similarity),
answer-relevancy and context-entity-recall. The ``openai_api_key`` Llama Stack reads from the config or
the provider data header is accepted and sent as the bearer token; Lamina's own routes need none.

Rows need ``input_query``, ``generated_answer`` and ``expected_answer``; ``context`` when a scorer reads
it. Each row's result is autoevals' ``score`` (0..1) and its ``metadata`` (the judge's choice and
rationale). A judge that fails or answers something autoevals cannot read is a 502 naming this provider.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from lamina.apis.scoring import BasicScoringFnParams, ScoringFn, ScoringRowError
from lamina.errors import BadRequestError, UpstreamError, UpstreamTimeoutError
from lamina.providers import ProviderBase, ProviderContext
from lamina.request_context import request_provider_data
from lamina_braintrust.config import BraintrustProviderData, BraintrustScoringConfig
from lamina_braintrust.plugin import FUNCTIONS

log = structlog.get_logger(__name__)

# The scorers that call the judge model, and those that embed.
JUDGED = frozenset(FUNCTIONS) - {"answer-similarity"}
EMBEDDED = frozenset({"answer-similarity", "answer-correctness", "answer-relevancy", "context-entity-recall"})
# Rows autoevals reads (``context`` only when a row has it).
COLUMNS = ("input_query", "generated_answer", "expected_answer")


async def create_provider(
    config: BraintrustScoringConfig, deps: dict[Any, Any], context: ProviderContext
) -> BraintrustProvider:
    return BraintrustProvider(config, context)


class BraintrustProvider(ProviderBase):
    def __init__(self, config: BraintrustScoringConfig, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        own = context.extra.get("server_url")
        self.base_url = config.base_url or (f"{own}/v1/openai/v1" if own else None)
        self.gate = asyncio.Semaphore(config.max_concurrency)
        self._client: Any = None

    async def initialize(self) -> None:
        import openai

        # No retries of its own: a failing judge is reported at once (autoevals retries 429s itself).
        self._client = openai.AsyncOpenAI(
            base_url=self.base_url or "http://127.0.0.1:0",
            api_key=self.config.openai_api_key or "lamina",
            max_retries=0,
            timeout=self.config.timeout,
        )
        log.info("braintrust_scoring_ready", base_url=self.base_url, judge_model=self.config.judge_model)

    async def shutdown(self) -> None:
        if self._client is not None:
            await self._client.close()

    # -- registration --------------------------------------------------------------------------

    def _name(self, fn: ScoringFn) -> str:
        name = fn.provider_scoring_fn_id
        if name not in FUNCTIONS:
            raise BadRequestError(
                f"scoring function '{fn.identifier}': provider_scoring_fn_id '{name}' is not a braintrust "
                f"scorer; use one of {', '.join(FUNCTIONS)}",
                param="provider_scoring_fn_id",
            )
        return name

    @staticmethod
    def _check_params(fn: ScoringFn, params: Any, where: str) -> None:
        if params is not None and not isinstance(params, BasicScoringFnParams):
            raise BadRequestError(
                f"scoring function '{fn.identifier}' takes params of type basic (aggregation_functions "
                f"only), not '{params.type}'",
                param=where,
            )

    async def register_scoring_function(self, fn: ScoringFn) -> None:
        self._name(fn)
        self._check_params(fn, fn.params, "params")

    # -- scoring -------------------------------------------------------------------------------

    def _setting(self, key: str, name: str, fn: ScoringFn) -> str:
        value = getattr(self.config, key)
        if not value:
            what = "a judge model" if key == "judge_model" else "an embedding model"
            raise BadRequestError(
                f"scoring function '{fn.identifier}' needs {what}, and provider '{self.provider_id}' has no "
                f"{key}; set providers.scoring[{self.provider_id}].config.{key} to a registered model id",
                param=key,
            )
        return value

    def _evaluator(self, name: str, fn: ScoringFn) -> Any:
        from autoevals import llm, ragas, string
        from autoevals.oai import LLMClient

        if self.base_url is None:
            raise BadRequestError(
                f"provider '{self.provider_id}' does not know this server's address (it runs outside "
                f"`lamina run`); set its config base_url to an OpenAI-compatible endpoint",
                param="base_url",
            )
        client = self._client
        key = (request_provider_data(BraintrustProviderData) or BraintrustProviderData()).openai_api_key
        if key and self.config.base_url:  # the caller's key, for an endpoint that is not this server
            client = client.with_options(api_key=key)
        llm_client = LLMClient(openai=client, is_async=True)
        judge = self._setting("judge_model", name, fn) if name in JUDGED else None
        embed = self._setting("embedding_model", name, fn) if name in EMBEDDED else None
        kw = {"client": llm_client}
        if name == "factuality":
            return llm.Factuality(model=judge, **kw)
        if name == "answer-similarity":
            return ragas.AnswerSimilarity(model=embed, **kw)
        if name == "answer-correctness":
            return ragas.AnswerCorrectness(model=judge, embedding_model=embed, **kw)
        if name == "answer-relevancy":
            return ragas.AnswerRelevancy(model=judge, embedding_model=embed, **kw)
        if name == "context-entity-recall":
            pairwise = string.EmbeddingSimilarity(model=embed, **kw)
            return ragas.ContextEntityRecall(model=judge, pairwise_scorer=pairwise, **kw)
        cls = {
            "faithfulness": ragas.Faithfulness,
            "context-precision": ragas.ContextPrecision,
            "context-recall": ragas.ContextRecall,
            "context-relevancy": ragas.ContextRelevancy,
        }[name]
        return cls(model=judge, **kw)

    async def score_rows(
        self, fn: ScoringFn, rows: list[dict[str, Any]], params: Any
    ) -> list[dict[str, Any]]:
        name = self._name(fn)
        self._check_params(fn, params, f"scoring_functions.{fn.identifier}")
        evaluator = self._evaluator(name, fn)
        for i, row in enumerate(rows):
            missing = [c for c in COLUMNS if c not in row]
            if missing:
                raise ScoringRowError(
                    i, f"the row has no column '{missing[0]}' (braintrust scorers read {', '.join(COLUMNS)})"
                )
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._score(evaluator, fn, row, i)) for i, row in enumerate(rows)]
        except BaseExceptionGroup as eg:  # the first failure cancels the rows still waiting
            raise eg.exceptions[0] from None
        return [task.result() for task in tasks]

    async def _score(self, evaluator: Any, fn: ScoringFn, row: dict[str, Any], i: int) -> dict[str, Any]:
        import openai

        async with self.gate:
            try:
                result = await evaluator.eval_async(
                    output=row["generated_answer"],
                    expected=row["expected_answer"],
                    input=row["input_query"],
                    context=row.get("context"),
                )
            except openai.APITimeoutError:
                raise UpstreamTimeoutError(
                    self.provider_id,
                    f"scoring function '{fn.identifier}': the judge at {self.base_url} did not answer row "
                    f"{i} "
                    f"within {self.config.timeout:g}s",
                ) from None
            except openai.APIStatusError as exc:
                detail = _detail(exc)
                if 400 <= exc.status_code < 500 and exc.status_code != 429:
                    raise BadRequestError(
                        f"scoring function '{fn.identifier}': {self.base_url} refused the judge's call for "
                        f"row {i} ({exc.status_code}): {detail}; check judge_model and embedding_model",
                        param="judge_model",
                    ) from None
                raise UpstreamError(
                    self.provider_id,
                    f"scoring function '{fn.identifier}': the judge's call for row {i} failed "
                    f"({exc.status_code}): {detail}",
                    upstream_status=exc.status_code,
                ) from None
            except openai.APIError as exc:
                raise UpstreamError(
                    self.provider_id,
                    f"scoring function '{fn.identifier}': cannot reach the judge at {self.base_url} for row "
                    f"{i}: {exc}",
                ) from None
            except (ValueError, KeyError, IndexError, TypeError) as exc:  # autoevals cannot read the answer
                raise UpstreamError(
                    self.provider_id,
                    f"scoring function '{fn.identifier}': the judge's answer for row {i} is not what "
                    f"autoevals expects ({type(exc).__name__}: {exc}); a model that follows tool calls "
                    f"judges better",
                ) from None
        return {"score": result.score, "metadata": result.metadata}


def _detail(exc: Any) -> str:
    """The error message of an OpenAI-shaped error body (the SDK hands over its ``error`` object)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error") if isinstance(body.get("error"), dict) else body
        return str(err.get("message") or body.get("detail") or body)
    return str(exc)
