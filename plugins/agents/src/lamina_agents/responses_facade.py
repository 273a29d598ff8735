"""The Responses facade: OpenAI's Responses API on the agent engine (``lamina_agents.engine``).

A thin layer: the request becomes an ``EngineRequest`` (the data layer's pure functions in
``lamina.providers.responses_items`` build the conversation and the tool offer), the engine's events
become ``response.*`` events through ``ResponseEvents`` (``lamina.providers.responses_events``), and
the finished response is kept in the ``ResponsesStore`` (``responses_store`` of the provider config).

- ``function`` tools are client tools: a call ends the run with ``function_call`` items; the client
  answers with ``function_call_output`` items and ``previous_response_id``.
- ``file_search`` runs as an engine tool with its own ``invoke`` over the Vector Stores router (its
  results become a ``file_search_call`` item; kept in it with ``include=["file_search_call.results"]``).
- ``web_search`` runs through the Tool Runtime router's ``web_search`` tool (``builtin::websearch``).
- ``mcp`` tools are listed and called through the ``remote::model-context-protocol`` tool runtime
  provider, by ``server_url`` with the tool's ``headers``. ``require_approval`` is enforced: a call
  that needs approval is a client call to the engine (the run stops) and becomes an
  ``mcp_approval_request`` item, left out of the stored conversation; an ``mcp_approval_response``
  in the next request runs the call (or tells the model it was refused) before the model is called.
- A streamed and a non-streamed response run the same steps (``ResponseEvents`` builds the response
  either way); a model failure fails a streamed response with ``response.failed`` and is the router's
  4xx/5xx for a non-streamed one. A failed response is stored (``store`` true) with status ``failed``
  and its ``error``, as OpenAI keeps it; so is one whose client left mid-stream (failed, saying so:
  nothing runs on in the background).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from lamina.apis.common import URL, content_to_text
from lamina.apis.responses import (
    CreateResponseRequest,
    FileSearchResult,
    FileSearchTool,
    InputItemList,
    ListInputItemsRequest,
    ListResponsesRequest,
    ListResponsesResponse,
    McpListedTool,
    McpTool,
    ResponseDeleted,
    ResponseIdRequest,
    ResponseObject,
    ToolChoiceFunction,
)
from lamina.apis.tools import ToolGroup, ToolInvocationResult
from lamina.apis.vector_stores import SearchVectorStoreRequest
from lamina.errors import BadRequestError, ConfigError, LaminaError
from lamina.providers.responses_events import ResponseEvents
from lamina.providers.responses_items import (
    ServerCall,
    add_usage,
    approval_decisions,
    check_include,
    check_request,
    conversation,
    denied_result,
    file_search_item,
    file_search_params,
    file_search_text,
    input_items,
    mcp_call_item,
    needs_approval,
    new_response,
    offer_tools,
    plan_tool_calls,
    response_format,
    stored_messages,
    tool_exchange,
    web_search_item,
)
from lamina.storage.responses_store import ResponsesStore, open_responses_store, responses_store_config
from lamina_agents import engine as E

log = structlog.get_logger(__name__)


class ResponsesFacade:
    def __init__(
        self,
        engine: E.AgentEngine,
        store_config: Any,
        default_db: Path,
        vector_stores: Any = None,
        tool_runtime: Any = None,
    ) -> None:
        self.engine = engine
        self.tool_runtime = tool_runtime  # lamina.routers.tool_runtime.ToolRuntimeRouter, if served
        self.vector_stores = vector_stores  # lamina.routers.vector_stores.VectorStoresRouter, if served
        try:
            self.store_config = responses_store_config(store_config, default_db)
        except ValidationError as exc:
            raise ConfigError(f"agents provider config responses_store: {exc}") from None
        self._store: ResponsesStore | None = None

    async def initialize(self) -> None:
        if getattr(self.store_config, "db_path", None):
            await asyncio.to_thread(Path(self.store_config.db_path).parent.mkdir, parents=True, exist_ok=True)
        self._store = await open_responses_store(self.store_config)

    async def shutdown(self) -> None:
        if self._store is not None:
            await self._store.close()

    @property
    def store(self) -> ResponsesStore:
        assert self._store is not None, "the agents provider is not initialized"
        return self._store

    # -- the stored responses -------------------------------------------------------------------

    async def get(self, request: ResponseIdRequest) -> ResponseObject:
        return (await self.store.get(request.response_id)).response

    async def delete(self, request: ResponseIdRequest) -> ResponseDeleted:
        await self.store.delete(request.response_id)
        return ResponseDeleted(id=request.response_id)

    async def list(self, request: ListResponsesRequest) -> ListResponsesResponse:
        return await self.store.list(
            after=request.after, limit=request.limit or 50, model=request.model, order=request.order or "desc"
        )

    async def input_items(self, request: ListInputItemsRequest) -> InputItemList:
        check_include(request.include)
        return await self.store.list_input_items(
            request.response_id,
            after=request.after,
            before=request.before,
            include=request.include,
            limit=request.limit or 20,
            order=request.order or "desc",
        )

    # -- create ---------------------------------------------------------------------------------

    async def create(self, request: CreateResponseRequest) -> ResponseObject | AsyncIterator[Any]:
        """Everything that can be refused is checked before a stream starts (a 4xx, not an event)."""
        check_request(request)
        previous = None
        if request.previous_response_id:
            previous = await self.store.get(request.previous_response_id)
        decisions = approval_decisions(request.input, previous)
        mcp = _Mcp(self.tool_runtime, request)
        offer = offer_tools(request.tools, await mcp.listings())
        choice = request.tool_choice
        if isinstance(choice, ToolChoiceFunction) and choice.name not in offer.by_name:
            raise BadRequestError(
                f"tool_choice: no tool is named {choice.name!r}; offered: {sorted(offer.by_name)}",
                param="tool_choice",
            )
        conversation(request, previous)  # a 400 for unpaired function_call_outputs, before anything runs
        events = ResponseEvents(new_response(request), offer)
        run = _Run(self, request, previous, offer, events, mcp, decisions)
        if request.stream:
            return run.stream()
        async for _ in run.steps():
            pass
        if run.error is not None:
            raise run.error
        return events.response


class _Run:
    """One response: the engine run and its events."""

    def __init__(
        self,
        facade: ResponsesFacade,
        request: CreateResponseRequest,
        previous: Any,
        offer: Any,
        events: ResponseEvents,
        mcp: _Mcp,
        decisions: list[Any],
    ) -> None:
        self.facade, self.request, self.previous, self.offer = facade, request, previous, offer
        self.events, self.mcp, self.decisions = events, mcp, decisions
        self.messages: list[dict[str, Any]] = []
        self.awaiting_approval: set[str] = set()  # call ids of the model's calls that need approval
        self.error: LaminaError | None = None
        self.searches: dict[str, list[FileSearchResult]] = {}  # by query: what file_search found

    def engine_request(self) -> E.EngineRequest:
        tools = []
        for chat_tool in self.offer.chat_tools:
            function = chat_tool["function"]
            offered = self.offer.by_name[function["name"]]
            tool = E.EngineTool(function["name"], function.get("description"), function["parameters"] or {})
            if offered.kind == "function":
                tool.client = True
            elif offered.kind == "file_search":
                tool.invoke = self._file_search_invoker(offered.tool)
            elif offered.kind == "mcp":
                if needs_approval(offered.tool, tool.name):
                    tool.client = True  # the run stops; the call waits for an mcp_approval_response
                else:
                    tool.invoke = self.mcp.invoker(offered.tool, tool.name)
            tools.append(tool)
        choice = self.request.tool_choice
        sampling: dict[str, Any] = {}
        for name in ("temperature", "top_p", "user"):
            if getattr(self.request, name) is not None:
                sampling[name] = getattr(self.request, name)
        if self.request.parallel_tool_calls is False and tools and choice != "none":
            sampling["parallel_tool_calls"] = False  # the chat field: the model makes one call at a time
        return E.EngineRequest(
            model=self.request.model,
            messages=list(self.messages),
            tools=tools,
            tool_choice=choice.name if isinstance(choice, ToolChoiceFunction) else (choice or "auto"),
            sampling=sampling,
            response_format=response_format(self.request.text),
            max_infer_iters=self.request.max_infer_iters or 10,
            max_output_tokens=self.request.max_output_tokens,
            parallel_tool_calls=self.request.parallel_tool_calls is not False,
        )

    def _file_search_invoker(self, tool: FileSearchTool) -> Any:
        async def invoke(kwargs: dict[str, Any]) -> ToolInvocationResult:
            query = str(kwargs.get("query") or "")
            if self.facade.vector_stores is None:
                return ToolInvocationResult(
                    error_message="no vector_io provider is configured: add one to serve file_search"
                )
            results: list[FileSearchResult] = []
            params = file_search_params(tool, query)
            for store_id in tool.vector_store_ids:
                page = await self.facade.vector_stores.openai_search_vector_store(
                    SearchVectorStoreRequest(vector_store_id=store_id, **params)
                )
                for hit in page.data:
                    text = "\n".join(c.text for c in hit.content)
                    attributes = {
                        k: v
                        for k, v in (hit.attributes or {}).items()
                        if isinstance(v, str | float | bool | int)
                    }
                    results.append(
                        FileSearchResult(
                            file_id=hit.file_id,
                            filename=hit.filename,
                            text=text,
                            score=hit.score,
                            attributes=attributes,
                        )
                    )
            results.sort(key=lambda r: r.score, reverse=True)
            results = results[: tool.max_num_results]
            self.searches[query] = results
            return ToolInvocationResult(content=file_search_text(query, results))

        return invoke

    async def steps(self) -> AsyncIterator[list[Any]]:
        """The run's events, one step's worth at a time."""
        events, usage, added = self.events, None, []
        yield events.start()
        for item in self.offer.list_items:
            yield events.add_item(item)
        try:
            approved: list[dict[str, Any]] = []
            for decision in self.decisions:
                call = decision.request
                if decision.approve:
                    output, error = await self.mcp.call(call.server_label, call.name, call.arguments)
                    item = mcp_call_item(call, output=output, error=error, approval_request_id=call.id)
                    yield events.add_item(item)
                    approved += tool_exchange(item.id, call.name, call.arguments, output or f"error: {error}")
                else:
                    approved += tool_exchange(call.id, call.name, call.arguments, denied_result(decision))
            self.messages = conversation(self.request, self.previous, approved)
            async for event in self.facade.engine.run(self.engine_request()):
                if isinstance(event, E.TextDelta):
                    yield events.text_delta(event.text)
                elif isinstance(event, E.ToolCallDelta):
                    yield events.tool_call_delta(
                        event.index, call_id=event.call_id, name=event.name, arguments=event.arguments
                    )
                elif isinstance(event, E.InferenceFinished):
                    usage = add_usage(usage, event.usage)
                    calls = [
                        {"id": c.call_id, "function": {"name": c.name, "arguments": c.arguments}}
                        for c in event.tool_calls
                    ]
                    plan = plan_tool_calls(calls, self.offer)
                    batch = events.finish_model_call(plan.function_calls)
                    for approval in plan.approvals:
                        batch += events.add_item(approval)
                    self.awaiting_approval |= {
                        c.call_id for c in event.tool_calls if self._needs_approval(c.name)
                    }
                    yield batch
                elif isinstance(event, E.ToolFinished):
                    yield self._tool_item(event)
                elif isinstance(event, E.AwaitingClientTools | E.Finished):
                    added = _without_calls(event.added, self.awaiting_approval)
                    if isinstance(event, E.Finished) and event.stop_reason == "out_of_tokens":
                        yield events.incomplete("max_output_tokens", usage)
                    else:
                        yield events.complete(usage)
        except LaminaError as exc:
            log.warning("response_failed", response_id=events.response.id, error=exc.message)
            self.error = exc
            batch = events.fail(exc.message, usage=usage)
            # before the last event: a client reading it finds the response stored; a store that fails
            # too must not hide the model's failure from the client
            await _quietly(self._store([]))
            yield batch
            return
        except (GeneratorExit, asyncio.CancelledError):  # the client left mid-stream (aiohttp cancels)
            if not events.finished:
                log.warning("response_abandoned", response_id=events.response.id)
                events.fail(
                    "the client closed the connection before the response ended; nothing was finished "
                    "in the background: create the response again",
                    usage=usage,
                )
                await _quietly(self._store([]))
            raise
        await self._store(added)

    async def _store(self, added: list[dict[str, Any]]) -> None:
        """Keep the response (unless ``store`` is false): a failed one with its error and its input."""
        if self.request.store is False:
            return
        messages = self.messages or conversation(self.request, self.previous)
        await self.facade.store.store(
            self.events.response,
            input_items(self.request.input, self.previous),
            stored_messages(messages + added, self.request),
        )

    def _tool_item(self, event: E.ToolFinished) -> list[Any]:
        offered = self.offer.by_name.get(event.call.name)
        args = event.call.parsed_arguments() or {}
        query = str(args.get("query") or "")
        if offered is not None and offered.kind == "file_search":
            results = self.searches.get(query, [])
            failed = event.result.error is not None
            item = file_search_item(query, results, self.request.include, failed=failed)
            return self.events.add_item(item)
        if offered is not None and offered.kind == "mcp":
            error = event.result.error
            output = None if error else content_to_text(event.result.content, separator="\n")
            call = ServerCall(event.call.call_id, event.call.name, event.call.arguments, "mcp", offered.tool)
            return self.events.add_item(mcp_call_item(call, output=output, error=error))
        if offered is not None and offered.kind == "web_search":
            return self.events.add_item(web_search_item(query, failed=event.result.error is not None))
        return []  # a tool nobody offered: the model hears so; no output item

    def _needs_approval(self, name: str) -> bool:
        offered = self.offer.by_name.get(name)
        return offered is not None and offered.kind == "mcp" and needs_approval(offered.tool, name)

    async def stream(self) -> AsyncIterator[Any]:
        async for batch in self.steps():
            for event in batch:
                yield event


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as exc:  # the client is gone: nobody to tell but the log
        log.warning("response_store_failed", error=str(exc))


def _without_calls(messages: list[dict[str, Any]], call_ids: set[str]) -> list[dict[str, Any]]:
    """The run's messages without the calls waiting for approval (an approved one is added with its
    result by the next request); an assistant message left with nothing is dropped."""
    if not call_ids:
        return messages
    kept = []
    for message in messages:
        calls = message.get("tool_calls")
        if calls:
            left = [c for c in calls if c["id"] not in call_ids]
            message = {k: v for k, v in message.items() if k != "tool_calls"}
            if left:
                message["tool_calls"] = left
            if not left and not message.get("content"):
                continue
        kept.append(message)
    return kept


MCP_PROVIDER_TYPE = "remote::model-context-protocol"


class _Mcp:
    """The request's MCP servers, through the MCP tool runtime provider (by URL, with their headers)."""

    def __init__(self, tool_runtime: Any, request: CreateResponseRequest) -> None:
        tools = enumerate(request.tools or [])
        self.tools = {t.server_label: (i, t) for i, t in tools if isinstance(t, McpTool)}
        self.provider = None
        if not self.tools:
            return
        providers = getattr(getattr(tool_runtime, "tool_groups", None), "providers", {}) or {}
        self.provider = next(
            (p for p in providers.values() if getattr(p, "context", None) and _is_mcp(p)),
            None,
        )
        if self.provider is None:
            i = min(i for i, _ in self.tools.values())
            raise BadRequestError(
                f"tools[{i}]: an mcp tool needs a {MCP_PROVIDER_TYPE} provider; add one under "
                f"providers.tool_runtime",
                param=f"tools[{i}]",
            )

    def _group(self, tool: McpTool) -> ToolGroup:
        return ToolGroup(
            identifier=f"mcp::{tool.server_label}",
            provider_id=self.provider.context.provider_id,
            mcp_endpoint=URL(uri=tool.server_url),
        )

    async def listings(self) -> dict[str, list[McpListedTool] | str]:
        """Each server's tools, or the error text when listing failed (its mcp_list_tools item shows it)."""
        out: dict[str, list[McpListedTool] | str] = {}
        for label, (_, tool) in self.tools.items():
            try:
                defs = await self.provider.list_runtime_tools(self._group(tool), headers=tool.headers)
            except LaminaError as exc:
                out[label] = exc.message
                continue
            out[label] = [
                McpListedTool(name=d.name, description=d.description, input_schema=_schema(d.parameters))
                for d in defs
            ]
        return out

    def invoker(self, tool: McpTool, name: str) -> Any:
        async def invoke(kwargs: dict[str, Any]) -> ToolInvocationResult:
            return await self.provider.invoke_tool(self._group(tool), name, kwargs, headers=tool.headers)

        return invoke

    async def call(self, label: str, name: str, arguments: str) -> tuple[str | None, str | None]:
        """An approved call: (output, None) or (None, the error)."""
        entry = self.tools.get(label)
        if entry is None:
            return None, f"the request names no mcp tool with server_label {label!r}; send the tools again"
        try:
            kwargs = json.loads(arguments or "{}")
            tool = entry[1]
            result = await self.provider.invoke_tool(self._group(tool), name, kwargs, headers=tool.headers)
        except (ValueError, LaminaError) as exc:
            return None, getattr(exc, "message", None) or str(exc)
        if result.error_message:
            return None, result.error_message
        return content_to_text(result.content, separator="\n"), None


def _schema(parameters: list[Any] | None) -> dict[str, Any]:
    """A JSON schema from the provider's tool parameters (type, description, required)."""
    properties: dict[str, Any] = {}
    for p in parameters or []:
        prop: dict[str, Any] = {"description": p.description} if p.description else {}
        if p.parameter_type and p.parameter_type != "any":
            prop["type"] = p.parameter_type
        properties[p.name] = prop
    required = [p.name for p in parameters or [] if p.required]
    return {"type": "object", "properties": properties, "required": required}


def _is_mcp(provider: Any) -> bool:
    return provider.context.provider_type == MCP_PROVIDER_TYPE
