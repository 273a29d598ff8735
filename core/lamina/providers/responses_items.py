"""The Responses API's item conversion and rules, as pure functions for a facade over an agent loop.

No I/O here: the facade lists MCP tools, calls the model through the Inference router, runs tools and
reads/writes the ``ResponsesStore`` (``lamina.storage.responses_store``). Per request it calls, in
this order (tests/responses/test_flow.py walks through all of it):

1. ``check_request(request)``: a 400 naming the field for what cannot be served (an unknown
   ``include``, an image by file id). The input_items route calls ``check_include``.
2. ``previous = await store.get(request.previous_response_id)`` (404 naming it when absent).
3. ``offer_tools(request.tools, mcp_listings)``: the functions the model is offered and which
   request tool serves each name; its ``list_items`` are ``mcp_list_tools`` output items.
4. ``events = ResponseEvents(new_response(request), offer)`` (``lamina.providers.responses_events``)
   and ``events.start()``: ``new_response`` echoes the request (``previous_response_id`` included)
   with MCP header values redacted, so no credential is stored or echoed.
5. ``approval_decisions(request.input, previous)``: each ``mcp_approval_response`` matched to its
   ``mcp_approval_request``; the facade runs approved calls (``mcp_call_item``) and answers refused
   ones with ``denied_result``, each as ``tool_exchange`` messages.
6. ``messages = conversation(request, previous, approved)``: the instructions (never inherited, as
   OpenAI says), the previous response's stored conversation, the approved exchanges, this input
   (``input_to_messages``), every tool result right after its call.
7. Per model call: ``chat_request(request, messages, offer, call_index=n, usage=usage)`` (the body of
   the Inference router's ``openai_chat_completion``), the answer's deltas into ``events``,
   ``plan_tool_calls`` on its tool calls, ``events.finish_model_call(plan.function_calls)``,
   ``plan.assistant_message(text)`` appended, server calls run, ``add_usage``; the run stops when
   ``plan.stops_run`` (function calls for the client, approval requests) or the model answers.
8. ``events.complete(usage)`` (or ``incomplete`` / ``fail``); ``events.response`` is the response.
9. Unless ``store`` is false: ``store.store(events.response, input_items(request.input, previous),
   stored_messages(messages, request))``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import TypeAdapter

from lamina.apis.responses import (
    CreateResponseRequest,
    FileSearchCall,
    FileSearchResult,
    FileSearchTool,
    FunctionCall,
    FunctionCallOutput,
    FunctionTool,
    InputImage,
    InputItem,
    InputMessage,
    InputText,
    McpApprovalRequest,
    McpApprovalResponse,
    McpCall,
    McpListedTool,
    McpListTools,
    McpTool,
    OutputMessage,
    OutputText,
    Refusal,
    ResponseObject,
    TextConfig,
    TextFormatJsonObject,
    TextFormatJsonSchema,
    ToolChoiceFunction,
    Usage,
    WebSearchCall,
    WebSearchTool,
)
from lamina.errors import BadRequestError
from lamina.storage.responses_store import INCLUDE_FILE_SEARCH_RESULTS, StoredResponse

# The function names the model is offered for the server-side tools (Llama Stack's names: the same
# tools its agents call, so one tool runtime serves both facades).
FILE_SEARCH_FUNCTION = "knowledge_search"
WEB_SEARCH_FUNCTION = "web_search"
# Accepted ``include`` values: file search results are kept only when asked; input image URLs are
# always listed, so asking for them changes nothing.
SUPPORTED_INCLUDE = (INCLUDE_FILE_SEARCH_RESULTS, "message.input_image.image_url")
REDACTED = "<redacted>"

_ID_PREFIX = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "file_search_call": "fs",
    "web_search_call": "ws",
    "mcp_call": "mcp",
    "mcp_list_tools": "mcpl",
    "mcp_approval_request": "mcpr",
    "mcp_approval_response": "mcpa",
}
_INPUT_ITEM = TypeAdapter(InputItem)


def new_id(prefix: str) -> str:
    """An id in OpenAI's form: ``resp_``, ``msg_``, ``fc_``... then 48 hex digits."""
    return f"{prefix}_{secrets.token_hex(24)}"


