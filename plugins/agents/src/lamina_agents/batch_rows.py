"""The rows of a batch agent run: what a row's turn is, the work function that runs it, and its results row.

A row is a JSON object (a dataset row, or a line of a JSONL file). Its turn is its ``messages_column``
when that holds a value (a list of user / tool messages, or that list as JSON text), else its
``input_column`` (text, or content parts) as one user message. ``turn_messages`` checks a row and says
what is wrong with it, naming the column; the run is refused before it starts when a row is bad.

``run_row`` is the work function (``lamina.jobs.work``) of one row: it reaches the stack only through
``apis[Api.agents]`` (a session, then a non-streamed turn), so an executor may run it in a worker with a
stack of its own. It never raises for a failing row (an upstream error, a tool error, a shield
violation): the failure is in the results row it returns, and the run goes on.

A results row: ``row_index``, ``input`` (the row's messages), ``session_id``, ``turn_id``, ``status``
(``completed`` or ``failed``), ``output`` (the turn's answer text), ``steps`` (the turn's steps, as the
Agents API shows them), ``tool_calls`` (``{call_id, tool_name, arguments, result, error}`` each),
``error`` (``{type, message, status_code}`` or null) and ``usage`` (null: a turn does not report its
tokens through the Agents API).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import structlog
from pydantic import TypeAdapter, ValidationError

from lamina.apis.agents import (
    AgentTurnCreateRequest,
    CreateAgentSessionRequest,
    GetAgentSessionRequest,
    Turn,
)
from lamina.apis.common import content_to_text
from lamina.apis.inference import ToolResponseMessage, UserMessage
from lamina.errors import LaminaError, describe_validation_error
from lamina.specs import Api

log = structlog.get_logger(__name__)

ROW_WORK = "lamina_agents.batch_rows:run_row"  # the work function of a row (lamina.jobs.work)

_MESSAGES = TypeAdapter(list[UserMessage | ToolResponseMessage])


class RowError(ValueError):
    """A row that cannot become a turn; the message names the row and the column."""


def turn_messages(row: Any, index: int, input_column: str, messages_column: str) -> list[dict[str, Any]]:
    """The messages of row ``index``'s turn, as JSON; RowError naming the column when it has none."""
    if not isinstance(row, dict):
        raise RowError(f"row {index} is a {type(row).__name__}, not a JSON object")
    messages = row.get(messages_column)
    if messages is not None:
        if isinstance(messages, str):
            try:
                messages = json.loads(messages)
            except json.JSONDecodeError:
                raise RowError(
                    f"row {index}: column '{messages_column}' is text that is not a JSON list of messages"
                ) from None
        if not isinstance(messages, list) or not messages:
            raise RowError(f"row {index}: column '{messages_column}' must be a non-empty list of messages")
        try:
            parsed = _MESSAGES.validate_python(messages)
        except ValidationError as exc:
            raise RowError(
                f"row {index}: column '{messages_column}' is not a list of user or tool messages "
                f"({describe_validation_error(exc, limit=1)})"
            ) from None
        return [m.model_dump(mode="json", exclude_none=True) for m in parsed]
    if input_column not in row:
        columns = ", ".join(sorted(map(str, row))) or "none"
        raise RowError(
            f"row {index} has no column '{input_column}' (nor '{messages_column}'); its columns: {columns}"
        )
    value = row[input_column]
    if value is None or (isinstance(value, str) and not value.strip()) or value == []:
        raise RowError(f"row {index}: column '{input_column}' is empty; a turn needs some input")
    try:
        message = UserMessage(content=value)
    except ValidationError:
        raise RowError(
            f"row {index}: column '{input_column}' holds a {type(value).__name__}; it must be text (or "
            "content parts)"
        ) from None
    return [message.model_dump(mode="json", exclude_none=True)]


async def run_row(apis: Mapping[Api, Any], item: dict[str, Any]) -> dict[str, Any]:
    """Work function of one row: ``item`` is ``{"index", "agent_id", "session_name", "messages"}``; the
    answer is the row's results row. Runs wherever the job's executor runs it, on the routers there."""
    agents = apis[Api.agents]
    agent_id = item["agent_id"]
    result: dict[str, Any] = {
        "row_index": item["index"],
        "input": item["messages"],
        "session_id": None,
        "turn_id": None,
        "status": "failed",
        "output": None,
        "steps": [],
        "tool_calls": [],
        "error": None,
        "usage": None,
    }
    try:
        session = await agents.create_agent_session(
            CreateAgentSessionRequest(agent_id=agent_id, session_name=item["session_name"])
        )
        result["session_id"] = session.session_id
        turn = await agents.create_agent_turn(
            AgentTurnCreateRequest(
                agent_id=agent_id, session_id=session.session_id, messages=item["messages"], stream=False
            )
        )
    except LaminaError as exc:
        result["error"] = {"type": type(exc).__name__, "message": exc.message, "status_code": exc.status}
        result["turn_id"] = await _failed_turn_id(agents, agent_id, result["session_id"])
        return result
    except Exception as exc:  # a bug, not the row's: the row fails, the run goes on
        log.exception("batch_agent_row_failed", row=item["index"], agent_id=agent_id)
        result["error"] = {
            "type": "InternalError",
            "message": f"internal error: {type(exc).__name__}: {exc}",
            "status_code": 500,
        }
        return result
    return result | turn_result(turn)


def turn_result(turn: Turn) -> dict[str, Any]:
    """The results-row fields of a finished turn: its output, steps, tool calls and the first error in
    it (a shield violation, or a tool call that failed)."""
    steps = [step.model_dump(mode="json") for step in turn.steps]
    calls: list[dict[str, Any]] = []
    error: dict[str, Any] | None = None
    for step in turn.steps:
        if step.step_type == "shield_call" and step.violation is not None and error is None:
            violation = step.violation
            error = {
                "type": "ShieldViolation",
                "message": violation.user_message or "a shield flagged the conversation",
                "status_code": None,
                "violation_level": violation.violation_level,
                "metadata": violation.metadata,
            }
        if step.step_type != "tool_execution":
            continue
        responses = {r.call_id: r for r in step.tool_responses}
        for call in step.tool_calls:
            response = responses.get(call.call_id)
            failed = (response.metadata or {}).get("error") if response is not None else "no result"
            calls.append(
                {
                    "call_id": call.call_id,
                    "tool_name": str(call.tool_name),
                    "arguments": call.arguments,
                    "result": content_to_text(response.content) if response is not None else None,
                    "error": failed,
                }
            )
            if failed and error is None:
                error = {"type": "ToolError", "message": f"{call.tool_name}: {failed}", "status_code": None}
    return {
        "turn_id": turn.turn_id,
        "status": "failed" if error is not None else "completed",
        "output": content_to_text(turn.output_message.content),
        "steps": steps,
        "tool_calls": calls,
        "error": error,
    }


async def _failed_turn_id(agents: Any, agent_id: str, session_id: str | None) -> str | None:
    """The id of the turn a failure left in the session (recorded failed), if the session has one."""
    if session_id is None:
        return None
    try:
        session = await agents.get_agents_session(
            GetAgentSessionRequest(agent_id=agent_id, session_id=session_id)
        )
    except LaminaError:
        return None
    return session.turns[-1].turn_id if session.turns else None
