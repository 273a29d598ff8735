"""The agent loop, facade-neutral: OpenAI-shaped messages and tool definitions in, typed events out.

One loop serves both facades: the Agents API (``lamina_agents.provider``) turns the events into
``AgentTurnResponseStreamChunk`` events and steps; a Responses facade can turn the same events into
``response.*`` events and output items. The engine knows no agent, session or turn.

A run: input shields -> (inference -> tool calls)* -> output shields -> ``Finished``.

- The model is called through the Inference router's OpenAI chat completion, streamed, with the
  tools as OpenAI function tools: both facades speak OpenAI's message and tool shapes, so neither
  converts to Llama Stack's legacy chat shape and back, and every inference provider serves it.
- ``tool_choice`` ``required`` or a tool's name applies until the model has called a tool; later
  iterations are ``auto`` (else a forced call after every tool result would loop until
  ``max_infer_iters``). ``none`` sends no tools.
- Tools the server runs are invoked through the Tool Runtime router, one step per call; a tool that
  fails gives the model the error as its result (the model may recover), not a failed turn.
- A call to a client tool ends the run with ``AwaitingClientTools`` (after the server's own calls of
  the same message have run); the caller resumes by running the engine again with the tool results
  appended and ``iterations_done`` carried over.
- A shield violation at level ``error`` ends the run with the shield's message as the output; a
  ``warn`` is recorded in the step and the run goes on.
- ``parallel_tool_calls`` false: only the first call of an answer is kept (run, returned, in the
  history); the others are dropped and logged, as OpenAI makes at most one call then.
- A model call that fails raises (the router's 4xx/5xx error naming the provider): the facade records
  the turn failed and ends its stream.
- Each run accounts where its time went (``RunClock``) and logs it at debug level when it ends
  (``agent_run_timing``): the engine's own work, the facade's, and the waits on the model, the tools,
  the shields and the store. ``bench/agents.py`` reads those lines.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from lamina.apis.common import content_to_text
from lamina.apis.inference import OpenAIChatCompletionRequest, UserMessage
from lamina.apis.safety import RunShieldRequest, SafetyViolation
from lamina.apis.tools import InvokeToolRequest, ToolInvocationResult
from lamina.errors import BadRequestError, LaminaError
from lamina.telemetry import spans

log = structlog.get_logger(__name__)

# -- input ----------------------------------------------------------------------------------------


@dataclass
class EngineTool:
    """A tool the model may call: ``parameters`` is a JSON schema; ``client`` tools are run by the caller."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    client: bool = False
    bound_args: dict[str, Any] = field(default_factory=dict)  # merged over the model's arguments
    # The name the Tool Runtime router resolves (``<toolgroup_id>/<tool>``): two groups may offer a tool
    # of the same bare name (two MCP servers' ``echo``), and the model only sees the bare one.
    runtime_name: str | None = None
    # Runs the tool instead of the Tool Runtime router: a facade's own tools (a Responses file_search
    # over vector stores, an MCP server named by URL) take the same loop, steps and events.
    invoke: Callable[[dict[str, Any]], Awaitable[ToolInvocationResult]] | None = None

    def openai(self) -> dict[str, Any]:
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}


@dataclass
class EngineRequest:
    model: str
    messages: list[dict[str, Any]]  # OpenAI chat messages: the history and this turn's input
    tools: list[EngineTool] = field(default_factory=list)
    tool_choice: str = "auto"  # auto | required | none | a tool's name
    sampling: dict[str, Any] = field(default_factory=dict)  # OpenAI fields: temperature, top_p, max_tokens...
    response_format: dict[str, Any] | None = None  # OpenAI's response_format
    input_shields: list[str] = field(default_factory=list)
    output_shields: list[str] = field(default_factory=list)
    max_infer_iters: int = 10
    iterations_done: int = 0  # model calls already made in this turn (a resumed turn)
    check_input: bool = True  # run the input shields (not again when a turn resumes)
    # A bound on the completion tokens of every model call of the run together (the Responses API's
    # max_output_tokens): each call gets what is left as max_tokens; none left ends the run out_of_tokens.
    max_output_tokens: int | None = None
    # False (the Responses API's parallel_tool_calls): one call per model answer. The model is asked
    # (the chat field), and a model that still makes several gets only its first run and returned.
    parallel_tool_calls: bool = True


