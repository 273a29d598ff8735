"""What the engine gets for an Agents turn: messages, tools and settings from the agent and the turn.

- Messages are OpenAI's: the agent's ``instructions`` as the system message, then every earlier turn's
  transcript (its input, the model's answers and tool calls, the tools' results), then this turn's
  input. Documents attached to the turn reach the model as text appended to its last user message, as
  Llama Stack 0.2.12 does (inline content and ``data:`` URIs; a document by URL is a 400: the agents
  provider fetches nothing, use ``builtin::rag`` insert for remote documents).
- Tools: the agent's ``client_tools`` and the tools of the tool groups in use: the turn's ``toolgroups``
  when it gives them, else the agent's. ``group/tool`` offers one tool of a group. Args bound to a
  group (``AgentToolGroupWithArgs``, e.g. ``builtin::rag`` ``vector_db_ids``) come from the agent's and
  the turn's entries, the turn's winning, and are merged over the model's arguments at each call.
- ``tool_config`` is the turn's when given, else the agent's; sampling, response format, shields and
  ``max_infer_iters`` are the agent's.
"""

from __future__ import annotations

import base64
import urllib.parse
from typing import Any

from lamina.apis.agents import (
    AgentConfig,
    AgentToolGroupWithArgs,
    AgentTurnCreateRequest,
    Document,
    ToolResponse,
)
from lamina.apis.common import URL, content_to_text
from lamina.apis.inference import ResponseFormat, SamplingParams, ToolResponseMessage, UserMessage
from lamina.apis.tools import JSON_SCHEMA_TYPES, ListToolsRequest, ToolParameter
from lamina.errors import BadRequestError, LaminaError
from lamina_agents.engine import EngineRequest, EngineTool
from lamina_agents.store import TurnRecord


def parameters_schema(params: list[ToolParameter] | None) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in params or []:
        prop: dict[str, Any] = {"type": JSON_SCHEMA_TYPES.get(param.parameter_type.lower(), "string")}
        if param.description:
            prop["description"] = param.description
        if param.default is not None:
            prop["default"] = param.default
        properties[param.name] = prop
        if param.required and param.default is None:
            required.append(param.name)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _content(content: Any) -> Any:
    """Interleaved content as OpenAI message content (text, or parts with images)."""
    if isinstance(content, str):
        return content
    return content_to_text(content, separator="\n")


def input_to_openai(
    messages: list[UserMessage | ToolResponseMessage], documents: list[Document] | None
) -> list[dict]:
    out: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, ToolResponseMessage):
            out.append(
                {"role": "tool", "tool_call_id": message.call_id, "content": _content(message.content)}
            )
        else:
            text = _content(message.content)
            if message.context:
                text = f"{text}\n\n{_content(message.context)}"
            out.append({"role": "user", "content": text})
    inserted = documents_text(documents)
    if inserted is not None:
        for message in reversed(out):
            if message["role"] == "user":
                message["content"] = "\n".join([message["content"], inserted])
                break
        else:
            out.append({"role": "user", "content": inserted})
    return out


def documents_text(documents: list[Document] | None) -> str | None:
    """What a turn's documents put into the context (the turn's memory_retrieval step records it)."""
    if not documents:
        return None
    return "\n".join(_document_text(doc, i) for i, doc in enumerate(documents))


def _document_text(doc: Document, index: int) -> str:
    content = doc.content
    uri = content.uri if isinstance(content, URL) else None
    if isinstance(content, dict) and "uri" in content:
        uri = content["uri"]
    if uri is None:
        return content_to_text(content, separator="\n")
    if uri.startswith("data:"):
        head, _, data = uri.partition(",")
        raw = base64.b64decode(data) if head.endswith(";base64") else urllib.parse.unquote(data).encode()
        return raw.decode("utf-8", errors="replace")
    raise BadRequestError(
        f"documents[{index}].content: a document by URL ({uri[:80]}) is not fetched by the agents provider; "
        "pass its text (or a data: URI), or insert it with builtin::rag and search it with knowledge_search",
        param=f"documents[{index}].content",
    )


def tool_response_messages(responses: list[ToolResponse]) -> list[dict[str, Any]]:
    return [{"role": "tool", "tool_call_id": r.call_id, "content": _content(r.content)} for r in responses]


def history(config: AgentConfig, turns: list[TurnRecord]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if config.instructions:
        messages.append({"role": "system", "content": config.instructions})
    for record in turns:
        transcript = record.transcript
        # A turn that still awaits client tools' results: its unanswered calls would be refused by the
        # model's API; keep its input only.
        if record.status == "awaiting_input":
            transcript = [m for m in transcript if m["role"] == "user"]
        messages.extend(transcript)
    return messages


def sampling(params: SamplingParams | None) -> dict[str, Any]:
    if params is None:
        return {}
    out: dict[str, Any] = {}
    strategy = params.strategy
    if strategy.type == "greedy":
        out["temperature"] = 0.0
    elif strategy.type == "top_p":
        if strategy.temperature is not None:
            out["temperature"] = strategy.temperature
        if strategy.top_p is not None:
            out["top_p"] = strategy.top_p
    elif strategy.type == "top_k":
        out["top_k"] = strategy.top_k
    if params.max_tokens:
        out["max_tokens"] = params.max_tokens
    if params.stop:
        out["stop"] = params.stop
    return out


def response_format(fmt: ResponseFormat | None) -> dict[str, Any] | None:
    if fmt is None:
        return None
    if fmt.type == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt.json_schema}}
    raise BadRequestError(
        "agent_config.response_format: type 'grammar' is not supported by the chat completion the agent "
        "loop uses; use type 'json_schema'",
        param="agent_config.response_format",
    )


