"""Agents: agents, sessions and turns of Llama Stack 0.2.x, on the wire as llama-stack-client 0.2.12 reads.

An agent is a saved configuration (model, instructions, tool groups, shields, sampling). A session is
one conversation with it; each turn takes the user's (or client tools') messages, runs the agent loop
(input shields, inference, tool execution, memory retrieval, output shields) and ends with an
assistant message, or, when the model calls a client tool, awaiting that tool's result (``resume``).
Every step of a turn is kept and retrievable by id. A streamed turn sends
``AgentTurnResponseStreamChunk`` events: ``turn_start``, then per step ``step_start``,
``step_progress``* (text and tool-call deltas), ``step_complete``, and ``turn_complete`` or
``turn_awaiting_input``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lamina.access.declarations import creates, deletes, lists, reads, updates
from lamina.apis.common import URL, InterleavedContent
from lamina.apis.inference import (
    CompletionMessage,
    ContentDelta,
    ResponseFormat,
    SamplingParams,
    ToolCall,
    ToolConfig,
    ToolPromptFormat,
    ToolResponseMessage,
    UserMessage,
)
from lamina.apis.jobs import JobStatus
from lamina.apis.responses import (
    CreateResponseRequest,
    InputItemList,
    ListInputItemsRequest,
    ListResponsesRequest,
    ListResponsesResponse,
    ResponseDeleted,
    ResponseIdRequest,
    ResponseObject,
    ResponseStreamChunk,
)
from lamina.apis.safety import SafetyViolation
from lamina.apis.tools import ToolDef
from lamina.apis.webmethod import webmethod

# -- what a turn takes and gives -----------------------------------------------------------------


class ToolResponse(BaseModel):
    """A tool's result, as a client tool's caller posts it to ``resume``."""

    call_id: str
    tool_name: str
    content: InterleavedContent
    metadata: dict[str, Any] | None = None


class Attachment(BaseModel):
    content: InterleavedContent | URL
    mime_type: str


class Document(BaseModel):
    """A document given with a turn: its text reaches the model with the turn's last user message."""

    content: InterleavedContent | URL
    mime_type: str


# -- steps ---------------------------------------------------------------------------------------

StepType = Literal["inference", "tool_execution", "shield_call", "memory_retrieval"]


class _StepCommon(BaseModel):
    turn_id: str
    step_id: str
    started_at: datetime | None = None
    completed_at: datetime | None = None


class InferenceStep(_StepCommon):
    model_config = ConfigDict(protected_namespaces=())

    step_type: Literal["inference"] = "inference"
    model_response: CompletionMessage


class ToolExecutionStep(_StepCommon):
    step_type: Literal["tool_execution"] = "tool_execution"
    tool_calls: list[ToolCall]
    tool_responses: list[ToolResponse]


class ShieldCallStep(_StepCommon):
    step_type: Literal["shield_call"] = "shield_call"
    violation: SafetyViolation | None = None


class MemoryRetrievalStep(_StepCommon):
    step_type: Literal["memory_retrieval"] = "memory_retrieval"
    vector_db_ids: str = Field(description="The vector DBs searched, comma-separated (Llama Stack's shape).")
    inserted_context: InterleavedContent


Step = Annotated[
    InferenceStep | ToolExecutionStep | ShieldCallStep | MemoryRetrievalStep, Field(discriminator="step_type")
]


class Turn(BaseModel):
    turn_id: str
    session_id: str
    input_messages: list[UserMessage | ToolResponseMessage]
    steps: list[Step]
    output_message: CompletionMessage
    output_attachments: list[Attachment] | None = Field(default_factory=list)
    started_at: datetime
    completed_at: datetime | None = None


class Session(BaseModel):
    session_id: str
    session_name: str
    turns: list[Turn]
    started_at: datetime


# -- agents --------------------------------------------------------------------------------------


class AgentToolGroupWithArgs(BaseModel):
    name: str = Field(description="The tool group's id, e.g. builtin::rag.")
    args: dict[str, Any] = Field(description="Arguments bound to its tools, e.g. {vector_db_ids: [...]}.")