# -- the request -------------------------------------------------------------------------------


def check_include(include: list[str] | None) -> None:
    """400 for an ``include`` value this server does not serve (create and input_items routes)."""
    unknown = [v for v in include or [] if v not in SUPPORTED_INCLUDE]
    if unknown:
        raise BadRequestError(
            f"include: {unknown} not supported; supported values: {list(SUPPORTED_INCLUDE)}", param="include"
        )


def check_request(request: CreateResponseRequest) -> None:
    """400 naming the field for what this server cannot serve (before anything runs)."""
    check_include(request.include)
    if isinstance(request.input, list):
        for i, item in enumerate(request.input):
            if not isinstance(item, InputMessage) or isinstance(item.content, str):
                continue
            for j, part in enumerate(item.content):
                if isinstance(part, InputImage) and not part.image_url:
                    raise BadRequestError(
                        f"input[{i}].content[{j}]: an input_image needs image_url (an https or data: URL); "
                        f"images by file_id are not supported",
                        param=f"input[{i}].content[{j}].image_url",
                    )


def _redacted(tool: Any) -> Any:
    if isinstance(tool, McpTool) and tool.headers:
        return tool.model_copy(update={"headers": dict.fromkeys(tool.headers, REDACTED)})
    return tool


def new_response(
    request: CreateResponseRequest, *, response_id: str | None = None, created_at: int | None = None
) -> ResponseObject:
    """The ``in_progress`` response of a run, echoing the request's settings.

    ``previous_response_id`` is echoed (Llama Stack 0.2.12 drops it). MCP tools' header values are
    replaced by ``<redacted>``: the response is stored and returned, and headers carry credentials
    (tools are not inherited by a continuation, so nothing needs them later)."""
    return ResponseObject(
        id=response_id or new_id("resp"),
        created_at=created_at if created_at is not None else int(time.time()),
        model=request.model,
        status="in_progress",
        output=[],
        instructions=request.instructions,
        max_output_tokens=request.max_output_tokens,
        metadata=request.metadata,
        parallel_tool_calls=request.parallel_tool_calls is not False,
        previous_response_id=request.previous_response_id,
        store=request.store is not False,
        temperature=request.temperature,
        text=request.text or TextConfig(),
        tool_choice=request.tool_choice or "auto",
        tools=[_redacted(t) for t in request.tools or []],
        top_p=request.top_p,
        user=request.user,
    )


# -- input items -------------------------------------------------------------------------------


def _as_list_content(item: InputMessage) -> InputMessage:
    """String content as a one-part list (the listing's item types require a list)."""
    if not isinstance(item.content, str):
        return item
    part = OutputText(text=item.content) if item.role == "assistant" else InputText(text=item.content)
    return item.model_copy(update={"content": [part]})


def own_input_items(value: str | list[Any]) -> list[Any]:
    """This request's input as stored items: a string is a user message; every item gets an id and a
    status, string content becomes a list (what the openai SDK's item types require)."""
    if isinstance(value, str):
        return [
            InputMessage(id=new_id("msg"), role="user", content=[InputText(text=value)], status="completed")
        ]
    items = []
    for item in value:
        update: dict[str, Any] = {}
        if getattr(item, "id", None) is None:
            update["id"] = new_id(_ID_PREFIX[item.type])
        if hasattr(item, "status") and item.status is None:
            update["status"] = "completed"
        item = item.model_copy(update=update) if update else item
        items.append(_as_list_content(item) if isinstance(item, InputMessage) else item)
    return items


def input_items(value: str | list[Any], previous: StoredResponse | None) -> list[Any]:
    """Every item the response is given: the continued response's input and output, then this input."""
    own = own_input_items(value)
    if previous is None:
        return own
    earlier = [*previous.input_items, *previous.response.output]
    # output items are stored as input items (an output message reads as an assistant input message)
    return [*(_INPUT_ITEM.validate_python(i.model_dump(by_alias=True)) for i in earlier), *own]


