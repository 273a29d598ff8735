"""One prompt's generation: candidates from the model, scores from the judge, the filter's choice.

``generate_prompt`` is a work function (lamina.jobs.work): it reaches the stack only through ``apis``
(the inference and scoring routers of wherever it runs) and takes and returns JSON, so a job's prompts
can run on any executor. The inline route calls it directly with the server's routers.

Failures: a candidate the upstream fails to write (a 5xx, a timeout, ``UpstreamError``) or the judge
fails to score (an upstream failure, or an answer no score regex matches) is counted in the prompt's
statistics and not kept; anything else (an unknown model or judge: a 4xx) is raised, since every other
prompt would fail the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from lamina.apis.inference import OpenAIChatCompletionRequest
from lamina.apis.scoring import LLMAsJudgeScoringFnParams, ScoreRequest
from lamina.errors import UpstreamError
from lamina.specs import Api
from lamina_synthetic_data_generation.filters import Candidate, FilterSettings, keep

WORK_FUNCTION = "lamina_synthetic_data_generation.generation:generate_prompt"


def prompt_messages(system: str | None, text: str) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]


async def _candidate(
    inference: Any, item: dict[str, Any], k: int, gate: asyncio.Semaphore
) -> tuple[str | None, str | None]:
    """Candidate ``k``'s text, or None and why (the upstream failed, or answered no text)."""
    request = OpenAIChatCompletionRequest(
        model=item["model"],
        messages=prompt_messages(item["system"], item["text"]),
        temperature=item["temperature"],
        max_tokens=item["max_tokens"],
        seed=item["seed"] + k,  # reproducible and distinct: each candidate samples with its own seed
        stream=False,
    )
    async with gate:
        try:
            answer = await inference.openai_chat_completion(request)
        except UpstreamError as exc:
            return None, exc.message
    choices = _field(answer, "choices") or []  # a model, or the upstream's JSON passed through
    content = _field(_field(choices[0], "message"), "content") if choices else None
    if isinstance(content, str) and content.strip():
        return content, None
    return None, "the model answered no text"


def _field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else getattr(value, name, None)


def _score(value: Any) -> float | None:
    try:
        score = float(value)
    except (TypeError, ValueError):
        return None
    return score if score == score and abs(score) != float("inf") else None


async def _judge(scoring: Any, item: dict[str, Any], texts: list[tuple[int, str]]) -> list[tuple[Any, Any]]:
    """(score, judge feedback) per candidate text; (None, why) for each when the judge failed."""
    fn = item["judge_scoring_fn"]
    params = LLMAsJudgeScoringFnParams(
        judge_model=item["judge_model"],
        prompt_template=item["judge_prompt_template"],
        judge_score_regexes=item["judge_score_regexes"],
    )
    query = item["text"]
    rows = [{"input_query": query, "generated_answer": text, "expected_answer": ""} for _, text in texts]
    try:
        response = await scoring.score(ScoreRequest(input_rows=rows, scoring_functions={fn: params}))
    except UpstreamError as exc:
        return [(None, f"judge failed: {exc.message}")] * len(texts)
    scored = response.results[fn].score_rows
    return [(row.get("score"), row.get("judge_feedback")) for row in scored]


async def generate_prompt(apis: Mapping[Api, Any], item: dict[str, Any]) -> dict[str, Any]:
    """Work function: one prompt of a generation. ``item`` holds the prompt (``prompt_index``,
    ``system``, ``text``) and the settings (models, sampling, judge, filter); the answer is the kept rows
    (best first) and the prompt's statistics."""
    count = item["num_candidates"]
    gate = asyncio.Semaphore(max(1, item.get("max_concurrent", count)))
    answers = await asyncio.gather(*(_candidate(apis[Api.inference], item, k, gate) for k in range(count)))
    written = [(k, text) for k, (text, _) in enumerate(answers) if text is not None]
    failures = [why for _, why in answers if why is not None]
    judged = await _judge(apis[Api.scoring], item, written) if written else []
    candidates, judge_failures = [], 0
    for (k, text), (raw, feedback) in zip(written, judged, strict=True):
        score = _score(raw)
        if score is None:
            judge_failures += 1
            continue
        candidates.append(Candidate(item["prompt_index"], k, text, score, feedback))
    settings = FilterSettings(**item["filter"])
    kept = keep(item["filtering_function"], candidates, settings)
    messages = prompt_messages(item["system"], item["text"])
    rows = [
        {
            "prompt_index": c.prompt_index,
            "candidate": c.candidate,
            "messages": [*messages, {"role": "assistant", "content": c.text}],
            "input_query": item["text"],
            "expected_answer": c.text,
            "score": c.score,
            "judge_feedback": c.judge_feedback,
        }
        for c in kept
    ]
    return {
        "prompt_index": item["prompt_index"],
        "rows": rows,
        "stats": {
            "candidates": count,
            "generation_failures": count - len(written),
            "generation_error": failures[0] if failures else None,
            "judge_failures": judge_failures,
            "scores": [c.score for c in candidates],
            "kept": len(rows),
        },
    }