AgentToolGroup = str | AgentToolGroupWithArgs


class AgentConfigCommon(BaseModel):
    sampling_params: SamplingParams | None = Field(default_factory=SamplingParams)
    input_shields: list[str] | None = Field(default_factory=list)
    output_shields: list[str] | None = Field(default_factory=list)
    toolgroups: list[AgentToolGroup] | None = Field(default_factory=list)
    client_tools: list[ToolDef] | None = Field(default_factory=list)
    tool_choice: str | None = Field(default=None, description="Deprecated: tool_config.tool_choice.")
    tool_prompt_format: ToolPromptFormat | None = Field(
        default=None, description="Deprecated: tool_config.tool_prompt_format."
    )
    tool_config: ToolConfig | None = None
    max_infer_iters: int | None = Field(default=10, ge=1, description="Most model calls in one turn.")

    @model_validator(mode="after")
    def _one_tool_config(self) -> AgentConfigCommon:
        """The deprecated top-level fields fill ``tool_config``; both given must agree."""
        if self.tool_config is not None:
            if self.tool_choice and self.tool_config.tool_choice != self.tool_choice:
                raise ValueError(
                    "tool_choice and tool_config.tool_choice disagree; tool_choice is deprecated: set only "
                    "tool_config.tool_choice"
                )
            if self.tool_prompt_format and self.tool_config.tool_prompt_format != self.tool_prompt_format:
                raise ValueError(
                    "tool_prompt_format and tool_config.tool_prompt_format disagree; tool_prompt_format is "
                    "deprecated: set only tool_config.tool_prompt_format"
                )
        else:
            fields: dict[str, Any] = {}
            if self.tool_choice:
                fields["tool_choice"] = self.tool_choice
            if self.tool_prompt_format:
                fields["tool_prompt_format"] = self.tool_prompt_format
            self.tool_config = ToolConfig(**fields)
        return self


class AgentConfig(AgentConfigCommon):
    model: str
    instructions: str
    name: str | None = None
    enable_session_persistence: bool | None = False
    response_format: ResponseFormat | None = None


class Agent(BaseModel):
    agent_id: str
    agent_config: AgentConfig
    created_at: datetime


# -- the turn stream -----------------------------------------------------------------------------


class AgentTurnResponseStepStartPayload(BaseModel):
    event_type: Literal["step_start"] = "step_start"
    step_type: StepType
    step_id: str
    metadata: dict[str, Any] | None = Field(default_factory=dict)