# -- input -> chat messages --------------------------------------------------------------------


def _text_of(content: str | list[Any]) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if isinstance(part, InputImage):
            raise BadRequestError("only user messages may carry images (input_image)", param="input")
        texts.append(part.refusal if isinstance(part, Refusal) else part.text)
    return "\n".join(texts)


def _user_content(content: str | list[Any]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, InputImage):
            parts.append({"type": "image_url", "image_url": {"url": part.image_url, "detail": part.detail}})
        else:
            parts.append({"type": "text", "text": part.refusal if isinstance(part, Refusal) else part.text})
    return parts


def _tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def tool_exchange(call_id: str, name: str, arguments: str, result: str) -> list[dict[str, Any]]:
    """A server-run tool call as the conversation holds it: the assistant's call, then its result."""
    return [
        {"role": "assistant", "content": None, "tool_calls": [_tool_call(call_id, name, arguments)]},
        {"role": "tool", "tool_call_id": call_id, "content": result},
    ]


def _add_call(messages: list[dict[str, Any]], call: dict[str, Any]) -> None:
    # calls of one model answer share one assistant message (the chat format requires it)
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def input_to_messages(items: list[Any]) -> list[dict[str, Any]]:
    """Input items as OpenAI chat messages (what ``openai_chat_completion`` takes).

    ``developer`` becomes ``system`` (most open-model servers reject the newer role); consecutive
    function calls join one assistant message; an MCP call or a file search with results becomes the
    call and its result. Web search calls, MCP tool listings and approval items carry nothing for the
    model (approvals are resolved by ``approval_decisions``), so they add no message."""
    messages: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, InputMessage):
            if item.role == "user":
                messages.append({"role": "user", "content": _user_content(item.content)})
            elif item.role == "assistant":
                messages.append({"role": "assistant", "content": _text_of(item.content)})
            else:
                messages.append({"role": "system", "content": _text_of(item.content)})
        elif isinstance(item, FunctionCall):
            _add_call(messages, _tool_call(item.call_id, item.name, item.arguments))
        elif isinstance(item, FunctionCallOutput):
            messages.append({"role": "tool", "tool_call_id": item.call_id, "content": item.output})
        elif isinstance(item, McpCall) and (item.output is not None or item.error is not None):
            result = item.output if item.error is None else f"error: {item.error}"
            messages.extend(tool_exchange(item.id, item.name, item.arguments, result))
        elif isinstance(item, FileSearchCall) and item.results:
            query = item.queries[0] if item.queries else ""
            arguments = json.dumps({"query": query})
            messages.extend(
                tool_exchange(item.id, FILE_SEARCH_FUNCTION, arguments, file_search_text(query, item.results))
            )
    return messages


