"""The inline::llm-as-judge scoring provider: a registered model judges each row through Inference.

A score call's params replace the function's, as in Llama Stack, except that a ``prompt_template`` or
``judge_score_regexes`` the call leaves out (or sends empty) is the function's own:
``{"type": "llm_as_judge", "judge_model": "my-judge"}`` runs ``llm-as-judge::405b-simpleqa``'s grader
on another judge (Llama Stack fails such a call with a 500). The aggregations are the call's, as in
Llama Stack.

For each row, the ``prompt_template`` is filled from the row (``{input_query}``,
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
from lamina_llm_as_judge.plugin import BASE_PROMPT_PLACEHOLDER


async def create_provider(
    config: LlmAsJudgeScoringConfig, deps: dict[Any, Any], context: ProviderContext
) -> LlmAsJudgeProvider:
    return LlmAsJudgeProvider(config, deps[Api.inference], context)


# The fields a score call's params may leave to the function's registered params: left out or empty (an
# empty one judges nothing, and params that went through a JSON dump, as an eval job's do, carry the
# defaults as if set).
_KEPT_FIELDS = ("prompt_template", "judge_score_regexes")


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

    async def register_scoring_function(self, fn: ScoringFn) -> None:
        judge_params(fn, fn.params, "params")

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
            f"registered llm model as judge_model in the call's params (scoring_functions: "
            f"{{{fn.identifier}: {{type: llm_as_judge, judge_model: <model id>}}}}; the function's "
            f"prompt_template and judge_score_regexes are kept when the call leaves them empty), "
            f"or register a model with id '{params.judge_model}'. Registered llm models: "
            f"{', '.join(llms) or 'none'}.",
            param=f"{where}.judge_model",
        )

    async def score_rows(
        self, fn: ScoringFn, rows: list[dict[str, Any]], params: Any
    ) -> list[dict[str, Any]]:
        where = f"scoring_functions.{fn.identifier}"
        params = judge_params(fn, params, where)
        await self._check_judge(fn, params, where)
        if params.prompt_template == BASE_PROMPT_PLACEHOLDER:
            raise BadRequestError(
                f"scoring function '{fn.identifier}' has no prompt of its own (its prompt_template is Llama "
                f"Stack's placeholder); send the judge prompt as prompt_template in the call's params, with "
                f"{{input_query}}, {{expected_answer}} and {{generated_answer}} filled from each row",
                param=f"{where}.prompt_template",
            )
        prompts = [render_prompt(params.prompt_template, row, i) for i, row in enumerate(rows)]
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
        answer = content_to_text(response.completion_message.content)
        return {"score": read_score(answer, regexes), "judge_feedback": answer}


def judge_params(fn: ScoringFn, params: Any, where: str) -> LLMAsJudgeScoringFnParams:
    """The params a judge of ``fn`` runs with: ``params`` (the call's, or the function's own) checked,
    with the ``_KEPT_FIELDS`` the call leaves empty taken from the function; a 400 naming ``where``."""
    if not isinstance(params, LLMAsJudgeScoringFnParams):
        got = "none" if params is None else f"type '{params.type}'"
        raise BadRequestError(
            f"scoring function '{fn.identifier}' is an LLM judge: its params must be "
            f'{{"type": "llm_as_judge", "judge_model": ..., "prompt_template": ..., '
            f'"judge_score_regexes": [...]}}, got {got}',
            param=where,
        )
    own = fn.params
    if params is not own and isinstance(own, LLMAsJudgeScoringFnParams):
        # A call naming only its judge keeps the function's prompt and regexes.
        kept = {f: getattr(own, f) for f in _KEPT_FIELDS if not getattr(params, f)}
        params = params.model_copy(update=kept)
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


def render_prompt(template: str, row: dict[str, Any], i: int) -> str:
    """Row ``i``'s judge prompt: ``template`` with the columns it names filled from the row."""
    fields = _template_fields(template)
    missing = [name for name in fields if name not in row]
    if missing:
        raise ScoringRowError(
            i,
            f"the judge prompt needs column '{missing[0]}', which the row lacks (it has: "
            f"{', '.join(map(str, row)) or 'none'})",
        )
    return template.format(**{name: row[name] for name in fields})


def read_score(answer: str, regexes: list[re.Pattern[str]]) -> str | None:
    """The score in a judge's answer: the first group (else the whole match) of the first regex that
    matches; None when none does."""
    for regex in regexes:
        match = regex.search(answer)
        if match:
            return match.group(1) if regex.groups else match.group(0)
    return None