class AgentTurnResponseStepProgressPayload(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    event_type: Literal["step_progress"] = "step_progress"
    step_type: StepType
    step_id: str
    delta: ContentDelta


class AgentTurnResponseStepCompletePayload(BaseModel):
    event_type: Literal["step_complete"] = "step_complete"
    step_type: StepType
    step_id: str
    step_details: Step


class AgentTurnResponseTurnStartPayload(BaseModel):
    event_type: Literal["turn_start"] = "turn_start"
    turn_id: str


class AgentTurnResponseTurnCompletePayload(BaseModel):
    event_type: Literal["turn_complete"] = "turn_complete"
    turn: Turn


class AgentTurnResponseTurnAwaitingInputPayload(BaseModel):
    event_type: Literal["turn_awaiting_input"] = "turn_awaiting_input"
    turn: Turn


AgentTurnResponseEventPayload = Annotated[
    AgentTurnResponseStepStartPayload
    | AgentTurnResponseStepProgressPayload
    | AgentTurnResponseStepCompletePayload
    | AgentTurnResponseTurnStartPayload
    | AgentTurnResponseTurnCompletePayload
    | AgentTurnResponseTurnAwaitingInputPayload,
    Field(discriminator="event_type"),
]


class AgentTurnResponseEvent(BaseModel):
    payload: AgentTurnResponseEventPayload


class AgentTurnResponseStreamChunk(BaseModel):
    event: AgentTurnResponseEvent


# -- requests and answers ------------------------------------------------------------------------


class CreateAgentRequest(BaseModel):
    agent_config: AgentConfig


class AgentCreateResponse(BaseModel):
    agent_id: str


class AgentRequest(BaseModel):
    agent_id: str = Field(min_length=1)


class PageRequest(BaseModel):
    start_index: int | None = Field(default=None, ge=0)
    limit: int | None = Field(default=None, ge=1)


class ListAgentSessionsRequest(PageRequest):
    agent_id: str = Field(min_length=1)


class PaginatedResponse(BaseModel):
    """A page of a list: ``data`` from ``start_index``, and whether more follow."""

    data: list[dict[str, Any]]
    has_more: bool
    url: str | None = None


class CreateAgentSessionRequest(BaseModel):
    agent_id: str = Field(min_length=1)
    session_name: str


class AgentSessionCreateResponse(BaseModel):
    session_id: str


class SessionRequest(BaseModel):
    agent_id: str = Field(min_length=1)
    session_id: str = Field(min_length=1)


class GetAgentSessionRequest(SessionRequest):
    turn_ids: list[str] | None = Field(default=None, description="Only these turns (all when absent).")


class AgentTurnCreateRequest(BaseModel):
    """A turn: its messages, and the tool groups and tool config it uses instead of the agent's."""

    agent_id: str = Field(min_length=1)
    session_id: str = Field(min_length=1)
    messages: list[UserMessage | ToolResponseMessage] = Field(min_length=1)
    stream: bool | None = False
    documents: list[Document] | None = None
    toolgroups: list[AgentToolGroup] | None = Field(
        default=None,
        description="The tool groups this turn offers instead of the agent's (absent: the agent's); args "
        "the agent binds to a group still apply unless the turn gives the group its own.",
    )
    tool_config: ToolConfig | None = Field(default=None, description="Absent: the agent's.")


class AgentTurnResumeRequest(BaseModel):
    agent_id: str = Field(min_length=1)
    session_id: str = Field(min_length=1)
    turn_id: str = Field(min_length=1)
    tool_responses: list[ToolResponse] = Field(min_length=1)
    stream: bool | None = False


class TurnRequest(SessionRequest):
    turn_id: str = Field(min_length=1)


class StepRequest(TurnRequest):
    step_id: str = Field(min_length=1)


class AgentStepResponse(BaseModel):
    step: Step


# -- batch agents: an agent over the rows of a dataset or a JSONL file, as a job -------------------


class BatchAgentRowCounts(BaseModel):
    total: int = Field(description="Rows in the run.")
    completed: int = Field(default=0, description="Rows whose turn ended with an answer and no error.")
    failed: int = Field(
        default=0, description="Rows with an error (upstream, tool, shield violation): see their results row."
    )


class CreateBatchAgentJobRequest(BaseModel):
    """Run an agent over rows: one session per row, the row's input as the user turn.

    The agent is a registered ``agent_id`` or an inline ``agent_config`` (created as an agent for the
    run, so its sessions and turns stay readable); the rows are a registered dataset (``dataset_id``) or
    a JSONL file of the Files API (``input_file_id``), one JSON object a line. A row's turn is its
    ``messages_column`` (a list of user messages, or that list as JSON text) when it has one, else its
    ``input_column`` (text) as one user message."""

    agent_id: str | None = Field(default=None, description="A registered agent (or give agent_config).")
    agent_config: AgentConfig | None = Field(default=None, description="An agent for this run (or agent_id).")
    dataset_id: str | None = Field(default=None, description="A registered dataset (or input_file_id).")
    input_file_id: str | None = Field(default=None, description="A JSONL file's id (or dataset_id).")
    input_column: str = Field(default="input", min_length=1, description="The column holding a row's input.")
    messages_column: str = Field(
        default="messages", min_length=1, description="The column holding a row's messages, when it has them."
    )
    results_dataset_id: str | None = Field(
        default=None, description="The dataset the results rows go to (absent: batch-agents-<hex>-results)."
    )
    max_concurrency: int = Field(default=4, ge=1, le=64, description="Rows run at once.")
    metadata: dict[str, str] | None = Field(default=None, description="Kept with the job, for you.")


class BatchAgentJob(BaseModel):
    """A batch agent run: a job of the job system (``GET /v1/jobs/{id}`` shows the same id)."""

    object: Literal["batch_agent_job"] = "batch_agent_job"
    id: str
    status: JobStatus
    agent_id: str
    dataset_id: str | None = None
    input_file_id: str | None = None
    input_column: str
    messages_column: str
    results_dataset_id: str
    row_counts: BatchAgentRowCounts
    created_at: float
    started_at: float | None = None
    completed_at: float | None = None
    error: str | None = Field(default=None, description="Why the run failed or was cancelled.")
    metadata: dict[str, str] | None = None


class ListBatchAgentJobsRequest(BaseModel):
    after: str | None = Field(default=None, description="A job id: the page after it (a page's last_id).")
    limit: int = Field(default=20, ge=1, le=1000)


class ListBatchAgentJobsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchAgentJob]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class BatchAgentJobRequest(BaseModel):
    job_id: str = Field(min_length=1)


