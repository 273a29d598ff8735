"""Translate Llama Stack native inference requests to OpenAI's shape, and answers back.

Any provider whose backend speaks OpenAI chat completions (remote servers, llama.cpp) serves the
native routes with these functions.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from lamina.apis.common import ImageContentItem, TextContentItem, content_to_text
from lamina.apis.inference import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseEvent,
    ChatCompletionResponseStreamChunk,
    CompletionMessage,
    CompletionRequest,
    CompletionResponse,
    CompletionResponseStreamChunk,
    EmbeddingsRequest,
    GrammarResponseFormat,
    JsonSchemaResponseFormat,
    Metric,
    OpenAIChatCompletionRequest,
    OpenAICompletionRequest,
    SamplingParams,
    StopReason,
    SystemMessage,
    TextDelta,
    TokenLogProbs,
    ToolCall,
    ToolCallDelta,
    ToolDefinition,
    ToolResponseMessage,
    TopKSamplingStrategy,
    TopPSamplingStrategy,
    UserMessage,
)
from lamina.apis.tools import JSON_SCHEMA_TYPES
from lamina.errors import BadRequestError, UpstreamError

FINISH_TO_STOP: dict[str | None, StopReason] = {
    "stop": "end_of_turn",
    "eos": "end_of_turn",
    "tool_calls": "end_of_message",
    "function_call": "end_of_message",
    "length": "out_of_tokens",
    None: "end_of_turn",
}


# OpenAI's /v1/completions returns at most this many alternatives per token (its `logprobs`), where
# the native LogProbConfig.top_k allows 20 (as chat's top_logprobs does).
OPENAI_COMPLETION_LOGPROBS = next(
    m.le for m in OpenAICompletionRequest.model_fields["logprobs"].metadata if getattr(m, "le", None)
)


@dataclass(frozen=True)
class Dialect:
    """What a backend accepts beyond the OpenAI standard."""

    top_k: bool = True  # vLLM, llama.cpp, TGI accept `top_k`
    repetition_penalty: bool = True
    grammar_field: str | None = None  # e.g. "guided_grammar" (vLLM), "grammar" (llama.cpp)
    # The most `logprobs` a completion may ask for (None: the upstream decides).
    completion_logprobs: int | None = None


OPENAI_STRICT = Dialect(top_k=False, repetition_penalty=False, completion_logprobs=OPENAI_COMPLETION_LOGPROBS)


# -- requests ----------------------------------------------------------------------------------


def _content_to_openai(content: Any) -> str | list[dict[str, Any]]:
    items = content if isinstance(content, list) else [content]
    if all(isinstance(i, str | TextContentItem) for i in items):
        return content_to_text(content)
    parts: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, str):
            parts.append({"type": "text", "text": item})
        elif isinstance(item, TextContentItem):
            parts.append({"type": "text", "text": item.text})
        elif isinstance(item, ImageContentItem):
            if item.image.url is not None:
                url = item.image.url.uri
            elif item.image.data:
                url = f"data:image/png;base64,{item.image.data}"
            else:
                raise BadRequestError("an image content item needs image.url or image.data", param="messages")
            parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def _arguments_json(call: ToolCall) -> str:
    if call.arguments_json:
        return call.arguments_json
    if isinstance(call.arguments, str):
        return call.arguments
    return json.dumps(call.arguments)


def messages_to_openai(messages: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for msg in messages:
        if isinstance(msg, SystemMessage):
            out.append({"role": "system", "content": content_to_text(msg.content)})
        elif isinstance(msg, UserMessage):
            content = _content_to_openai(msg.content)
            if msg.context is not None:
                content = f"{content_to_text(msg.content)}\n\n{content_to_text(msg.context)}"
            out.append({"role": "user", "content": content})
        elif isinstance(msg, ToolResponseMessage):
            out.append({"role": "tool", "tool_call_id": msg.call_id, "content": content_to_text(msg.content)})
        elif isinstance(msg, CompletionMessage):
            entry: dict[str, Any] = {"role": "assistant", "content": content_to_text(msg.content)}
            if msg.tool_calls:
                entry["tool_calls"] = [
                    {
                        "id": c.call_id,
                        "type": "function",
                        "function": {"name": c.tool_name, "arguments": _arguments_json(c)},
                    }
                    for c in msg.tool_calls
                ]
            out.append(entry)
    return out


def tool_to_openai(tool: ToolDefinition) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, param in (tool.parameters or {}).items():
        prop: dict[str, Any] = {"type": JSON_SCHEMA_TYPES.get(param.param_type.lower(), param.param_type)}
        if param.description:
            prop["description"] = param.description
        if param.default is not None:
            prop["default"] = param.default
        properties[name] = prop
        if param.required is not False:
            required.append(name)
    function: dict[str, Any] = {
        "name": tool.tool_name,
        "parameters": {"type": "object", "properties": properties, "required": required},
    }
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def sampling_to_openai(params: SamplingParams | None, dialect: Dialect) -> dict[str, Any]:
    if params is None:
        return {}
    out: dict[str, Any] = {}
    strategy = params.strategy
    if isinstance(strategy, TopPSamplingStrategy):
        if strategy.temperature is not None:
            out["temperature"] = strategy.temperature
        if strategy.top_p is not None:
            out["top_p"] = strategy.top_p
    elif isinstance(strategy, TopKSamplingStrategy):
        if not dialect.top_k:
            raise BadRequestError(
                "this provider does not support top_k sampling; use the top_p or greedy strategy",
                param="sampling_params.strategy",
            )
        out["top_k"] = strategy.top_k
    else:
        out["temperature"] = 0.0
    if params.max_tokens:
        out["max_tokens"] = params.max_tokens
    if params.repetition_penalty not in (None, 1.0):
        if dialect.repetition_penalty:
            out["repetition_penalty"] = params.repetition_penalty
        else:
            out["frequency_penalty"] = max(-2.0, min(2.0, params.repetition_penalty - 1.0))
    if params.stop:
        out["stop"] = params.stop
    return out


def _response_format_to_openai(fmt: Any, dialect: Dialect) -> dict[str, Any]:
    if fmt is None:
        return {}
    if isinstance(fmt, JsonSchemaResponseFormat):
        schema = fmt.json_schema
        return {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": str(schema.get("title") or "response"), "schema": schema},
            }
        }
    if isinstance(fmt, GrammarResponseFormat):
        if dialect.grammar_field is None:
            raise BadRequestError(
                "this provider does not support grammar response formats; use json_schema",
                param="response_format",
            )
        return {
            dialect.grammar_field: fmt.bnf.get("grammar", fmt.bnf) if isinstance(fmt.bnf, dict) else fmt.bnf
        }
    return {}


def chat_request_to_openai(request: ChatCompletionRequest, model: str, dialect: Dialect) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": messages_to_openai(request.messages)}
    body.update(sampling_to_openai(request.sampling_params, dialect))
    body.update(_response_format_to_openai(request.response_format, dialect))
    tool_config = request.effective_tool_config()
    if request.tools:
        body["tools"] = [tool_to_openai(t) for t in request.tools]
        choice = tool_config.tool_choice or "auto"
        if choice in ("auto", "required", "none"):
            body["tool_choice"] = choice
        else:
            if choice not in {t.tool_name for t in request.tools}:
                raise BadRequestError(
                    f"tool_choice names {choice!r}, which is not among the request's tools",
                    param="tool_config.tool_choice",
                )
            body["tool_choice"] = {"type": "function", "function": {"name": choice}}
    if request.logprobs is not None:
        body["logprobs"] = True
        body["top_logprobs"] = request.logprobs.top_k or 0
    return body


def completion_request_to_openai(request: CompletionRequest, model: str, dialect: Dialect) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "prompt": content_to_text(request.content)}
    body.update(sampling_to_openai(request.sampling_params, dialect))
    body.update(_response_format_to_openai(request.response_format, dialect))
    if request.logprobs is not None:
        top_k = max(1, request.logprobs.top_k or 1)
        limit = dialect.completion_logprobs
        if limit is not None and top_k > limit:
            raise BadRequestError(
                f"logprobs.top_k: this provider returns at most {limit} alternatives per token for a "
                f"completion (got {top_k}); send logprobs.top_k <= {limit}, or use chat-completion "
                f"(up to 20)",
                param="logprobs.top_k",
            )
        body["logprobs"] = top_k
    return body


def embeddings_request_to_openai(request: EmbeddingsRequest, model: str, provider_id: str) -> dict[str, Any]:
    texts: list[str] = []
    for item in request.contents:
        if isinstance(item, ImageContentItem):
            raise BadRequestError(
                f"provider '{provider_id}' embeds text only; remove image items from contents",
                param="contents",
            )
        texts.append(item if isinstance(item, str) else item.text)
    if request.text_truncation not in (None, "none"):
        raise BadRequestError(
            f"provider '{provider_id}' cannot truncate server-side; send "
            f"text_truncation 'none' and shorter texts",
            param="text_truncation",
        )
    body: dict[str, Any] = {"model": model, "input": texts, "encoding_format": "float"}
    if request.output_dimension:
        body["dimensions"] = request.output_dimension
    return body


# -- responses ---------------------------------------------------------------------------------


def _parse_arguments(raw: str | None) -> str | dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, dict) else raw


def _tool_calls_from_openai(calls: list[dict[str, Any]] | None) -> list[ToolCall]:
    out = []
    for call in calls or []:
        fn = call.get("function") or {}
        raw = fn.get("arguments")
        out.append(
            ToolCall(
                call_id=call.get("id") or f"call_{uuid.uuid4().hex[:12]}",
                tool_name=fn.get("name") or "",
                arguments=_parse_arguments(raw),
                arguments_json=raw if isinstance(raw, str) else None,
            )
        )
    return out


def _chat_logprobs(choice: dict[str, Any]) -> list[TokenLogProbs] | None:
    content = (choice.get("logprobs") or {}).get("content")
    if not content:
        return None
    out = []
    for entry in content:
        tops = entry.get("top_logprobs") or [{"token": entry.get("token"), "logprob": entry.get("logprob")}]
        out.append(TokenLogProbs(logprobs_by_token={t["token"]: t["logprob"] for t in tops}))
    return out


def _usage_metrics(usage: dict[str, Any] | None) -> list[Metric] | None:
    if not usage:
        return None
    names = (
        ("prompt_tokens", "prompt_tokens"),
        ("completion_tokens", "completion_tokens"),
        ("total_tokens", "total_tokens"),
    )
    return [
        Metric(metric=m, value=float(usage[k]), unit="tokens") for m, k in names if usage.get(k) is not None
    ]


def _first_choice(resp: Any, provider_id: str) -> dict[str, Any]:
    choices = resp.get("choices") if isinstance(resp, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise UpstreamError(provider_id, f"the upstream answer has no choices: {str(resp)[:200]}")
    return choices[0]


def chat_response_from_openai(resp: dict[str, Any], provider_id: str) -> ChatCompletionResponse:
    choice = _first_choice(resp, provider_id)
    message = choice.get("message") or {}
    return ChatCompletionResponse(
        completion_message=CompletionMessage(
            content=message.get("content") or "",
            stop_reason=FINISH_TO_STOP.get(choice.get("finish_reason"), "end_of_turn"),
            tool_calls=_tool_calls_from_openai(message.get("tool_calls")),
        ),
        logprobs=_chat_logprobs(choice),
        metrics=_usage_metrics(resp.get("usage")),
    )


def _completion_logprobs(choice: dict[str, Any]) -> list[TokenLogProbs] | None:
    lp = choice.get("logprobs")
    if not lp:
        return None
    if lp.get("top_logprobs"):
        return [TokenLogProbs(logprobs_by_token=dict(t)) for t in lp["top_logprobs"] if t]
    if lp.get("content"):  # llama.cpp answers in the chat shape
        return _chat_logprobs(choice)
    return None


def completion_response_from_openai(resp: dict[str, Any], provider_id: str) -> CompletionResponse:
    choice = _first_choice(resp, provider_id)
    return CompletionResponse(
        content=choice.get("text") or "",
        stop_reason=FINISH_TO_STOP.get(choice.get("finish_reason"), "end_of_turn"),
        logprobs=_completion_logprobs(choice),
        metrics=_usage_metrics(resp.get("usage")),
    )


async def chat_stream_from_openai(
    chunks: AsyncIterator[dict[str, Any]],
) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
    """OpenAI chat chunks -> native start/progress/complete events; tool calls are assembled."""
    chunks = _pulled_first(chunks)
    await anext(chunks)  # reach the upstream before "start", so its failures keep their HTTP status
    yield ChatCompletionResponseStreamChunk(
        event=ChatCompletionResponseEvent(event_type="start", delta=TextDelta(text=""))
    )
    calls: dict[int, dict[str, Any]] = {}
    finish: str | None = None
    usage = None
    async for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            finish = choice.get("finish_reason") or finish
            for tc in delta.get("tool_calls") or []:
                slot = calls.setdefault(
                    tc.get("index", len(calls)), {"id": None, "name": "", "arguments": ""}
                )
                slot["id"] = tc.get("id") or slot["id"]
                fn = tc.get("function") or {}
                slot["name"] += fn.get("name") or ""
                slot["arguments"] += fn.get("arguments") or ""
                if fn.get("arguments"):
                    yield ChatCompletionResponseStreamChunk(
                        event=ChatCompletionResponseEvent(
                            event_type="progress",
                            delta=ToolCallDelta(tool_call=fn["arguments"], parse_status="in_progress"),
                        )
                    )
            text = delta.get("content")
            if text:
                yield ChatCompletionResponseStreamChunk(
                    event=ChatCompletionResponseEvent(
                        event_type="progress", delta=TextDelta(text=text), logprobs=_chat_logprobs(choice)
                    )
                )
    for index in sorted(calls):
        slot = calls[index]
        args = _parse_arguments(slot["arguments"])
        ok = isinstance(args, dict)
        call = ToolCall(
            call_id=slot["id"] or f"call_{uuid.uuid4().hex[:12]}",
            tool_name=slot["name"],
            arguments=args,
            arguments_json=slot["arguments"] or "{}",
        )
        yield ChatCompletionResponseStreamChunk(
            event=ChatCompletionResponseEvent(
                event_type="progress",
                delta=ToolCallDelta(
                    tool_call=call if ok else slot["arguments"], parse_status="succeeded" if ok else "failed"
                ),
            )
        )
    stop = FINISH_TO_STOP.get(finish, "end_of_turn")
    if calls and stop == "end_of_turn":
        stop = "end_of_message"
    yield ChatCompletionResponseStreamChunk(
        event=ChatCompletionResponseEvent(event_type="complete", delta=TextDelta(text=""), stop_reason=stop),
        metrics=_usage_metrics(usage),
    )


async def _pulled_first(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    """Yields a marker once the first upstream chunk has arrived, then every chunk."""
    iterator = aiter(chunks)
    first = await anext(iterator, None)
    yield {}
    if first is not None:
        yield first
        async for chunk in iterator:
            yield chunk


async def completion_stream_from_openai(
    chunks: AsyncIterator[dict[str, Any]],
) -> AsyncIterator[CompletionResponseStreamChunk]:
    finish = None
    async for chunk in chunks:
        for choice in chunk.get("choices") or []:
            finish = choice.get("finish_reason") or finish
            text = choice.get("text") or ""
            if text:
                yield CompletionResponseStreamChunk(delta=text, logprobs=_completion_logprobs(choice))
    yield CompletionResponseStreamChunk(delta="", stop_reason=FINISH_TO_STOP.get(finish, "end_of_turn"))


async def native_chat_via_openai(
    provider: Any, model: Any, request: ChatCompletionRequest, dialect: Dialect
) -> Any:
    """A native chat completion answered by ``provider.openai_chat_completion`` (an in-process provider
    whose own route is OpenAI's: llama.cpp, transformers): the answer, or its stream, in the native shape."""
    body = chat_request_to_openai(request, model.provider_model_id, dialect)
    body["stream"] = bool(request.stream)
    oai = OpenAIChatCompletionRequest.model_validate({**body, "model": model.identifier})
    result = await provider.openai_chat_completion(model, oai)
    if request.stream:
        return chat_stream_from_openai(result)
    return chat_response_from_openai(result, provider.provider_id)


async def native_completion_via_openai(
    provider: Any, model: Any, request: CompletionRequest, dialect: Dialect
) -> Any:
    """A native completion answered by ``provider.openai_completion``, in the native shape."""
    body = completion_request_to_openai(request, model.provider_model_id, dialect)
    body["stream"] = bool(request.stream)
    oai = OpenAICompletionRequest.model_validate({**body, "model": model.identifier})
    result = await provider.openai_completion(model, oai)
    if request.stream:
        return completion_stream_from_openai(result)
    return completion_response_from_openai(result, provider.provider_id)