def conversation(
    request: CreateResponseRequest,
    previous: StoredResponse | None,
    approved: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The messages of the run's first model call: instructions, the continued conversation, the
    calls run on this input's approvals (``tool_exchange`` messages), then this input."""
    messages: list[dict[str, Any]] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    if previous is not None:
        messages.extend(previous.messages)
    messages.extend(approved or [])
    if isinstance(request.input, str):
        messages.append({"role": "user", "content": request.input})
    else:
        messages.extend(input_to_messages(request.input))
    return _pair_tool_results(messages)


def _pair_tool_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each tool result right after the assistant message that made the call, as the chat format
    requires (clients send function_call_output items in any order, after other input); a call
    without a result, or a result without a call, is the client's mistake: a 400 naming the ids."""
    # by position, not only by id: some servers reuse call ids ("call_0") from one turn to the next
    waiting = [i for i, m in enumerate(messages) if m["role"] == "tool"]
    paired: list[dict[str, Any]] = []
    missing: list[str] = []
    for i, message in enumerate(messages):
        if message["role"] == "tool":
            continue
        paired.append(message)
        for call in message.get("tool_calls") or []:
            found = next((p for p in waiting if p > i and messages[p]["tool_call_id"] == call["id"]), None)
            if found is None:
                missing.append(call["id"])
            else:
                waiting.remove(found)
                paired.append(messages[found])
    if missing:
        raise BadRequestError(
            f"input: no function_call_output for call_id(s) {missing}; send one "
            f'{{"type": "function_call_output", "call_id": ..., "output": ...}} item for each call',
            param="input",
        )
    if waiting:
        orphans = [messages[p]["tool_call_id"] for p in waiting]
        raise BadRequestError(
            f"input: function_call_output call_id(s) {orphans} answer no function call of this "
            f"input or of the previous response (previous_response_id)",
            param="input",
        )
    return paired


def stored_messages(messages: list[dict[str, Any]], request: CreateResponseRequest) -> list[dict[str, Any]]:
    """The conversation to store: the run's messages without this request's instructions."""
    return messages[1:] if request.instructions else list(messages)


# -- tools -------------------------------------------------------------------------------------


@dataclass
class OfferedTool:
    kind: Literal["function", "file_search", "web_search", "mcp"]
    tool: Any  # the request's tool


@dataclass
class ToolOffer:
    """What the model is offered (``chat_tools``) and which request tool serves each name."""

    chat_tools: list[dict[str, Any]] = field(default_factory=list)
    by_name: dict[str, OfferedTool] = field(default_factory=dict)
    list_items: list[McpListTools] = field(default_factory=list)  # output items, one per MCP server

    def _add(self, name: str, offered: OfferedTool, description: str | None, parameters: Any) -> None:
        if name in self.by_name:
            raise BadRequestError(
                f"tools: two tools are named {name!r} ({_label(self.by_name[name])} and {_label(offered)}); "
                f"rename the function or leave it out of allowed_tools",
                param="tools",
            )
        self.by_name[name] = offered
        function: dict[str, Any] = {
            "name": name,
            "parameters": parameters or {"type": "object", "properties": {}},
        }
        if description:
            function["description"] = description
        if offered.kind == "function" and offered.tool.strict is not None:
            function["strict"] = offered.tool.strict
        self.chat_tools.append({"type": "function", "function": function})


def _label(offered: OfferedTool) -> str:
    if offered.kind == "mcp":
        return f"a tool of MCP server {offered.tool.server_label!r}"
    return f"the {offered.kind} tool"


_QUERY = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}


def _allowed(tool: McpTool, name: str) -> bool:
    allowed = tool.allowed_tools
    if allowed is None:
        return True
    names = allowed if isinstance(allowed, list) else allowed.tool_names
    return name in names


def offer_tools(tools: list[Any] | None, mcp_listings: Mapping[str, list[McpListedTool] | str]) -> ToolOffer:
    """The tools the model is offered. ``mcp_listings`` holds each MCP server's tools by
    ``server_label`` (what the facade listed), or the error text when listing failed: that server's
    ``mcp_list_tools`` item then carries the error and none of its tools are offered."""
    offer = ToolOffer()
    for tool in tools or []:
        if isinstance(tool, FunctionTool):
            offer._add(tool.name, OfferedTool("function", tool), tool.description, tool.parameters)
        elif isinstance(tool, FileSearchTool):
            offer._add(
                FILE_SEARCH_FUNCTION,
                OfferedTool("file_search", tool),
                "Search the attached documents for passages relevant to the query.",
                _QUERY,
            )
        elif isinstance(tool, WebSearchTool):
            offer._add(WEB_SEARCH_FUNCTION, OfferedTool("web_search", tool), "Search the web.", _QUERY)
        elif isinstance(tool, McpTool):
            listing = mcp_listings.get(tool.server_label)
            if listing is None:
                raise ValueError(f"no listing given for MCP server {tool.server_label!r}")  # facade's bug
            if isinstance(listing, str):
                offer.list_items.append(
                    McpListTools(id=new_id("mcpl"), server_label=tool.server_label, tools=[], error=listing)
                )
                continue
            kept = [t for t in listing if _allowed(tool, t.name)]
            for t in kept:
                offer._add(t.name, OfferedTool("mcp", tool), t.description, t.input_schema)
            offer.list_items.append(
                McpListTools(id=new_id("mcpl"), server_label=tool.server_label, tools=kept)
            )
    return offer