# -- events ---------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class EngineToolCall:
    call_id: str
    name: str
    arguments: str  # JSON text as the model produced it

    def parsed_arguments(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.arguments or "{}")
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


@dataclass
class ToolResult:
    call_id: str
    name: str
    content: Any  # interleaved content
    metadata: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class StepStarted:
    step_id: str
    step_type: str  # inference | tool_execution | shield_call
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class TextDelta:
    step_id: str
    text: str


@dataclass
class ToolCallDelta:
    step_id: str
    index: int
    call_id: str | None
    name: str | None
    arguments: str  # this chunk's piece of the arguments


@dataclass
class InferenceFinished:
    step_id: str
    started_at: datetime
    completed_at: datetime
    text: str
    tool_calls: list[EngineToolCall]
    finish_reason: str | None
    usage: dict[str, int]


@dataclass
class ToolFinished:
    step_id: str
    started_at: datetime
    completed_at: datetime
    call: EngineToolCall
    result: ToolResult


@dataclass
class ShieldFinished:
    step_id: str
    started_at: datetime
    completed_at: datetime
    touchpoint: str  # user-input | llm-output
    violation: SafetyViolation | None


@dataclass
class AwaitingClientTools:
    step_id: str  # the tool_execution step the client's results complete
    started_at: datetime
    text: str
    calls: list[EngineToolCall]
    iterations_done: int
    added: list[dict[str, Any]]  # OpenAI messages this run appended (the assistant's tool calls...)
    usage: dict[str, int]


@dataclass
class Finished:
    text: str
    stop_reason: str  # end_of_turn | out_of_tokens
    iterations_done: int
    added: list[dict[str, Any]]
    usage: dict[str, int]
    violation: SafetyViolation | None = None


EngineEvent = (
    StepStarted
    | TextDelta
    | ToolCallDelta
    | InferenceFinished
    | ToolFinished
    | ShieldFinished
    | AwaitingClientTools
    | Finished
)

_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


# -- where a run's time goes ------------------------------------------------------------------------


@dataclass
class RunClock:
    """One run's time on the server, in nanoseconds of wall time (``time.perf_counter_ns``).

    ``engine_ns`` is the engine's own work: everything ``AgentEngine.run`` does between being asked
    for its next event and handing it over, less its waits on the model (the router call and every
    chunk), the tools and the shields, which are ``model_ns``, ``tool_ns`` and ``shield_ns``. A facade
    that times its handling of the events adds ``facade_ns`` (its own work) and ``store_ns`` (its waits
    on persistence). Waits are wall time, so under concurrency they include other requests' work; the
    own times do not: the event loop runs one task at a time, so the time between two of a task's
    suspensions is that task's. Events handed to the facade and the HTTP layer's writes are not the
    engine's time.
    """

    steps: int = 0  # steps started: inference, tool_execution, shield_call
    engine_ns: int = 0
    facade_ns: int = 0
    model_ns: int = 0
    tool_ns: int = 0
    shield_ns: int = 0
    store_ns: int = 0

    async def wait(self, kind: str, awaitable: Awaitable[Any]) -> Any:
        """Await something that is not the agent loop's own work; its time goes to ``<kind>_ns``."""
        started = time.perf_counter_ns()
        try:
            return await awaitable
        finally:
            field_name = f"{kind}_ns"
            setattr(self, field_name, getattr(self, field_name) + time.perf_counter_ns() - started)

    @property
    def waits_ns(self) -> int:
        return self.model_ns + self.tool_ns + self.shield_ns + self.store_ns

    def log_fields(self) -> dict[str, Any]:
        """The debug line's fields, in microseconds."""
        fields: dict[str, Any] = {"steps": self.steps}
        for name in ("engine", "facade", "model", "tool", "shield", "store"):
            fields[f"{name}_us"] = round(getattr(self, f"{name}_ns") / 1000, 1)
        return fields


def _add_usage(total: dict[str, int], usage: dict[str, Any] | None) -> None:
    for key in _USAGE_KEYS:
        value = (usage or {}).get(key)
        if isinstance(value, int):
            total[key] = total.get(key, 0) + value