# -- the API -------------------------------------------------------------------------------------


def _toolgroup_uses(prefix: str) -> tuple[tuple[str, str], ...]:
    """The tool groups (by name, or with args) and the vector DBs bound to them (RAG's vector_db_ids)
    that ``{prefix}toolgroups`` names: the agent calls them inside the server, so they are checked here."""
    return (
        ("tool_group", f"{prefix}toolgroups[]"),
        ("tool_group", f"{prefix}toolgroups[].name"),
        ("vector_db", f"{prefix}toolgroups[].args.vector_db_ids"),
    )


def _config_uses(prefix: str) -> tuple[tuple[str, str], ...]:
    """What an agent configuration names: its model, shields and tool groups each need read."""
    return (
        ("model", f"{prefix}model"),
        ("shield", f"{prefix}input_shields"),
        ("shield", f"{prefix}output_shields"),
        *_toolgroup_uses(prefix),
    )


_SESSION = "/v1/agents/{agent_id}/session/{session_id}"
_TURN = f"{_SESSION}/turn/{{turn_id}}"


class Agents(Protocol):
    @webmethod(
        "POST",
        "/v1/agents",
        request=CreateAgentRequest,
        response=AgentCreateResponse,
        access=creates("agent", "agent_id", uses=_config_uses("agent_config.")),
    )
    async def create_agent(self, request: CreateAgentRequest) -> AgentCreateResponse:
        """Create an agent from its configuration."""
        ...

    @webmethod(
        "GET",
        "/v1/agents",
        request=PageRequest,
        response=PaginatedResponse,
        access=lists("agent", "agent_id"),
    )
    async def list_agents(self, request: PageRequest) -> PaginatedResponse:
        """List agents, oldest first, a page at a time."""
        ...

    @webmethod(
        "GET",
        "/v1/agents/{agent_id}",
        request=AgentRequest,
        response=Agent,
        access=reads("agent", "agent_id"),
    )
    async def get_agent(self, request: AgentRequest) -> Agent:
        """An agent and its configuration."""
        ...

    @webmethod(
        "DELETE",
        "/v1/agents/{agent_id}",
        request=AgentRequest,
        response=None,
        access=deletes("agent", "agent_id"),
    )
    async def delete_agent(self, request: AgentRequest) -> None:
        """Delete an agent with its sessions and turns."""
        ...

    @webmethod(
        "POST",
        "/v1/agents/{agent_id}/session",
        request=CreateAgentSessionRequest,
        response=AgentSessionCreateResponse,
        access=updates("agent", "agent_id"),
    )
    async def create_agent_session(self, request: CreateAgentSessionRequest) -> AgentSessionCreateResponse:
        """Start a session (a conversation) with an agent."""
        ...

    @webmethod(
        "GET",
        "/v1/agents/{agent_id}/sessions",
        request=ListAgentSessionsRequest,
        response=PaginatedResponse,
        access=reads("agent", "agent_id"),
    )
    async def list_agent_sessions(self, request: ListAgentSessionsRequest) -> PaginatedResponse:
        """List an agent's sessions, oldest first, a page at a time."""
        ...

    @webmethod(
        "GET", _SESSION, request=GetAgentSessionRequest, response=Session, access=reads("agent", "agent_id")
    )
    async def get_agents_session(self, request: GetAgentSessionRequest) -> Session:
        """A session with its turns (or only the turns asked for)."""
        ...

    @webmethod("DELETE", _SESSION, request=SessionRequest, response=None, access=updates("agent", "agent_id"))
    async def delete_agents_session(self, request: SessionRequest) -> None:
        """Delete a session and its turns."""
        ...

    @webmethod(
        "POST",
        f"{_SESSION}/turn",
        request=AgentTurnCreateRequest,
        response=Turn,
        stream_item=AgentTurnResponseStreamChunk,
        access=updates("agent", "agent_id", uses=_toolgroup_uses("")),
    )
    async def create_agent_turn(
        self, request: AgentTurnCreateRequest
    ) -> Turn | AsyncIterator[AgentTurnResponseStreamChunk]:
        """Run a turn: the finished turn, or (``stream``) its events as they happen."""
        ...

    @webmethod(
        "POST",
        f"{_TURN}/resume",
        request=AgentTurnResumeRequest,
        response=Turn,
        stream_item=AgentTurnResponseStreamChunk,
        access=updates("agent", "agent_id"),
    )
    async def resume_agent_turn(
        self, request: AgentTurnResumeRequest
    ) -> Turn | AsyncIterator[AgentTurnResponseStreamChunk]:
        """Continue a turn that awaits client tools' results, with those results."""
        ...

    @webmethod("GET", _TURN, request=TurnRequest, response=Turn, access=reads("agent", "agent_id"))
    async def get_agents_turn(self, request: TurnRequest) -> Turn:
        """A turn with its steps."""
        ...

    @webmethod(
        "GET",
        f"{_TURN}/step/{{step_id}}",
        request=StepRequest,
        response=AgentStepResponse,
        access=reads("agent", "agent_id"),
    )
    async def get_agents_step(self, request: StepRequest) -> AgentStepResponse:
        """One step of a turn."""
        ...