def needs_approval(tool: McpTool, name: str) -> bool:
    """Whether a call of MCP tool ``name`` waits for an ``mcp_approval_response``: ``always``,
    ``never``, or the filter's lists; a name neither filter lists needs approval (the safe side)."""
    rule = tool.require_approval
    if rule == "always":
        return True
    if rule == "never":
        return False
    if rule.never and name in rule.never.tool_names:
        return False
    return True


# -- approvals ---------------------------------------------------------------------------------


@dataclass
class ApprovalDecision:
    request: McpApprovalRequest
    approve: bool
    reason: str | None = None


def approval_decisions(value: str | list[Any], previous: StoredResponse | None) -> list[ApprovalDecision]:
    """Each ``mcp_approval_response`` of this input matched to the ``mcp_approval_request`` it answers
    (in the previous response's output, or earlier in this input). 400 naming the id when it answers
    no request, or answers one twice."""
    if isinstance(value, str):
        return []
    known: dict[str, McpApprovalRequest] = {}
    answered: set[str] = set()
    for item in [
        *(previous.input_items if previous else []),
        *(previous.response.output if previous else []),
    ]:
        if isinstance(item, McpApprovalRequest):
            known[item.id] = item
        elif isinstance(item, McpApprovalResponse):
            answered.add(item.approval_request_id)
    decisions: list[ApprovalDecision] = []
    for i, item in enumerate(value):
        if isinstance(item, McpApprovalRequest):
            known[item.id] = item
        if not isinstance(item, McpApprovalResponse):
            continue
        request = known.get(item.approval_request_id)
        if request is None or item.approval_request_id in answered:
            pending = sorted(set(known) - answered)
            why = "was already answered" if request is not None else "names no mcp_approval_request"
            raise BadRequestError(
                f"input[{i}].approval_request_id: {item.approval_request_id!r} {why} of the previous "
                f"response or of this input; pending approval requests: {pending}",
                param=f"input[{i}].approval_request_id",
            )
        answered.add(item.approval_request_id)
        decisions.append(ApprovalDecision(request, item.approve, item.reason))
    return decisions


def denied_result(decision: ApprovalDecision) -> str:
    """What the model is told in place of the output of a call the user refused."""
    reason = f": {decision.reason}" if decision.reason else ""
    return f"The user denied this call of {decision.request.name}{reason}. Do not call it again."


# -- model calls -------------------------------------------------------------------------------


def response_format(text: TextConfig | None) -> dict[str, Any] | None:
    """``text.format`` as the chat ``response_format`` (None for plain text)."""
    fmt = text.format if text is not None else None
    if isinstance(fmt, TextFormatJsonSchema):
        schema: dict[str, Any] = {"name": fmt.name, "schema": fmt.json_schema}
        if fmt.description is not None:
            schema["description"] = fmt.description
        if fmt.strict is not None:
            schema["strict"] = fmt.strict
        return {"type": "json_schema", "json_schema": schema}
    if isinstance(fmt, TextFormatJsonObject):
        return {"type": "json_object"}
    return None


def remaining_output_tokens(request: CreateResponseRequest, usage: Usage | None) -> int | None:
    """What is left of ``max_output_tokens`` (it bounds the whole response, every model call of it);
    None without a bound. At 0 the facade ends the response ``incomplete`` (max_output_tokens)."""
    if request.max_output_tokens is None:
        return None
    return max(0, request.max_output_tokens - (usage.output_tokens if usage else 0))


