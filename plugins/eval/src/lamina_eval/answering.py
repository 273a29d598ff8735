"""One benchmark row answered by the candidate: a model (chat or completion) or an agent's turn.

``answer_row`` is a work function (lamina.jobs.work): a run_eval job hands each row to the job's
executor (``context.map``), which runs it here or on another worker's stack (a Ray actor); it reaches
the stack only through ``apis``. ``answer`` is the same for a caller that holds the routers
(``evaluate_rows``, answered inline).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from lamina.apis.agents import AgentTurnCreateRequest, CreateAgentSessionRequest
from lamina.apis.common import content_to_text
from lamina.apis.eval import BenchmarkConfig
from lamina.apis.inference import ChatCompletionRequest, CompletionRequest
from lamina.errors import BadRequestError, UpstreamError, describe_validation_error
from lamina.specs import Api
from lamina_eval.columns import RowError, agent_input, model_input

ANSWER_ROW = "lamina_eval.answering:answer_row"


async def answer_row(apis: Mapping[Api, Any], item: dict[str, Any]) -> dict[str, Any]:
    """Work function: ``item`` is ``{"config": BenchmarkConfig JSON, "row", "index", "agent_id"}``."""
    config = BenchmarkConfig.model_validate(item["config"])
    return await answer(apis, config, item["row"], item["index"], item["agent_id"])


async def answer(
    apis: Mapping[Api, Any], config: BenchmarkConfig, row: dict[str, Any], index: int, agent_id: str | None
) -> dict[str, Any]:
    """One row's generation: ``{generated_answer}`` (and ``context`` for an agent that retrieved); a 400
    naming the row when it cannot be answered, the upstream's error naming the row when it failed."""
    candidate = config.eval_candidate
    try:
        if candidate.type == "agent":
            return await _answer_agent(apis[Api.agents], agent_id, row, index)
        system = candidate.system_message.model_dump() if candidate.system_message else None
        kind, payload = model_input(row, system)
        inference = apis[Api.inference]
        if kind == "completion":
            request = CompletionRequest(
                model_id=candidate.model, content=payload, sampling_params=candidate.sampling_params
            )
            return {"generated_answer": (await inference.completion(request)).content}
        chat = ChatCompletionRequest(
            model_id=candidate.model, messages=payload, sampling_params=candidate.sampling_params
        )
        response = await inference.chat_completion(chat)
        return {"generated_answer": content_to_text(response.completion_message.content)}
    except (RowError, ValidationError) as exc:
        reason = str(exc) if isinstance(exc, RowError) else validation_reason(exc)
        message = f"row {index} cannot be answered: {reason}"
        raise BadRequestError(message, param=f"rows[{index}]") from None
    except UpstreamError as exc:
        raise type(exc)(exc.provider_id, f"eval row {index}: {exc.message}") from None


async def _answer_agent(agents: Any, agent_id: str | None, row: dict[str, Any], index: int) -> dict:
    assert agent_id is not None
    messages = agent_input(row)
    session = await agents.create_agent_session(
        CreateAgentSessionRequest(agent_id=agent_id, session_name=f"eval-row-{index}")
    )
    turn = await agents.create_agent_turn(
        AgentTurnCreateRequest(
            agent_id=agent_id, session_id=session.session_id, messages=messages, stream=False
        )
    )
    answer: dict[str, Any] = {"generated_answer": content_to_text(turn.output_message.content)}
    retrieved = [
        content_to_text(r.content, separator=" ")
        for step in turn.steps
        if step.step_type == "tool_execution"
        for r in step.tool_responses
        if r.tool_name == "knowledge_search"
    ]
    retrieved += [
        content_to_text(step.inserted_context, separator=" ")
        for step in turn.steps
        if step.step_type == "memory_retrieval"
    ]
    if retrieved:
        answer["context"] = " ".join(retrieved)
    return answer


def validation_reason(exc: ValidationError) -> str:
    return f"its messages do not validate ({describe_validation_error(exc, limit=1)})"
