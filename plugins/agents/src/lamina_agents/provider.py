"""The Agents facade: Llama Stack's Agents API on the engine (``lamina_agents.engine``).

A turn is built from the agent's config and the turn's request (``lamina_agents.turn_input``), run
by the engine, and its events become ``AgentTurnResponseStreamChunk`` events and steps
(``TurnRecorder``). A streamed turn sends them as they happen; a non-streamed one (which Llama Stack
0.2.12 answers with 501) runs the same loop and answers the finished ``Turn``. The turn is stored
when it starts, after every step and when it ends; a model failure ends it ``failed`` (the stream
ends with an error event, a non-streamed call gets the router's error), a client that goes away
mid-stream leaves it failed with that reason.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from lamina.apis.agents import (
    Agent,
    AgentConfig,
    AgentCreateResponse,
    AgentRequest,
    AgentSessionCreateResponse,
    AgentStepResponse,
    AgentToolGroupWithArgs,
    AgentTurnCreateRequest,
    AgentTurnResponseEvent,
    AgentTurnResponseStepCompletePayload,
    AgentTurnResponseStepProgressPayload,
    AgentTurnResponseStepStartPayload,
    AgentTurnResponseStreamChunk,
    AgentTurnResponseTurnAwaitingInputPayload,
    AgentTurnResponseTurnCompletePayload,
    AgentTurnResponseTurnStartPayload,
    AgentTurnResumeRequest,
    BatchAgentJob,
    BatchAgentJobRequest,
    CreateAgentRequest,
    CreateAgentSessionRequest,
    CreateBatchAgentJobRequest,
    GetAgentSessionRequest,
    InferenceStep,
    ListAgentSessionsRequest,
    ListBatchAgentJobsRequest,
    ListBatchAgentJobsResponse,
    MemoryRetrievalStep,
    PageRequest,
    PaginatedResponse,
    Session,
    SessionRequest,
    ShieldCallStep,
    StepRequest,
    ToolExecutionStep,
    ToolResponse,
    Turn,
    TurnRequest,
)
from lamina.apis.common import content_to_text
from lamina.apis.inference import CompletionMessage, TextDelta, ToolCall, ToolCallDelta, ToolConfig
from lamina.apis.responses import (
    CreateResponseRequest,
    InputItemList,
    ListInputItemsRequest,
    ListResponsesRequest,
    ListResponsesResponse,
    ResponseDeleted,
    ResponseIdRequest,
    ResponseObject,
)
from lamina.errors import BadRequestError, NotFoundError
from lamina.providers import ProviderBase, ProviderContext
from lamina.specs import Api
from lamina.storage.config import SqliteKVStoreConfig
from lamina.storage.kvstore import open_kvstore
from lamina.telemetry import spans
from lamina_agents import engine as E
from lamina_agents.batch_runs import BatchRuns
from lamina_agents.config import MetaReferenceAgentsImplConfig
from lamina_agents.responses_facade import ResponsesFacade
from lamina_agents.store import (
    AWAITING,
    COMPLETED,
    RUNNING,
    AgentsStore,
    SessionRecord,
    TurnRecord,
    mark_failed,
)
from lamina_agents.turn_input import (
    build_request,
    documents_text,
    history,
    input_to_openai,
    tool_response_messages,
)

log = structlog.get_logger(__name__)


async def create_provider(
    config: MetaReferenceAgentsImplConfig, deps: dict[Any, Any], context: ProviderContext
) -> MetaReferenceAgentsImpl:
    return MetaReferenceAgentsImpl(config, context, deps)


def _now() -> datetime:
    return datetime.now(UTC)


def _chunk(payload: Any) -> AgentTurnResponseStreamChunk:
    return AgentTurnResponseStreamChunk(event=AgentTurnResponseEvent(payload=payload))


def _page(items: list[dict[str, Any]], request: PageRequest) -> PaginatedResponse:
    start = request.start_index or 0
    end = len(items) if request.limit is None else start + request.limit
    return PaginatedResponse(data=items[start:end], has_more=end < len(items))


def _tool_call(call: E.EngineToolCall) -> ToolCall:
    parsed = call.parsed_arguments()
    return ToolCall(
        call_id=call.call_id,
        tool_name=call.name,
        arguments=parsed if parsed is not None else call.arguments,
        arguments_json=call.arguments,
    )


class MetaReferenceAgentsImpl(ProviderBase):
    def __init__(
        self, config: MetaReferenceAgentsImplConfig, context: ProviderContext, deps: dict[Any, Any]
    ) -> None:
        super().__init__(context)
        self.config = config
        self.inference = deps[Api.inference]
        self.tool_runtime = deps.get(Api.tool_runtime)
        self.safety = deps.get(Api.safety)
        self.engine = E.AgentEngine(self.inference, self.tool_runtime, self.safety)
        self.store: AgentsStore | None = None
        vector_io = deps.get(Api.vector_io)
        self.responses = ResponsesFacade(
            self.engine,
            config.responses_store,
            context.state_dir / "responses_store.db",
            getattr(vector_io, "vector_stores", None),
            self.tool_runtime,
        )
        self.batch_runs = BatchRuns(self, context.jobs, deps.get(Api.datasetio), deps.get(Api.files))

    async def initialize(self) -> None:
        self.batch_runs.register()  # before the scheduler starts: a stopped server's runs find it
        kv_config = self.config.persistence_store or SqliteKVStoreConfig(
            db_path=str(self.context.state_dir / "agents_store.db")
        )
        if isinstance(kv_config, SqliteKVStoreConfig):  # its directory may not exist yet
            await asyncio.to_thread(_ensure_parent, kv_config.db_path)
        self.store = AgentsStore(await open_kvstore(kv_config))
        failed = await self.store.fail_interrupted()
        if failed:
            log.warning("agents_interrupted_turns_failed", turns=failed)
        await self.responses.initialize()

    async def shutdown(self) -> None:
        if self.store is not None:
            await self.store.kv.close()
        await self.responses.shutdown()

    @property
    def db(self) -> AgentsStore:
        assert self.store is not None, "the agents provider is not initialized"
        return self.store

    # -- the Responses API (lamina_agents.responses_facade) -----------------------------------------

    async def create_openai_response(self, request: CreateResponseRequest) -> Any:
        return await self.responses.create(request)

    async def list_openai_responses(self, request: ListResponsesRequest) -> ListResponsesResponse:
        return await self.responses.list(request)

    async def get_openai_response(self, request: ResponseIdRequest) -> ResponseObject:
        return await self.responses.get(request)

    async def delete_openai_response(self, request: ResponseIdRequest) -> ResponseDeleted:
        return await self.responses.delete(request)

    async def list_openai_response_input_items(self, request: ListInputItemsRequest) -> InputItemList:
        return await self.responses.input_items(request)

    # -- batch agents (lamina_agents.batch_runs) ---------------------------------------------------

    async def create_batch_agent_job(self, request: CreateBatchAgentJobRequest) -> BatchAgentJob:
        return await self.batch_runs.create(request)

    async def list_batch_agent_jobs(self, request: ListBatchAgentJobsRequest) -> ListBatchAgentJobsResponse:
        return await self.batch_runs.list(request)

    async def get_batch_agent_job(self, request: BatchAgentJobRequest) -> BatchAgentJob:
        return await self.batch_runs.get(request)

    async def cancel_batch_agent_job(self, request: BatchAgentJobRequest) -> BatchAgentJob:
        return await self.batch_runs.cancel(request)

    async def check_agent(self, agent_id: str) -> None:
        """404 naming ``agent_id`` when there is no such agent."""
        await self._agent(agent_id)

    async def check_config(self, config: AgentConfig) -> None:
        """A 4xx naming the field when an agent with ``config`` could not run a turn (unknown model...)."""
        await self._preflight(config)

    async def create_agent_from_config(self, config: AgentConfig) -> AgentCreateResponse:
        return await self.create_agent(CreateAgentRequest(agent_config=config))

    # -- agents and sessions ------------------------------------------------------------------------

    async def create_agent(self, request: CreateAgentRequest) -> AgentCreateResponse:
        agent = Agent(agent_id=str(uuid.uuid4()), agent_config=request.agent_config, created_at=_now())
        await self.db.put_agent(agent)
        return AgentCreateResponse(agent_id=agent.agent_id)

    async def list_agents(self, request: PageRequest) -> PaginatedResponse:
        agents = [a.model_dump(mode="json") for a in await self.db.list_agents()]
        return _page(agents, request)

    async def _agent(self, agent_id: str) -> Agent:
        agent = await self.db.get_agent(agent_id)
        if agent is None:
            raise NotFoundError(
                f"agent '{agent_id}' not found; create one with POST /v1/agents", param="agent_id"
            )
        return agent

    async def get_agent(self, request: AgentRequest) -> Agent:
        return await self._agent(request.agent_id)

    async def delete_agent(self, request: AgentRequest) -> None:
        await self._agent(request.agent_id)
        await self.db.delete_agent(request.agent_id)

    async def create_agent_session(self, request: CreateAgentSessionRequest) -> AgentSessionCreateResponse:
        await self._agent(request.agent_id)
        session = SessionRecord(
            session_id=str(uuid.uuid4()), session_name=request.session_name, started_at=_now()
        )
        await self.db.put_session(request.agent_id, session)
        return AgentSessionCreateResponse(session_id=session.session_id)

    async def list_agent_sessions(self, request: ListAgentSessionsRequest) -> PaginatedResponse:
        await self._agent(request.agent_id)
        sessions = []
        for record in await self.db.list_sessions(request.agent_id):
            turns = [t.turn for t in await self.db.list_turns(record.session_id)]
            sessions.append(Session(**record.model_dump(), turns=turns).model_dump(mode="json"))
        return _page(sessions, request)

    async def _session(self, agent_id: str, session_id: str) -> SessionRecord:
        await self._agent(agent_id)
        session = await self.db.get_session(agent_id, session_id)
        if session is None:
            raise NotFoundError(
                f"session '{session_id}' not found for agent '{agent_id}'; create one with "
                f"POST /v1/agents/{agent_id}/session",
                param="session_id",
            )
        return session

    async def get_agents_session(self, request: GetAgentSessionRequest) -> Session:
        record = await self._session(request.agent_id, request.session_id)
        turns = [t.turn for t in await self.db.list_turns(record.session_id)]
        if request.turn_ids:
            wanted = set(request.turn_ids)
            turns = [t for t in turns if t.turn_id in wanted]
        return Session(**record.model_dump(), turns=turns)

    async def delete_agents_session(self, request: SessionRequest) -> None:
        await self._session(request.agent_id, request.session_id)
        await self.db.delete_session(request.agent_id, request.session_id)

    async def _turn(self, request: TurnRequest) -> TurnRecord:
        await self._session(request.agent_id, request.session_id)
        record = await self.db.get_turn(request.turn_id)
        if record is None or record.turn.session_id != request.session_id:
            raise NotFoundError(
                f"turn '{request.turn_id}' not found in session '{request.session_id}'", param="turn_id"
            )
        return record

    async def get_agents_turn(self, request: TurnRequest) -> Turn:
        return (await self._turn(request)).turn

    async def get_agents_step(self, request: StepRequest) -> AgentStepResponse:
        record = await self._turn(request)
        for step in record.turn.steps:
            if step.step_id == request.step_id:
                return AgentStepResponse(step=step)
        raise NotFoundError(
            f"step '{request.step_id}' not found in turn '{request.turn_id}'", param="step_id"
        )

    # -- turns ----------------------------------------------------------------------------------------

    async def create_agent_turn(
        self, request: AgentTurnCreateRequest
    ) -> Turn | AsyncIterator[AgentTurnResponseStreamChunk]:
        agent = await self._agent(request.agent_id)
        await self._session(request.agent_id, request.session_id)
        previous = await self.db.list_turns(request.session_id)
        if any(t.status == RUNNING for t in previous):
            raise BadRequestError(
                f"session '{request.session_id}' has a turn still running; wait for it to end",
                param="session_id",
            )
        await self._preflight(agent.agent_config)
        retrieval_started = _now()
        engine_request = await build_request(
            agent.agent_config, request, history(agent.agent_config, previous), self.tool_runtime
        )
        turn_id = str(uuid.uuid4())
        steps: list[Any] = []
        inserted = documents_text(request.documents)
        if inserted is not None:  # the documents went into the context: a memory_retrieval step says so
            steps.append(
                MemoryRetrievalStep(
                    turn_id=turn_id,
                    step_id=str(uuid.uuid4()),
                    started_at=retrieval_started,
                    completed_at=_now(),
                    vector_db_ids="",  # attached to the turn, not searched in a vector DB
                    inserted_context=inserted,
                )
            )
        record = TurnRecord(
            key=await self.db.new_turn_key(request.session_id, turn_id),
            turn=Turn(
                turn_id=turn_id,
                session_id=request.session_id,
                input_messages=request.messages,
                steps=list(steps),
                output_message=CompletionMessage(content=""),
                started_at=_now(),
            ),
            transcript=input_to_openai(request.messages, request.documents),
            toolgroups=[g if isinstance(g, str) else g.model_dump() for g in request.toolgroups or []]
            or None,
            tool_config=request.tool_config.model_dump() if request.tool_config else None,
        )
        await self.db.put_turn(record, new=True)
        first = [chunk for step in steps for chunk in _step_chunks(step)]
        events = self._run(record, engine_request, start=True, first=first)
        events = self._traced(events, agent, record)
        return events if request.stream else await _collect(events, record)

    async def resume_agent_turn(
        self, request: AgentTurnResumeRequest
    ) -> Turn | AsyncIterator[AgentTurnResponseStreamChunk]:
        agent = await self._agent(request.agent_id)
        record = await self._turn(request)
        if record.status != AWAITING:
            raise BadRequestError(
                f"turn '{request.turn_id}' is {record.status}, not awaiting client tools' results; only a "
                "turn that ended with turn_awaiting_input can be resumed",
                param="turn_id",
            )
        expected = {c["call_id"] for c in record.pending_calls}
        given = {r.call_id for r in request.tool_responses}
        if expected - given:
            raise BadRequestError(
                f"tool_responses: no result for call(s) {sorted(expected - given)}; the turn awaits one "
                f"result per client tool call ({sorted(expected)})",
                param="tool_responses",
            )
        previous = [
            t for t in await self.db.list_turns(request.session_id) if t.turn.turn_id != record.turn.turn_id
        ]
        messages = history(agent.agent_config, previous) + record.transcript
        # Results for calls the turn did not make are dropped: a tool message answering no call of the
        # conversation is refused by OpenAI-compatible upstreams.
        responses = [r for r in request.tool_responses if r.call_id in expected]
        results = tool_response_messages(responses)
        await self._preflight(agent.agent_config)
        engine_request = await build_request(
            agent.agent_config,
            None,
            messages + results,
            self.tool_runtime,
            turn_groups=[
                g if isinstance(g, str) else AgentToolGroupWithArgs.model_validate(g)
                for g in record.toolgroups or []
            ],
            turn_tool_config=ToolConfig.model_validate(record.tool_config) if record.tool_config else None,
        )
        # Only now, with everything checked, does the turn run again (a 4xx above leaves it awaiting).
        step = ToolExecutionStep(
            step_id=record.pending_step_id or str(uuid.uuid4()),
            turn_id=record.turn.turn_id,
            tool_calls=[ToolCall.model_validate(c) for c in record.pending_calls],
            tool_responses=responses,
            started_at=record.turn.completed_at,
            completed_at=_now(),
        )
        record.turn.steps.append(step)
        record.transcript += results
        record.status, record.pending_calls, record.pending_step_id = RUNNING, [], None
        record.turn.completed_at = None
        await self.db.put_turn(record)
        engine_request.iterations_done = record.iterations_done
        engine_request.check_input = False
        if engine_request.tool_choice != "none":  # a forced call was made: the model decides from now on
            engine_request.tool_choice = "auto"
        first = [_step_complete(step)]
        events = self._run(record, engine_request, start=False, first=first)
        events = self._traced(events, agent, record)
        return events if request.stream else await _collect(events, record)

    def _traced(
        self, events: AsyncIterator[AgentTurnResponseStreamChunk], agent: Agent, record: TurnRecord
    ) -> AsyncIterator[AgentTurnResponseStreamChunk]:
        """The turn's chunks inside its ``invoke_agent`` span (telemetry on; lamina_agents.turn_spans)."""
        if spans.tracer() is None:
            return events
        from lamina_agents.turn_spans import traced_turn

        turn = record.turn
        return traced_turn(
            events,
            agent_id=agent.agent_id,
            agent_name=getattr(agent.agent_config, "name", None),
            session_id=turn.session_id,
            turn_id=turn.turn_id,
            input_messages=turn.input_messages,
            output=lambda: content_to_text(turn.output_message.content) if turn.output_message else None,
        )

    async def _preflight(self, config: AgentConfig) -> None:
        """What would fail a turn's first step fails the request instead (a 4xx, no turn stored): an
        unknown model or shield, shields without a safety provider."""
        try:
            await self.inference.models.resolve_typed(config.model, "llm")
        except (NotFoundError, BadRequestError) as exc:
            raise type(exc)(f"agent_config.model: {exc.message}", param="agent_config.model") from None
        for field in ("input_shields", "output_shields"):
            for shield_id in getattr(config, field) or []:
                if self.safety is None:
                    raise BadRequestError(
                        f"agent_config.{field}: the agent uses shield '{shield_id}' but no safety provider "
                        "is configured; add one under providers.safety or remove the shield",
                        param=f"agent_config.{field}",
                    )
                try:
                    await self.safety.shields.resolve(shield_id)
                except (NotFoundError, BadRequestError) as exc:
                    raise type(exc)(
                        f"agent_config.{field}: {exc.message}", param=f"agent_config.{field}"
                    ) from None

    async def _run(
        self,
        record: TurnRecord,
        request: E.EngineRequest,
        *,
        start: bool,
        first: list[AgentTurnResponseStreamChunk] | None = None,
    ) -> AsyncIterator[AgentTurnResponseStreamChunk]:
        """``first``: the chunks of steps recorded before the loop (memory retrieval, resumed tools)."""
        turn = record.turn
        if start:
            yield _chunk(AgentTurnResponseTurnStartPayload(turn_id=turn.turn_id))
        for chunk in first or []:
            yield chunk
        clock = E.RunClock()
        try:
            async for event in self.engine.run(request, clock):
                # The facade's own work on the event (steps, wire chunks) is timed; the store's waits
                # are not (clock.store_ns).
                started, stored = time.perf_counter_ns(), clock.store_ns
                chunks = await self._on_event(record, event, clock)
                clock.facade_ns += time.perf_counter_ns() - started - (clock.store_ns - stored)
                for chunk in chunks:
                    yield chunk
        except BaseException as exc:  # GeneratorExit (client gone), CancelledError, upstream failures
            if record.status == RUNNING:
                reason = _failure_reason(exc)
                mark_failed(record, reason)
                log.warning("agent_turn_failed", turn_id=turn.turn_id, reason=reason)
                await _quietly(self.db.put_turn(record))
            raise

    async def _on_event(
        self, record: TurnRecord, event: Any, clock: E.RunClock
    ) -> list[AgentTurnResponseStreamChunk]:
        turn = record.turn
        if isinstance(event, E.StepStarted):
            return [
                _chunk(
                    AgentTurnResponseStepStartPayload(
                        step_type=event.step_type, step_id=event.step_id, metadata=event.metadata
                    )
                )
            ]
        if isinstance(event, E.TextDelta):
            return [
                _chunk(
                    AgentTurnResponseStepProgressPayload(
                        step_type="inference", step_id=event.step_id, delta=TextDelta(text=event.text)
                    )
                )
            ]
        if isinstance(event, E.ToolCallDelta):
            return []  # the whole call is sent once parsed (InferenceFinished), as Llama Stack does
        if isinstance(event, E.InferenceFinished):
            chunks = [
                _chunk(
                    AgentTurnResponseStepProgressPayload(
                        step_type="inference",
                        step_id=event.step_id,
                        delta=ToolCallDelta(tool_call=_tool_call(call), parse_status="succeeded"),
                    )
                )
                for call in event.tool_calls
            ]
            step = InferenceStep(
                turn_id=turn.turn_id,
                step_id=event.step_id,
                started_at=event.started_at,
                completed_at=event.completed_at,
                model_response=CompletionMessage(
                    content=event.text if not event.tool_calls else "",
                    stop_reason="out_of_tokens"
                    if event.finish_reason == "length"
                    else ("end_of_message" if event.tool_calls else "end_of_turn"),
                    tool_calls=[_tool_call(c) for c in event.tool_calls],
                ),
            )
            return [*chunks, await self._step_done(record, step, clock)]
        if isinstance(event, E.ToolFinished):
            result = event.result
            step = ToolExecutionStep(
                turn_id=turn.turn_id,
                step_id=event.step_id,
                started_at=event.started_at,
                completed_at=event.completed_at,
                tool_calls=[_tool_call(event.call)],
                tool_responses=[
                    ToolResponse(
                        call_id=result.call_id,
                        tool_name=result.name,
                        content=result.content,
                        # A tool that failed says so in the metadata (its content is the model's error text).
                        metadata=result.metadata
                        if result.error is None
                        else {**(result.metadata or {}), "error": result.error},
                    )
                ],
            )
            return [await self._step_done(record, step, clock)]
        if isinstance(event, E.ShieldFinished):
            step = ShieldCallStep(
                turn_id=turn.turn_id,
                step_id=event.step_id,
                started_at=event.started_at,
                completed_at=event.completed_at,
                violation=event.violation,
            )
            return [await self._step_done(record, step, clock)]
        if isinstance(event, E.AwaitingClientTools):
            calls = [_tool_call(c) for c in event.calls]
            turn.output_message = CompletionMessage(
                content=event.text, stop_reason="end_of_message", tool_calls=calls
            )
            turn.completed_at = _now()
            record.status = AWAITING
            record.iterations_done = event.iterations_done
            record.pending_step_id = event.step_id
            record.pending_calls = [c.model_dump(mode="json") for c in calls]
            record.transcript += event.added
            await clock.wait("store", self.db.put_turn(record))
            return [_chunk(AgentTurnResponseTurnAwaitingInputPayload(turn=turn))]
        if isinstance(event, E.Finished):
            turn.output_message = CompletionMessage(content=event.text, stop_reason=event.stop_reason)
            turn.completed_at = _now()
            record.status = COMPLETED
            record.iterations_done = event.iterations_done
            record.transcript += event.added
            if event.violation is not None:  # the shield's answer is the turn's output
                record.transcript.append({"role": "assistant", "content": event.text})
            await clock.wait("store", self.db.put_turn(record))
            return [_chunk(AgentTurnResponseTurnCompletePayload(turn=turn))]
        raise AssertionError(f"unexpected engine event {event!r}")

    async def _step_done(
        self, record: TurnRecord, step: Any, clock: E.RunClock
    ) -> AgentTurnResponseStreamChunk:
        record.turn.steps.append(step)
        await clock.wait("store", self.db.put_turn(record))
        return _step_complete(step)


def _step_complete(step: Any) -> AgentTurnResponseStreamChunk:
    return _chunk(
        AgentTurnResponseStepCompletePayload(
            step_type=step.step_type, step_id=step.step_id, step_details=step
        )
    )


def _step_chunks(step: Any) -> list[AgentTurnResponseStreamChunk]:
    """A step recorded whole (no progress): its step_start and step_complete."""
    start = AgentTurnResponseStepStartPayload(step_type=step.step_type, step_id=step.step_id)
    return [_chunk(start), _step_complete(step)]


async def _collect(events: AsyncIterator[AgentTurnResponseStreamChunk], record: TurnRecord) -> Turn:
    """A non-streamed turn: run the same loop to its end and answer the turn."""
    async for _ in events:  # a failure raises out of the loop (the turn is recorded failed first)
        pass
    return record.turn


def _ensure_parent(path: str) -> None:
    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, GeneratorExit | asyncio.CancelledError):  # aiohttp cancels a gone client's handler
        return "the client closed the connection (or the server shut down) before the turn ended"
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {message}"


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as exc:  # the turn's own failure is what the client hears about
        log.warning("agent_turn_store_failed", error=str(exc))