def chat_request(
    request: CreateResponseRequest,
    messages: list[dict[str, Any]],
    offer: ToolOffer,
    *,
    call_index: int = 0,
    usage: Usage | None = None,
    stream: bool = True,
) -> dict[str, Any]:
    """The body of one model call (``OpenAIChatCompletionRequest`` fields).

    ``tool_choice`` "required" or a named function holds for the run's first call only
    (``call_index`` 0): later calls are "auto", or the run could never end with an answer."""
    body: dict[str, Any] = {"model": request.model, "messages": messages, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}  # usage is summed over the run's calls
    if offer.chat_tools:
        body["tools"] = offer.chat_tools
        body["parallel_tool_calls"] = request.parallel_tool_calls is not False
        choice = request.tool_choice
        if isinstance(choice, ToolChoiceFunction):
            if choice.name not in offer.by_name:
                raise BadRequestError(
                    f"tool_choice: no tool is named {choice.name!r}; offered: {sorted(offer.by_name)}",
                    param="tool_choice",
                )
            choice = {"type": "function", "function": {"name": choice.name}} if call_index == 0 else "auto"
        elif choice == "required" and call_index > 0:
            choice = "auto"
        if choice is not None:
            body["tool_choice"] = choice
    fmt = response_format(request.text)
    if fmt is not None:
        body["response_format"] = fmt
    for name in ("temperature", "top_p", "user"):
        if getattr(request, name) is not None:
            body[name] = getattr(request, name)
    left = remaining_output_tokens(request, usage)
    if left == 0:
        raise ValueError(
            "no output tokens left of max_output_tokens: end the response incomplete "
            "(ResponseEvents.incomplete('max_output_tokens')) instead of calling the model"
        )
    if left is not None:
        body["max_tokens"] = left
    return body