# Llama Stack offers the built-in tool groups' tools to the model under the Llama models' built-in tool
# names, and its turn steps name the call so: builtin::websearch's ``web_search`` is ``brave_search``
# (Llama Stack 0.2.12's agent_instance; its test_builtin_tool_web_search checks the step's tool_name).
# The Tool Runtime still runs ``web_search``: the tool's runtime_name.
BUILTIN_MODEL_NAMES = {"web_search": "brave_search"}


def model_tool_name(group_id: str, tool: str) -> str:
    """The name the model (and the turn's steps) see for ``tool`` of ``group_id``."""
    if group_id.startswith("builtin::") and group_id != "builtin::rag":
        return BUILTIN_MODEL_NAMES.get(tool, tool)
    return tool


async def resolve_tools(
    config: AgentConfig, turn_groups: list[Any] | None, tool_runtime: Any
) -> list[EngineTool]:
    tools: dict[str, EngineTool] = {}
    for tool in config.client_tools or []:
        if tool.name in tools:
            raise BadRequestError(
                f"agent_config.client_tools: tool '{tool.name}' is defined twice",
                param="agent_config.client_tools",
            )
        tools[tool.name] = EngineTool(
            tool.name, tool.description, parameters_schema(tool.parameters), client=True
        )
    args: dict[str, dict[str, Any]] = {}
    for group in [*(config.toolgroups or []), *(turn_groups or [])]:  # the turn's args win
        if isinstance(group, AgentToolGroupWithArgs):
            args[group.name.split("/")[0]] = group.args
    in_use = turn_groups if turn_groups else (config.toolgroups or [])
    field = "toolgroups" if turn_groups else "agent_config.toolgroups"
    for i, group in enumerate(in_use):
        name = group.name if isinstance(group, AgentToolGroupWithArgs) else group
        group_id, _, only = name.partition("/")
        if tool_runtime is None:
            raise BadRequestError(
                f"{field}[{i}]: tool group '{group_id}' needs a tool runtime; add one under "
                "providers.tool_runtime",
                param=f"{field}[{i}]",
            )
        try:
            listed = await tool_runtime.tool_groups.list_tools(ListToolsRequest(toolgroup_id=group_id))
        except LaminaError as exc:
            if exc.status == 404:
                raise BadRequestError(f"{field}[{i}]: {exc.message}", param=f"{field}[{i}]") from None
            raise
        offered = [t for t in listed.data if not only or t.identifier == only]
        if only and not offered:
            names = ", ".join(t.identifier for t in listed.data)
            raise BadRequestError(
                f"{field}[{i}]: tool group '{group_id}' has no tool '{only}' (it has: {names})",
                param=f"{field}[{i}]",
            )
        for tool in offered:
            model_name = model_tool_name(group_id, tool.identifier)
            if model_name in tools:
                raise BadRequestError(
                    f"{field}[{i}]: tool '{model_name}' is offered twice (by a client tool or another group)",
                    param=f"{field}[{i}]",
                )
            tools[model_name] = EngineTool(
                model_name,
                tool.description,
                parameters_schema(tool.parameters),
                bound_args=args.get(group_id, {}),
                runtime_name=f"{tool.toolgroup_id or group_id}/{tool.identifier}",
            )
    return list(tools.values())


async def build_request(
    config: AgentConfig,
    turn: AgentTurnCreateRequest | None,
    messages: list[dict[str, Any]],
    tool_runtime: Any,
    *,
    turn_groups: list[Any] | None = None,
    turn_tool_config: Any = None,
) -> EngineRequest:
    """``turn`` is None when a turn resumes: then ``turn_groups``/``turn_tool_config`` are its stored ones."""
    if turn is not None:
        messages = messages + input_to_openai(turn.messages, turn.documents)
        turn_groups, turn_tool_config = turn.toolgroups, turn.tool_config
    tool_config = turn_tool_config or config.tool_config
    return EngineRequest(
        model=config.model,
        messages=messages,
        tools=await resolve_tools(config, turn_groups, tool_runtime),
        tool_choice=(tool_config.tool_choice if tool_config else None) or "auto",
        sampling=sampling(config.sampling_params),
        response_format=response_format(config.response_format),
        input_shields=list(config.input_shields or []),
        output_shields=list(config.output_shields or []),
        max_infer_iters=config.max_infer_iters or 10,
    )
