"""The agent's spans (telemetry on): one ``invoke_agent`` span per turn, one span per step inside it.

The turn span carries OpenTelemetry's GenAI agent attributes (gen_ai.operation.name ``invoke_agent``,
gen_ai.agent.id, gen_ai.agent.name, gen_ai.conversation.id = the session) and Llama Stack's own
``session_id``, with ``input`` and ``output`` (the user's messages, the answer) when the telemetry
provider captures content: Llama Stack's clients find a turn by ``session_id`` and read those two.
Only the turn span has ``session_id``.

Step spans (``agent_step inference``, ``agent_step tool_execution``, ``agent_step shield_call``) carry
lamina.step.type, lamina.step.id and lamina.turn.id, and what the step ended with: the tool's name and
error, the shield's verdict, the model's finish reason. The model, tool and shield calls a step makes
are its children (the provider wrapper's spans), because the step's span is current while the engine
runs the step.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from opentelemetry.trace import Span, Status, StatusCode

from lamina.telemetry import spans
from lamina_agents import engine as E


def traced_turn(
    events: AsyncIterator[Any],
    *,
    agent_id: str,
    agent_name: str | None,
    session_id: str,
    turn_id: str,
    input_messages: Any,
    output: Callable[[], str | None],
) -> AsyncIterator[Any]:
    """``events`` (a turn's chunks) inside the turn's span; ``output()`` reads the answer at the end."""
    capture = spans.capture_content()
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.id": agent_id,
        "gen_ai.agent.name": agent_name,
        "gen_ai.conversation.id": session_id,
        "session_id": session_id,
        "lamina.turn.id": turn_id,
    }
    if capture:
        attributes["input"] = json.dumps(
            [m.model_dump(mode="json") if hasattr(m, "model_dump") else m for m in input_messages or []],
            default=str,
        )
    span = spans.start_span(f"invoke_agent {agent_name or agent_id}", attributes)
    if span is None:
        return events

    def ended(failure: BaseException | None) -> None:
        if capture and span.is_recording():
            span.set_attribute("output", output() or "")

    return spans.traced_iterator(span, events, on_end=ended)


class StepSpans:
    """The engine's step spans: ``next(events)`` runs the engine to its next event with the open step's
    span current; ``see(event)`` opens a span on StepStarted and ends it on the step's end."""

    def __init__(self) -> None:
        self.step: Span | None = None

    async def next(self, events: AsyncIterator[Any]) -> Any:
        with spans.current(self.step):
            return await anext(events)

    def see(self, event: Any) -> None:
        if isinstance(event, E.StepStarted):
            self.close()
            self.step = spans.start_span(
                f"agent_step {event.step_type}",
                {"lamina.step.type": event.step_type, "lamina.step.id": event.step_id, **_touchpoint(event)},
            )
            return
        step = self.step
        if step is None:
            return
        if isinstance(event, E.InferenceFinished):
            spans.set_attributes(
                step,
                {
                    "gen_ai.response.finish_reasons": [event.finish_reason] if event.finish_reason else None,
                    "gen_ai.usage.input_tokens": event.usage.get("prompt_tokens"),
                    "gen_ai.usage.output_tokens": event.usage.get("completion_tokens"),
                    "lamina.tool_calls": len(event.tool_calls),
                },
            )
        elif isinstance(event, E.ToolFinished):
            spans.set_attributes(
                step, {"gen_ai.tool.name": event.call.name, "gen_ai.tool.call.id": event.call.call_id}
            )
            if event.result.error:
                step.set_attribute("error.type", "tool_error")
                step.set_status(Status(StatusCode.ERROR, str(event.result.error)[:500]))
        elif isinstance(event, E.ShieldFinished):
            step.set_attribute(
                "lamina.shield.verdict", "violation" if event.violation is not None else "safe"
            )
        else:
            return
        self.close()

    def close(self, failure: BaseException | None = None) -> None:
        if self.step is not None:
            spans.end(self.step, failure)
            self.step = None


def _touchpoint(event: E.StepStarted) -> dict[str, Any]:
    touchpoint = event.metadata.get("touchpoint") if event.metadata else None
    return {"lamina.shield.touchpoint": touchpoint} if touchpoint else {}