def add_usage(total: Usage | None, chat_usage: Mapping[str, Any] | None) -> Usage | None:
    """``total`` plus one model call's chat ``usage`` (prompt -> input, completion -> output tokens)."""
    if not chat_usage:
        return total
    total = total or Usage(input_tokens=0, output_tokens=0, total_tokens=0)
    prompt = int(chat_usage.get("prompt_tokens") or 0)
    completion = int(chat_usage.get("completion_tokens") or 0)
    cached = int((chat_usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    reasoning = int((chat_usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    return Usage(
        input_tokens=total.input_tokens + prompt,
        output_tokens=total.output_tokens + completion,
        total_tokens=total.total_tokens + int(chat_usage.get("total_tokens") or prompt + completion),
        input_tokens_details={"cached_tokens": total.input_tokens_details.cached_tokens + cached},
        output_tokens_details={"reasoning_tokens": total.output_tokens_details.reasoning_tokens + reasoning},
    )


# -- the model's answer -> output items --------------------------------------------------------


def message_item(text: str, *, refusal: str | None = None, item_id: str | None = None) -> OutputMessage:
    """The model's text answer (or refusal) as an output message."""
    content: list[Any] = [Refusal(refusal=refusal)] if refusal else [OutputText(text=text)]
    return OutputMessage(id=item_id or new_id("msg"), content=content)


@dataclass
class ServerCall:
    """A call the server runs: a file search, a web search, an approved (or approval-free) MCP call,
    or a tool nobody offered (answered with ``unknown_tool_result``)."""

    call_id: str
    name: str
    arguments: str
    kind: Literal["file_search", "web_search", "mcp", "unknown"]
    tool: Any = None

    def query(self) -> str:
        """The ``query`` argument of a search (empty when the model wrote none or bad JSON)."""
        try:
            value = json.loads(self.arguments or "{}").get("query", "")
        except (ValueError, AttributeError):
            return ""
        return value if isinstance(value, str) else ""


@dataclass
class ToolCallPlan:
    """One model answer's tool calls, sorted by who handles them."""

    function_calls: list[FunctionCall] = field(default_factory=list)  # output items: the client runs them
    server_calls: list[ServerCall] = field(default_factory=list)  # the facade runs them now
    approvals: list[McpApprovalRequest] = field(default_factory=list)  # output items: the run stops
    dropped: list[dict[str, Any]] = field(default_factory=list)  # beyond the first, parallel_tool_calls false

    @property
    def stops_run(self) -> bool:
        """Function calls and approval requests end the run: the client answers in a next request."""
        return bool(self.function_calls or self.approvals)

    def assistant_message(self, text: str | None) -> dict[str, Any] | None:
        """The model's answer for the conversation: its text and the calls whose results will follow
        (not those waiting for approval: an approved one is added with its result next time). None
        when nothing is left (only approval requests): the conversation gets no empty message."""
        calls = [_tool_call(f.call_id, f.name, f.arguments) for f in self.function_calls]
        calls += [_tool_call(s.call_id, s.name, s.arguments) for s in self.server_calls]
        if not text and not calls:
            return None
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        return message


def plan_tool_calls(
    tool_calls: list[Mapping[str, Any]], offer: ToolOffer, *, parallel_tool_calls: bool = True
) -> ToolCallPlan:
    """Sort the answer's chat tool calls (``{"id", "function": {"name", "arguments"}}``): function
    tools go back to the client, server tools run now, MCP calls that need approval become
    ``mcp_approval_request`` items. With ``parallel_tool_calls`` false only the first call counts."""
    plan = ToolCallPlan()
    for n, call in enumerate(tool_calls):
        if n > 0 and not parallel_tool_calls:
            plan.dropped.append(dict(call))
            continue
        function = call.get("function") or {}
        name, arguments = str(function.get("name") or ""), str(function.get("arguments") or "")
        call_id = str(call.get("id") or new_id("call"))
        offered = offer.by_name.get(name)
        if offered is None:
            plan.server_calls.append(ServerCall(call_id, name, arguments, "unknown"))
        elif offered.kind == "function":
            plan.function_calls.append(
                FunctionCall(
                    id=new_id("fc"), call_id=call_id, name=name, arguments=arguments, status="completed"
                )
            )
        elif offered.kind == "mcp" and needs_approval(offered.tool, name):
            plan.approvals.append(
                McpApprovalRequest(
                    id=new_id("mcpr"), server_label=offered.tool.server_label, name=name, arguments=arguments
                )
            )
        else:
            plan.server_calls.append(ServerCall(call_id, name, arguments, offered.kind, offered.tool))
    return plan


def unknown_tool_result(call: ServerCall, offer: ToolOffer) -> str:
    """What the model is told when it calls a tool nobody offered (it may retry with a real one)."""
    return f"error: there is no tool named {call.name!r}; the tools are {sorted(offer.by_name)}"


def mcp_call_item(
    call: ServerCall | McpApprovalRequest,
    *,
    output: str | None = None,
    error: str | None = None,
    approval_request_id: str | None = None,
) -> McpCall:
    """An MCP call the server ran (``approval_request_id`` when it ran after an approval)."""
    label = call.server_label if isinstance(call, McpApprovalRequest) else call.tool.server_label
    return McpCall(
        id=new_id("mcp"),
        server_label=label,
        name=call.name,
        arguments=call.arguments,
        output=output,
        error=error,
        approval_request_id=approval_request_id,
        status="failed" if error is not None else "completed",
    )


def file_search_params(tool: FileSearchTool, query: str) -> dict[str, Any]:
    """The vector stores search body for one of the request's file_search tools."""
    params: dict[str, Any] = {"query": query, "max_num_results": tool.max_num_results, "rewrite_query": False}
    if tool.filters is not None:
        params["filters"] = tool.filters
    if tool.ranking_options is not None:
        params["ranking_options"] = tool.ranking_options.model_dump(exclude_none=True)
    return params


def file_search_item(
    query: str, results: list[FileSearchResult], include: list[str] | None, *, failed: bool = False
) -> FileSearchCall:
    """The search as an output item: results kept only with ``include=["file_search_call.results"]``."""
    keep = bool(include) and INCLUDE_FILE_SEARCH_RESULTS in include
    return FileSearchCall(
        id=new_id("fs"),
        queries=[query],
        status="failed" if failed else "completed",
        results=list(results) if keep else None,
    )


def file_search_text(query: str, results: list[FileSearchResult]) -> str:
    """The search results as the model reads them (the tool message's content)."""
    lines = [f"knowledge_search found {len(results)} passages for {query!r}:"]
    for n, r in enumerate(results, 1):
        lines.append(f"[{n}] file {r.filename} ({r.file_id}), score {r.score:.3f}:\n{r.text}")
    return "\n".join(lines)


def web_search_item(query: str, *, failed: bool = False) -> WebSearchCall:
    return WebSearchCall(
        id=new_id("ws"), status="failed" if failed else "completed", action={"type": "search", "query": query}
    )