class AgentEngine:
    """Runs the loop against the stack's routers (never a provider directly)."""

    def __init__(self, inference: Any, tool_runtime: Any = None, safety: Any = None) -> None:
        self.inference = inference
        self.tool_runtime = tool_runtime
        self.safety = safety

    async def run(self, request: EngineRequest, clock: RunClock | None = None) -> AsyncIterator[EngineEvent]:
        """The run's events; ``clock`` (a new one if absent) gets where its time went (``RunClock``)."""
        clock = clock if clock is not None else RunClock()
        events = self._run(request, clock)
        steps = None  # the step spans, telemetry on (lamina_agents.turn_spans)
        if spans.tracer() is not None:
            from lamina_agents.turn_spans import StepSpans

            steps = StepSpans()
        failure: BaseException | None = None
        try:
            while True:
                # Everything between here and the event (less the waits the loop reports to the
                # clock) is the engine's own work: the task runs nothing else meanwhile.
                started, waited = time.perf_counter_ns(), clock.waits_ns
                try:
                    event = await (anext(events) if steps is None else steps.next(events))
                except StopAsyncIteration:
                    return
                finally:
                    clock.engine_ns += time.perf_counter_ns() - started - (clock.waits_ns - waited)
                if isinstance(event, StepStarted):
                    clock.steps += 1
                if steps is not None:
                    steps.see(event)
                yield event
        except BaseException as exc:
            failure = exc
            raise
        finally:
            if steps is not None:
                steps.close(failure)
            await events.aclose()
            log.debug("agent_run_timing", **clock.log_fields())

    async def _run(self, request: EngineRequest, clock: RunClock) -> AsyncIterator[EngineEvent]:
        _check_tool_choice(request)
        messages = list(request.messages)
        added: list[dict[str, Any]] = []
        usage: dict[str, int] = {}
        if request.check_input and request.input_shields:
            async for event in self._shields(request.input_shields, messages, "user-input", clock):
                yield event
                if isinstance(event, ShieldFinished) and _ends_turn(event.violation):
                    yield _violation_finish(event.violation, request.iterations_done, added, usage)
                    return
        tools = {tool.name: tool for tool in request.tools}
        tool_choice = request.tool_choice
        iters = request.iterations_done
        while True:
            left = None
            if request.max_output_tokens is not None:
                left = request.max_output_tokens - usage.get("completion_tokens", 0)
                if left <= 0:
                    yield Finished("", "out_of_tokens", iters, added, usage)
                    return
            step = StepStarted(str(uuid.uuid4()), "inference")
            yield step
            inference: InferenceFinished | None = None
            async for event in self._infer(request, step.step_id, messages, tool_choice, clock, left):
                if isinstance(event, InferenceFinished):
                    inference = event
                yield event
            assert inference is not None
            iters += 1
            _add_usage(usage, inference.usage)
            assistant: dict[str, Any] = {"role": "assistant", "content": inference.text or None}
            if inference.tool_calls:
                assistant["tool_calls"] = [
                    {
                        "id": c.call_id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in inference.tool_calls
                ]
            messages.append(assistant)
            added.append(assistant)
            out_of_tokens = inference.finish_reason == "length"
            if out_of_tokens and inference.tool_calls and all(_whole(c) for c in inference.tool_calls):
                # The model wrote whole calls, then ran on to its token limit (SmolLM2 does): run them,
                # as Llama Stack does; only a call cut off mid-arguments ends the turn out of tokens.
                out_of_tokens = False
            if not inference.tool_calls or iters >= request.max_infer_iters or out_of_tokens:
                if inference.tool_calls:  # max_infer_iters: the calls are not run
                    log.info("agent_max_infer_iters", iterations=iters)
                    # Calls without results would make the next turn's history invalid (OpenAI-compatible
                    # upstreams refuse a tool call no tool message answers): keep the text only.
                    added.pop()
                    if inference.text:
                        added.append({"role": "assistant", "content": inference.text})
                if request.output_shields:
                    async for event in self._shields(request.output_shields, messages, "llm-output", clock):
                        yield event
                        if isinstance(event, ShieldFinished) and _ends_turn(event.violation):
                            yield _violation_finish(event.violation, iters, added, usage)
                            return
                yield Finished(
                    inference.text, "out_of_tokens" if out_of_tokens else "end_of_turn", iters, added, usage
                )
                return
            tool_choice = "auto"  # a forced choice was honoured; from now on the model decides
            client_calls = []
            for call in inference.tool_calls:
                tool = tools.get(call.name)
                if tool is not None and tool.client:
                    client_calls.append(call)
                    continue
                async for event in self._run_tool(call, tool, clock):
                    yield event
                    if isinstance(event, ToolFinished):
                        message = {
                            "role": "tool",
                            "tool_call_id": call.call_id,
                            "content": content_to_text(event.result.content, separator="\n"),
                        }
                        messages.append(message)
                        added.append(message)
            if client_calls:
                yield AwaitingClientTools(
                    str(uuid.uuid4()), _now(), inference.text, client_calls, iters, added, usage
                )
                return

    # -- one model call ---------------------------------------------------------------------------

    async def _infer(
        self,
        request: EngineRequest,
        step_id: str,
        messages: list[dict[str, Any]],
        tool_choice: str,
        clock: RunClock,
        max_tokens: int | None = None,
    ) -> AsyncIterator[EngineEvent]:
        started = _now()
        body: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            # The turn or response is what is kept; its model calls are not the caller's chat
            # completions, so they stay out of the inference store's listing.
            "store": False,
            **request.sampling,
        }
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if request.tools and tool_choice != "none":
            body["tools"] = [tool.openai() for tool in request.tools]
            if tool_choice in ("auto", "required"):
                body["tool_choice"] = tool_choice
            else:
                body["tool_choice"] = {"type": "function", "function": {"name": tool_choice}}
        if request.response_format is not None:
            body["response_format"] = request.response_format
        chat = OpenAIChatCompletionRequest.model_validate(body)
        stream = await clock.wait("model", self.inference.openai_chat_completion(chat))
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        finish: str | None = None
        usage: dict[str, int] = {}
        only: int | None = None  # parallel_tool_calls false: the index of the one call kept
        dropped: set[int] = set()
        if not hasattr(stream, "__anext__"):  # a provider that answered in one piece
            stream = _as_stream(stream)
        try:
            while True:
                chunk = await clock.wait("model", anext(stream, None))
                if chunk is None:
                    break
                _add_usage(usage, chunk.get("usage"))
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        text.append(delta["content"])
                        yield TextDelta(step_id, delta["content"])
                    for part in delta.get("tool_calls") or []:
                        index = part.get("index", 0)
                        if not request.parallel_tool_calls:
                            only = index if only is None else only
                            if index != only:
                                dropped.add(index)
                                continue
                        call = calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
                        function = part.get("function") or {}
                        call["id"] = part.get("id") or call["id"]
                        call["name"] += function.get("name") or ""
                        call["arguments"] += function.get("arguments") or ""
                        yield ToolCallDelta(
                            step_id,
                            index,
                            part.get("id"),
                            function.get("name"),
                            function.get("arguments") or "",
                        )
                    finish = choice.get("finish_reason") or finish
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await clock.wait("model", aclose())
        tool_calls = [
            EngineToolCall(c["id"] or f"call_{uuid.uuid4().hex[:24]}", c["name"], c["arguments"] or "{}")
            for _, c in sorted(calls.items())
        ]
        if dropped:
            log.warning("agent_parallel_tool_calls_dropped", model=request.model, dropped=len(dropped))
        yield InferenceFinished(step_id, started, _now(), "".join(text), tool_calls, finish, usage)

    # -- tools and shields --------------------------------------------------------------------------

    async def _run_tool(
        self, call: EngineToolCall, tool: EngineTool | None, clock: RunClock
    ) -> AsyncIterator[EngineEvent]:
        step_id = str(uuid.uuid4())
        yield StepStarted(step_id, "tool_execution")
        started = _now()
        args = call.parsed_arguments()
        if tool is None:  # the model named a tool it was not offered: it hears so and may retry
            result = ToolResult(
                call.call_id,
                call.name,
                f"error: no tool named '{call.name}' is offered in this turn",
                error="unknown tool",
            )
        elif args is None:
            result = ToolResult(
                call.call_id,
                call.name,
                f"error: the arguments are not a JSON object: {call.arguments[:200]}",
                error="bad arguments",
            )
        elif self.tool_runtime is None and tool.invoke is None:
            result = ToolResult(
                call.call_id, call.name, "error: no tool runtime is configured", error="no runtime"
            )
        else:
            try:
                kwargs = {**args, **tool.bound_args}
                if tool.invoke is not None:
                    invoked = await clock.wait("tool", tool.invoke(kwargs))
                else:
                    invoked = await clock.wait(
                        "tool",
                        self.tool_runtime.invoke_tool(
                            InvokeToolRequest(tool_name=tool.runtime_name or call.name, kwargs=kwargs)
                        ),
                    )
                if invoked.error_message:
                    result = ToolResult(
                        call.call_id,
                        call.name,
                        invoked.content or f"error: {invoked.error_message}",
                        invoked.metadata,
                        invoked.error_message,
                    )
                else:
                    result = ToolResult(call.call_id, call.name, invoked.content or "", invoked.metadata)
            except LaminaError as exc:
                log.warning("agent_tool_failed", tool=call.name, status=exc.status, error=exc.message)
                result = ToolResult(call.call_id, call.name, f"error: {exc.message}", error=exc.message)
        yield ToolFinished(step_id, started, _now(), call, result)

    async def _shields(
        self, shields: list[str], messages: list[dict[str, Any]], touchpoint: str, clock: RunClock
    ) -> AsyncIterator[EngineEvent]:
        step_id = str(uuid.uuid4())
        yield StepStarted(step_id, "shield_call", {"touchpoint": touchpoint})
        started = _now()
        if self.safety is None:
            raise BadRequestError(
                f"the agent has shields {shields} but no safety provider is configured; add one under "
                "providers.safety or remove the shields",
                param="agent_config.input_shields",
            )
        judged = [
            UserMessage(content=content_to_text(m.get("content"), separator="\n") or " ")
            for m in messages
            if m.get("role") in ("user", "assistant") and m.get("content")
        ][-1:]
        violation: SafetyViolation | None = None
        for shield_id in shields:
            if not judged:
                break
            response = await clock.wait(
                "shield", self.safety.run_shield(RunShieldRequest(shield_id=shield_id, messages=judged))
            )
            if response.violation is not None:
                violation = response.violation
                if _ends_turn(violation):
                    break
        yield ShieldFinished(step_id, started, _now(), touchpoint, violation)