_BATCH = "/v1/batch-agents/jobs"


class BatchAgents(Protocol):
    """Batch agents: an agent over the rows of a dataset or a JSONL file, as a job (docs/batch-agents.md)."""

    @webmethod(
        "POST",
        _BATCH,
        request=CreateBatchAgentJobRequest,
        response=BatchAgentJob,
        access=creates(
            "job",
            uses=(
                ("agent", "agent_id"),
                ("dataset", "dataset_id"),
                ("file", "input_file_id"),
                *_config_uses("agent_config."),  # an inline agent
            ),
        ),
    )
    async def create_batch_agent_job(self, request: CreateBatchAgentJobRequest) -> BatchAgentJob:
        """Start a batch agent run: each row's turn in a session of its own; results to a dataset."""
        ...

    @webmethod(
        "GET",
        _BATCH,
        request=ListBatchAgentJobsRequest,
        response=ListBatchAgentJobsResponse,
        access=lists("job"),
    )
    async def list_batch_agent_jobs(self, request: ListBatchAgentJobsRequest) -> ListBatchAgentJobsResponse:
        """List batch agent runs, newest first, a page at a time."""
        ...

    @webmethod(
        "GET",
        f"{_BATCH}/{{job_id}}",
        request=BatchAgentJobRequest,
        response=BatchAgentJob,
        access=reads("job", "job_id"),
    )
    async def get_batch_agent_job(self, request: BatchAgentJobRequest) -> BatchAgentJob:
        """A batch agent run: its status and row counts."""
        ...

    @webmethod(
        "POST",
        f"{_BATCH}/{{job_id}}/cancel",
        request=BatchAgentJobRequest,
        response=BatchAgentJob,
        access=updates("job", "job_id"),
    )
    async def cancel_batch_agent_job(self, request: BatchAgentJobRequest) -> BatchAgentJob:
        """Cancel a batch agent run: rows in flight stop; finished rows stay in its results dataset."""
        ...


