"""The inline::llm-as-judge scoring provider: a registered model judges each row through Inference.

For each row, the function's ``prompt_template`` is filled from the row (``{input_query}``,
``{expected_answer}``, ``{generated_answer}``, or any other column it names) and sent as one user
message to ``judge_model`` through the inference router (native chat completion: any served model
judges, local or remote). The first of ``judge_score_regexes`` that matches the answer gives the score
(its first group, as text, as in Llama Stack); none matching scores null. Each row's result also holds
``judge_feedback``, the judge's whole answer.

Judge calls run at most ``max_concurrency`` at once across all calls. A judge that fails is a 502/504
naming this provider, the function, the row and the inference provider's own error; never a made-up
score.
"""

from __future__ import annotations

import asyncio
import re
import string
from functools import lru_cache
from typing import Any

from lamina.apis.common import content_to_text
from lamina.apis.inference import ChatCompletionRequest, SamplingParams, UserMessage
from lamina.apis.scoring import LLMAsJudgeScoringFnParams, ScoringFn, ScoringRowError
from lamina.errors import BadRequestError, NotFoundError, UpstreamError
from lamina.providers import ProviderBase, ProviderContext
from lamina.specs import Api
from lamina_llm_as_judge.config import LlmAsJudgeScoringConfig


async def create_provider(
    config: LlmAsJudgeScoringConfig, deps: dict[Any, Any], context: ProviderContext
) -> LlmAsJudgeProvider:
    return LlmAsJudgeProvider(config, deps[Api.inference], context)


@lru_cache(maxsize=64)
def _template_fields(template: str) -> tuple[str, ...]:
    """The columns a prompt template names; ValueError when it is not a valid format string."""
    fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    for name in fields:
        if not name or not name.isidentifier():
            raise ValueError(f"'{{{name}}}' is not a column name (use {{input_query}} and the like)")
    return tuple(dict.fromkeys(fields))


@lru_cache(maxsize=64)
def _regexes(patterns: tuple[str, ...]) -> list[re.Pattern[str]]:
    return [re.compile(p) for p in patterns]


class LlmAsJudgeProvider(ProviderBase):
    def __init__(self, config: LlmAsJudgeScoringConfig, inference: Any, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        self.inference = inference  # the InferenceRouter
        self.gate = asyncio.Semaphore(config.max_concurrency)

    # -- registration --------------------------------------------------------------------------

    def _params(self, fn: ScoringFn, params: Any, where: str) -> LLMAsJudgeScoringFnParams:
        if not isinstance(params, LLMAsJudgeScoringFnParams):
            got = "none" if params is None else f"type '{params.type}'"
            raise BadRequestError(
                f"scoring function '{fn.identifier}' is an LLM judge: its params must be "
                f'{{"type": "llm_as_judge", "judge_model": ..., "prompt_template": ..., '
                f'"judge_score_regexes": [...]}}, got {got}',
                param=where,
            )
        if not params.prompt_template:
            raise BadRequestError(
                f"scoring function '{fn.identifier}': prompt_template is required (the judge prompt, with "
                f"{{input_query}}, {{expected_answer}} and {{generated_answer}} filled from each row)",
                param=f"{where}.prompt_template",
            )
        try:
            _template_fields(params.prompt_template)
        except ValueError as exc:
            raise BadRequestError(
                f"scoring function '{fn.identifier}': prompt_template is not a usable template: {exc}; "
                f"write literal braces as {{{{ and }}}}",
                param=f"{where}.prompt_template",
            ) from None
        for i, pattern in enumerate(params.judge_score_regexes):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise BadRequestError(
                    f"scoring function '{fn.identifier}': judge_score_regexes[{i}] {pattern!r} is not a "
                    f"regular expression: {exc}",
                    param=f"{where}.judge_score_regexes[{i}]",
                ) from None
        return params

    async def register_scoring_function(self, fn: ScoringFn) -> None:
        self._params(fn, fn.params, "params")

    # -- scoring -------------------------------------------------------------------------------

    async def _check_judge(self, fn: ScoringFn, params: LLMAsJudgeScoringFnParams, where: str) -> None:
        """The judge must be a registered llm model: a 400 listing them, before any row is sent."""
        models = getattr(self.inference, "models", None)
        if models is None:
            return
        try:
            model = await models.get(params.judge_model)
        except NotFoundError:
            model = None
        if model is not None and model.model_type == "llm":
            return
        llms = [m.identifier for m in await models.list() if m.model_type == "llm"]
        what = "is not a registered model" if model is None else f"is an {model.model_type} model"
        raise BadRequestError(
            f"scoring function '{fn.identifier}': judge_model '{params.judge_model}' {what}; name a "
            f"registered llm model as judge_model (in the call's params or the function's). Registered llm "
            f"models: {', '.join(llms) or 'none'}.",
            param=f"{where}.judge_model",
        )

    async def score_rows(
        self, fn: ScoringFn, rows: list[dict[str, Any]], params: Any
    ) -> list[dict[str, Any]]:
        where = f"scoring_functions.{fn.identifier}"
        params = self._params(fn, params, where)
        await self._check_judge(fn, params, where)
        fields = _template_fields(params.prompt_template)
        prompts = [self._prompt(params.prompt_template, fields, row, i) for i, row in enumerate(rows)]
        regexes = _regexes(tuple(params.judge_score_regexes))
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self._judge(fn, params, prompt, regexes, i))
                    for i, prompt in enumerate(prompts)
                ]
        except BaseExceptionGroup as eg:  # the first failure cancels the rows still waiting
            raise eg.exceptions[0] from None
        return [task.result() for task in tasks]

    @staticmethod
    def _prompt(template: str, fields: tuple[str, ...], row: dict[str, Any], i: int) -> str:
        missing = [name for name in fields if name not in row]
        if missing:
            raise ScoringRowError(
                i,
                f"the judge prompt needs column '{missing[0]}', which the row lacks (it has: "
                f"{', '.join(map(str, row)) or 'none'})",
            )
        return template.format(**{name: row[name] for name in fields})

    async def _judge(
        self,
        fn: ScoringFn,
        params: LLMAsJudgeScoringFnParams,
        prompt: str,
        regexes: list[re.Pattern[str]],
        i: int,
    ) -> dict[str, Any]:
        request = ChatCompletionRequest(
            model_id=params.judge_model,
            messages=[UserMessage(content=prompt)],
            sampling_params=SamplingParams(max_tokens=self.config.max_tokens or 0),
            stream=False,
        )
        async with self.gate:
            try:
                response = await self.inference.chat_completion(request)
            except UpstreamError as exc:
                raise type(exc)(
                    self.provider_id,
                    f"scoring function '{fn.identifier}': judge model '{params.judge_model}' failed on row "
                    f"{i}: {exc.message}",
                ) from None
        content = response.completion_message.content
        answer = content_to_text(content)
        score = None
        for regex in regexes:
            match = regex.search(answer)
            if match:
                score = match.group(1) if regex.groups else match.group(0)
                break
        return {"score": score, "judge_feedback": answer}
