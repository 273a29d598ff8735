"""The agents router: every Agents, Responses and BatchAgents route goes to one agents provider.

Agent, session and turn ids carry no provider, so, as with Files, the first provider listed under
``providers.agents`` serves every route (a warning names the others, unused).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from lamina.apis.agents import (
    Agent,
    AgentCreateResponse,
    AgentRequest,
    AgentSessionCreateResponse,
    AgentStepResponse,
    AgentTurnCreateRequest,
    AgentTurnResponseStreamChunk,
    AgentTurnResumeRequest,
    BatchAgentJob,
    BatchAgentJobRequest,
    CreateAgentRequest,
    CreateAgentSessionRequest,
    CreateBatchAgentJobRequest,
    GetAgentSessionRequest,
    ListAgentSessionsRequest,
    ListBatchAgentJobsRequest,
    ListBatchAgentJobsResponse,
    PageRequest,
    PaginatedResponse,
    Session,
    SessionRequest,
    StepRequest,
    Turn,
    TurnRequest,
)
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
from lamina.routers.single_provider import SingleProviderRouter


class AgentsRouter(SingleProviderRouter):
    api_name = "agents"

    async def create_agent(self, request: CreateAgentRequest) -> AgentCreateResponse:
        return await self.provider.create_agent(request)

    async def list_agents(self, request: PageRequest) -> PaginatedResponse:
        return await self.provider.list_agents(request)

    async def get_agent(self, request: AgentRequest) -> Agent:
        return await self.provider.get_agent(request)

    async def delete_agent(self, request: AgentRequest) -> None:
        await self.provider.delete_agent(request)

    async def create_agent_session(self, request: CreateAgentSessionRequest) -> AgentSessionCreateResponse:
        return await self.provider.create_agent_session(request)

    async def list_agent_sessions(self, request: ListAgentSessionsRequest) -> PaginatedResponse:
        return await self.provider.list_agent_sessions(request)

    async def get_agents_session(self, request: GetAgentSessionRequest) -> Session:
        return await self.provider.get_agents_session(request)

    async def delete_agents_session(self, request: SessionRequest) -> None:
        await self.provider.delete_agents_session(request)

    async def create_agent_turn(
        self, request: AgentTurnCreateRequest
    ) -> Turn | AsyncIterator[AgentTurnResponseStreamChunk]:
        return await self.provider.create_agent_turn(request)

    async def resume_agent_turn(
        self, request: AgentTurnResumeRequest
    ) -> Turn | AsyncIterator[AgentTurnResponseStreamChunk]:
        return await self.provider.resume_agent_turn(request)

    async def get_agents_turn(self, request: TurnRequest) -> Turn:
        return await self.provider.get_agents_turn(request)

    async def get_agents_step(self, request: StepRequest) -> AgentStepResponse:
        return await self.provider.get_agents_step(request)

    # -- the Responses API: the agents provider serves it (Llama Stack's meta-reference does too) --

    async def create_openai_response(
        self, request: CreateResponseRequest
    ) -> ResponseObject | AsyncIterator[ResponseStreamChunk]:
        return await self.provider.create_openai_response(request)

    async def list_openai_responses(self, request: ListResponsesRequest) -> ListResponsesResponse:
        return await self.provider.list_openai_responses(request)

    async def get_openai_response(self, request: ResponseIdRequest) -> ResponseObject:
        return await self.provider.get_openai_response(request)

    async def delete_openai_response(self, request: ResponseIdRequest) -> ResponseDeleted:
        return await self.provider.delete_openai_response(request)

    async def list_openai_response_input_items(self, request: ListInputItemsRequest) -> InputItemList:
        return await self.provider.list_openai_response_input_items(request)

    # -- batch agents: the agents provider runs them as jobs -------------------------------------

    async def create_batch_agent_job(self, request: CreateBatchAgentJobRequest) -> BatchAgentJob:
        return await self.provider.create_batch_agent_job(request)

    async def list_batch_agent_jobs(self, request: ListBatchAgentJobsRequest) -> ListBatchAgentJobsResponse:
        return await self.provider.list_batch_agent_jobs(request)

    async def get_batch_agent_job(self, request: BatchAgentJobRequest) -> BatchAgentJob:
        return await self.provider.get_batch_agent_job(request)

    async def cancel_batch_agent_job(self, request: BatchAgentJobRequest) -> BatchAgentJob:
        return await self.provider.cancel_batch_agent_job(request)