def _ends_turn(violation: SafetyViolation | None) -> bool:
    return violation is not None and violation.violation_level == "error"


def _violation_finish(
    violation: SafetyViolation | None, iters: int, added: list[dict[str, Any]], usage: dict[str, int]
) -> Finished:
    assert violation is not None
    text = violation.user_message or "I can't answer that: a safety shield flagged the conversation."
    return Finished(text, "end_of_turn", iters, added, usage, violation)


def _check_tool_choice(request: EngineRequest) -> None:
    choice = request.tool_choice
    if choice in ("auto", "required", "none"):
        return
    names = [tool.name for tool in request.tools]
    if choice not in names:
        raise BadRequestError(
            f"tool_config.tool_choice: {choice!r} is not 'auto', 'required', 'none' or one of this turn's "
            f"tools ({', '.join(names) or 'none offered'}); name an offered tool",
            param="tool_config.tool_choice",
        )


async def _as_stream(answer: Any) -> AsyncIterator[dict[str, Any]]:
    """A non-streamed chat completion as the one chunk it amounts to."""
    doc = answer.model_dump(mode="json") if hasattr(answer, "model_dump") else dict(answer)
    choices = []
    for choice in doc.get("choices") or []:
        message = choice.get("message") or {}
        calls = [{"index": i, **c} for i, c in enumerate(message.get("tool_calls") or [])]
        choices.append(
            {
                "index": choice.get("index", 0),
                "delta": {"content": message.get("content"), "tool_calls": calls},
                "finish_reason": choice.get("finish_reason"),
            }
        )
    yield {"choices": choices, "usage": doc.get("usage")}


def _whole(call: EngineToolCall) -> bool:
    """Whether a call's arguments are complete JSON (an object), not cut off by the token limit."""
    try:
        return isinstance(json.loads(call.arguments or "{}"), dict)
    except ValueError:
        return False
