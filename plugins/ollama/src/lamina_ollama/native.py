"""Llama Stack native inference <-> Ollama's native API (/api/chat, /api/generate, /api/embed).

Ollama's shapes: messages carry ``content`` (a string) and ``images`` (base64 strings); tool calls
are ``{"function": {"name", "arguments": {...object...}}}`` without ids; tool results are role
``tool`` messages naming the tool in ``tool_name``; sampling goes in ``options`` (``num_predict`` is
max_tokens, ``repeat_penalty`` the repetition penalty); ``format`` is ``"json"`` or a JSON schema.
Answers end with ``done: true``, a ``done_reason`` (``stop``, ``length``) and token counts
(``prompt_eval_count``, ``eval_count``).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
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
    SamplingParams,
    StopReason,
    SystemMessage,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolResponseMessage,
    TopKSamplingStrategy,
    TopPSamplingStrategy,
    UserMessage,
)
from lamina.errors import BadRequestError, UpstreamError
from lamina.providers import openai_bridge as bridge

# Fetches an image URL and returns its bytes (the provider's pooled session does it).
ImageFetcher = Callable[[str], Awaitable[bytes]]


# -- shared pieces -------------------------------------------------------------------------------


async def image_to_base64(ref: str, fetch: ImageFetcher) -> str:
    """Ollama takes images as bare base64: data URLs are unwrapped, http(s) URLs downloaded."""
    if ref.startswith("data:"):
        header, _, data = ref.partition(",")
        if ";base64" not in header:
            return base64.b64encode(data.encode()).decode()
        return data
    if ref.startswith(("http://", "https://")):
        return base64.b64encode(await fetch(ref)).decode()
    return ref  # already base64


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def tool_calls_from_ollama(calls: list[dict[str, Any]] | None) -> list[ToolCall]:
    out = []
    for call in calls or []:
        fn = call.get("function") or {}
        args = fn.get("arguments")
        if isinstance(args, str):  # some models' templates leave arguments as a JSON string
            parsed = bridge._parse_arguments(args)
            args_json, args = args, parsed
        else:
            args = args if isinstance(args, dict) else {}
            args_json = json.dumps(args)
        out.append(
            ToolCall(
                call_id=call.get("id") or new_call_id(),
                tool_name=fn.get("name") or "",
                arguments=args,
                arguments_json=args_json,
            )
        )
    return out


def stop_reason(doc: dict[str, Any], has_tool_calls: bool) -> StopReason:
    if doc.get("done_reason") == "length":
        return "out_of_tokens"
    return "end_of_message" if has_tool_calls else "end_of_turn"


def usage_metrics(doc: dict[str, Any]) -> list[Metric] | None:
    prompt, completion = doc.get("prompt_eval_count"), doc.get("eval_count")
    if prompt is None and completion is None:
        return None
    prompt, completion = int(prompt or 0), int(completion or 0)
    return [
        Metric(metric="prompt_tokens", value=float(prompt), unit="tokens"),
        Metric(metric="completion_tokens", value=float(completion), unit="tokens"),
        Metric(metric="total_tokens", value=float(prompt + completion), unit="tokens"),
    ]


# -- requests ------------------------------------------------------------------------------------


def sampling_options(params: SamplingParams | None) -> dict[str, Any]:
    if params is None:
        return {}
    options: dict[str, Any] = {}
    strategy = params.strategy
    if isinstance(strategy, TopPSamplingStrategy):
        if strategy.temperature is not None:
            options["temperature"] = strategy.temperature
        if strategy.top_p is not None:
            options["top_p"] = strategy.top_p
    elif isinstance(strategy, TopKSamplingStrategy):
        options["top_k"] = strategy.top_k
    else:  # greedy
        options["temperature"] = 0.0
    if params.max_tokens:
        options["num_predict"] = params.max_tokens
    if params.repetition_penalty not in (None, 1.0):
        options["repeat_penalty"] = params.repetition_penalty
    if params.stop:
        options["stop"] = list(params.stop)
    return options


def response_format(fmt: Any, provider_id: str) -> dict[str, Any]:
    if fmt is None:
        return {}
    if isinstance(fmt, JsonSchemaResponseFormat):
        return {"format": fmt.json_schema}
    if isinstance(fmt, GrammarResponseFormat):
        raise BadRequestError(
            f"provider '{provider_id}' (Ollama) does not support grammar response formats; use json_schema",
            param="response_format",
        )
    return {}


async def _user_message(msg: UserMessage, fetch: ImageFetcher) -> dict[str, Any]:
    items = msg.content if isinstance(msg.content, list) else [msg.content]
    texts: list[str] = []
    images: list[str] = []
    for item in items:
        if isinstance(item, ImageContentItem):
            if item.image.data:
                images.append(item.image.data)
            elif item.image.url is not None:
                images.append(await image_to_base64(item.image.url.uri, fetch))
            else:
                raise BadRequestError("an image content item needs image.url or image.data", param="messages")
        elif isinstance(item, TextContentItem):
            texts.append(item.text)
        else:
            texts.append(content_to_text(item))
    text = "".join(texts)
    if msg.context is not None:
        text = f"{text}\n\n{content_to_text(msg.context)}"
    out: dict[str, Any] = {"role": "user", "content": text}
    if images:
        out["images"] = images
    return out


async def messages_to_ollama(messages: list[Any], fetch: ImageFetcher) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # call_id -> tool name, for tool results (Ollama has no call ids)
    for msg in messages:
        if isinstance(msg, SystemMessage):
            out.append({"role": "system", "content": content_to_text(msg.content)})
        elif isinstance(msg, UserMessage):
            out.append(await _user_message(msg, fetch))
        elif isinstance(msg, ToolResponseMessage):
            entry = {"role": "tool", "content": content_to_text(msg.content)}
            if msg.call_id in names:
                entry["tool_name"] = names[msg.call_id]
            out.append(entry)
        elif isinstance(msg, CompletionMessage):
            entry: dict[str, Any] = {"role": "assistant", "content": content_to_text(msg.content)}
            if msg.tool_calls:
                calls = []
                for call in msg.tool_calls:
                    names[call.call_id] = call.tool_name
                    args = call.arguments
                    if isinstance(args, str):
                        parsed = bridge._parse_arguments(args)
                        args = parsed if isinstance(parsed, dict) else {}
                    calls.append({"function": {"name": call.tool_name, "arguments": args}})
                entry["tool_calls"] = calls
            out.append(entry)
    return out


def _tools(request: ChatCompletionRequest) -> list[dict[str, Any]] | None:
    if not request.tools:
        return None
    choice = request.effective_tool_config().tool_choice or "auto"
    tools = [bridge.tool_to_openai(t) for t in request.tools]
    if choice == "none":
        return None
    if choice in ("auto", "required"):
        return tools  # Ollama cannot force a call: "required" offers the tools, as "auto" does
    picked = [t for t in tools if t["function"]["name"] == choice]
    if not picked:
        raise BadRequestError(
            f"tool_choice names {choice!r}, which is not among the request's tools",
            param="tool_config.tool_choice",
        )
    return picked  # a named tool: offer only that one


async def chat_body(
    request: ChatCompletionRequest, model: str, provider_id: str, fetch: ImageFetcher
) -> dict[str, Any]:
    if request.logprobs is not None:
        raise BadRequestError(
            f"provider '{provider_id}' (Ollama) does not return logprobs; remove `logprobs`",
            param="logprobs",
        )
    body: dict[str, Any] = {
        "model": model,
        "messages": await messages_to_ollama(request.messages, fetch),
        "stream": bool(request.stream),
    }
    tools = _tools(request)
    if tools:
        body["tools"] = tools
    body.update(response_format(request.response_format, provider_id))
    options = sampling_options(request.sampling_params)
    if options:
        body["options"] = options
    return body


def completion_body(request: CompletionRequest, model: str, provider_id: str) -> dict[str, Any]:
    if request.logprobs is not None:
        raise BadRequestError(
            f"provider '{provider_id}' (Ollama) does not return logprobs; remove `logprobs`",
            param="logprobs",
        )
    items = request.content if isinstance(request.content, list) else [request.content]
    if any(isinstance(i, ImageContentItem) for i in items):
        raise BadRequestError(
            f"provider '{provider_id}' (Ollama) takes text only for completion; use chat_completion "
            f"for images",
            param="content",
        )
    body: dict[str, Any] = {
        "model": model,
        "prompt": content_to_text(request.content),
        "raw": True,  # a text completion continues the text: no chat template
        "stream": bool(request.stream),
    }
    body.update(response_format(request.response_format, provider_id))
    options = sampling_options(request.sampling_params)
    if options:
        body["options"] = options
    return body


def embed_body(request: EmbeddingsRequest, model: str, provider_id: str) -> dict[str, Any]:
    texts: list[str] = []
    for item in request.contents:
        if isinstance(item, ImageContentItem):
            raise BadRequestError(
                f"provider '{provider_id}' (Ollama) embeds text only; remove image items from contents",
                param="contents",
            )
        texts.append(item if isinstance(item, str) else item.text)
    if request.text_truncation == "start":
        raise BadRequestError(
            f"provider '{provider_id}' (Ollama) truncates only the end of a text; send text_truncation "
            f"'end' or 'none'",
            param="text_truncation",
        )
    # Ollama truncates by default; "none" asks it to fail on over-long input instead.
    body: dict[str, Any] = {"model": model, "input": texts, "truncate": request.text_truncation == "end"}
    if request.output_dimension:
        body["dimensions"] = request.output_dimension
    return body


# -- answers -------------------------------------------------------------------------------------


def _message(doc: dict[str, Any], provider_id: str) -> dict[str, Any]:
    message = doc.get("message")
    if not isinstance(message, dict):
        raise UpstreamError(provider_id, f"the /api/chat answer has no message: {str(doc)[:200]}")
    return message


def chat_response(doc: dict[str, Any], provider_id: str) -> ChatCompletionResponse:
    message = _message(doc, provider_id)
    calls = tool_calls_from_ollama(message.get("tool_calls"))
    return ChatCompletionResponse(
        completion_message=CompletionMessage(
            content=message.get("content") or "",
            stop_reason=stop_reason(doc, bool(calls)),
            tool_calls=calls,
        ),
        metrics=usage_metrics(doc),
    )


def completion_response(doc: dict[str, Any]) -> CompletionResponse:
    return CompletionResponse(
        content=doc.get("response") or "",
        stop_reason=stop_reason(doc, False),
        metrics=usage_metrics(doc),
    )


def _progress(delta: Any) -> ChatCompletionResponseStreamChunk:
    return ChatCompletionResponseStreamChunk(
        event=ChatCompletionResponseEvent(event_type="progress", delta=delta)
    )


async def chat_stream(
    events: AsyncIterator[dict[str, Any]], provider_id: str
) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
    """NDJSON chat lines -> start / progress / complete; tool calls arrive whole, so each is one
    ``succeeded`` tool-call delta."""
    events = aiter(events)
    first = await anext(events, None)  # reach Ollama before "start": its failures keep their status
    yield ChatCompletionResponseStreamChunk(
        event=ChatCompletionResponseEvent(event_type="start", delta=TextDelta(text=""))
    )
    last: dict[str, Any] = {}
    any_calls = False
    event = first
    while event is not None:
        last = event
        message = event.get("message") or {}
        if message.get("content"):
            yield _progress(TextDelta(text=message["content"]))
        for call in tool_calls_from_ollama(message.get("tool_calls")):
            any_calls = True
            yield _progress(ToolCallDelta(tool_call=call, parse_status="succeeded"))
        event = await anext(events, None)
    yield ChatCompletionResponseStreamChunk(
        event=ChatCompletionResponseEvent(
            event_type="complete", delta=TextDelta(text=""), stop_reason=stop_reason(last, any_calls)
        ),
        metrics=usage_metrics(last),
    )


async def completion_stream(
    events: AsyncIterator[dict[str, Any]],
) -> AsyncIterator[CompletionResponseStreamChunk]:
    last: dict[str, Any] = {}
    async for event in events:
        last = event
        if event.get("response"):
            yield CompletionResponseStreamChunk(delta=event["response"])
    yield CompletionResponseStreamChunk(
        delta="", stop_reason=stop_reason(last, False), metrics=usage_metrics(last)
    )


def embeddings_from_ollama(doc: dict[str, Any], expected: int, provider_id: str) -> list[list[float]]:
    vectors = doc.get("embeddings")
    if not isinstance(vectors, list) or len(vectors) != expected:
        got = len(vectors) if isinstance(vectors, list) else "none"
        raise UpstreamError(provider_id, f"expected {expected} embeddings from /api/embed, got {got}")
    return vectors