class AgentsProvider(Protocol):
    """What an agents provider implements: every ``Agents`` and ``Responses`` method, with the same
    requests and answers.

    The router (``lamina.routers.agents``) hands each call to the first configured agents provider,
    unchanged. Contract:

    - unknown agent, session, turn or step ids raise ``NotFoundError`` naming the id; a turn whose
      configuration cannot run (unknown tool group, a turn resumed that does not await input) raises
      ``BadRequestError`` naming the field;
    - ``create_agent_turn`` and ``resume_agent_turn`` return the finished ``Turn`` when
      ``request.stream`` is false, else an async iterator of ``AgentTurnResponseStreamChunk``; a
      failure before the first chunk raises (the client gets its HTTP status), a failure after ends
      the stream (the server turns the exception into a last error event) with the turn recorded
      failed;
    - agents, sessions, turns and steps are kept in the provider's ``persistence_store`` and survive a
      restart; a turn a crash interrupted reads as failed after the restart, never as running;
    - ``create_openai_response`` answers a ``ResponseObject``, or (``stream``) an async iterator of
      ``ResponseStreamChunk`` events numbered by ``sequence_number``; stored responses (unless
      ``store`` is false) live in the provider's ``responses_store`` (``lamina.storage.responses_store``)
      and unknown ids raise ``NotFoundError``;
    - ``create_batch_agent_job`` checks the agent and every row before it submits a job (a 4xx naming
      the field otherwise), registers the results dataset and answers the scheduled run; the run's rows
      go through the job's work items (``lamina.jobs.work``), a failed row is a results row with its
      error, not a failed run; ids of unknown runs (or jobs of other kinds) raise ``NotFoundError``.
    """

    async def create_agent(self, request: CreateAgentRequest) -> AgentCreateResponse: ...

    async def list_agents(self, request: PageRequest) -> PaginatedResponse: ...

    async def get_agent(self, request: AgentRequest) -> Agent: ...

    async def delete_agent(self, request: AgentRequest) -> None: ...

    async def create_agent_session(
        self, request: CreateAgentSessionRequest
    ) -> AgentSessionCreateResponse: ...

    async def list_agent_sessions(self, request: ListAgentSessionsRequest) -> PaginatedResponse: ...

    async def get_agents_session(self, request: GetAgentSessionRequest) -> Session: ...

    async def delete_agents_session(self, request: SessionRequest) -> None: ...

    async def create_agent_turn(
        self, request: AgentTurnCreateRequest
    ) -> Turn | AsyncIterator[AgentTurnResponseStreamChunk]: ...

    async def resume_agent_turn(
        self, request: AgentTurnResumeRequest
    ) -> Turn | AsyncIterator[AgentTurnResponseStreamChunk]: ...

    async def get_agents_turn(self, request: TurnRequest) -> Turn: ...

    async def get_agents_step(self, request: StepRequest) -> AgentStepResponse: ...

    # -- the OpenAI Responses API (lamina.apis.responses), served by the same provider --------------

    async def create_openai_response(
        self, request: CreateResponseRequest
    ) -> ResponseObject | AsyncIterator[ResponseStreamChunk]: ...

    async def list_openai_responses(self, request: ListResponsesRequest) -> ListResponsesResponse: ...

    async def get_openai_response(self, request: ResponseIdRequest) -> ResponseObject: ...

    async def delete_openai_response(self, request: ResponseIdRequest) -> ResponseDeleted: ...

    async def list_openai_response_input_items(self, request: ListInputItemsRequest) -> InputItemList: ...

    # -- batch agents (BatchAgents): a job of the job system per run ------------------------------

    async def create_batch_agent_job(self, request: CreateBatchAgentJobRequest) -> BatchAgentJob: ...

    async def list_batch_agent_jobs(
        self, request: ListBatchAgentJobsRequest
    ) -> ListBatchAgentJobsResponse: ...

    async def get_batch_agent_job(self, request: BatchAgentJobRequest) -> BatchAgentJob: ...

    async def cancel_batch_agent_job(self, request: BatchAgentJobRequest) -> BatchAgentJob: ...
