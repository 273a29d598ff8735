"""OpenAI requests -> Ollama's native API, and Ollama's answers -> OpenAI objects and chunks.

What Ollama cannot do is refused with a 400 naming the field (logprobs, logit_bias, token-id
prompts, several choices while streaming) rather than silently ignored. ``n`` > 1 without
streaming is served by asking Ollama ``n`` times.
"""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from lamina.apis.inference import (
    OpenAIChatCompletionRequest,
    OpenAICompletionRequest,
    OpenAIEmbeddingsRequest,
)
from lamina.errors import BadRequestError, UpstreamError
from lamina_ollama.native import ImageFetcher, image_to_base64, new_call_id

FINISH = {"stop": "stop", "length": "length"}
# Ollama options a caller may send as extra top-level fields (extra_body in the OpenAI SDK).
EXTRA_OPTIONS = {
    "top_k", "min_p", "typical_p", "repeat_penalty", "repeat_last_n", "num_ctx", "num_keep",
    "mirostat", "mirostat_tau", "mirostat_eta", "penalize_newline", "num_batch", "num_thread",
}  # fmt: skip
PASSTHROUGH = ("keep_alive", "think")


def _refuse(provider_id: str, field: str, why: str) -> BadRequestError:
    return BadRequestError(f"provider '{provider_id}' (Ollama) {why}; remove `{field}`", param=field)


def _options(request: Any) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for field in ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty"):
        value = getattr(request, field, None)
        if value is not None:
            options[field] = value
    max_tokens = getattr(request, "max_completion_tokens", None) or request.max_tokens
    if max_tokens:
        options["num_predict"] = max_tokens
    if request.stop:
        options["stop"] = [request.stop] if isinstance(request.stop, str) else list(request.stop)
    extra = request.model_extra or {}
    if "repetition_penalty" in extra:
        options["repeat_penalty"] = extra["repetition_penalty"]
    options.update({k: v for k, v in extra.items() if k in EXTRA_OPTIONS})
    if isinstance(extra.get("options"), dict):
        options.update(extra["options"])
    return options


def _common(request: Any, body: dict[str, Any], provider_id: str) -> dict[str, Any]:
    if request.logit_bias:
        raise _refuse(provider_id, "logit_bias", "does not support logit_bias")
    options = _options(request)
    if options:
        body["options"] = options
    extra = request.model_extra or {}
    body.update({k: extra[k] for k in PASSTHROUGH if k in extra})
    return body


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")


async def _messages(messages: list[Any], fetch: ImageFetcher) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for msg in messages:
        extra = msg.model_extra or {}
        role = msg.role
        if role in ("system", "developer"):
            out.append({"role": "system", "content": _text(msg.content)})
        elif role == "user":
            entry: dict[str, Any] = {"role": "user", "content": _text(msg.content)}
            images = []
            for part in msg.content if isinstance(msg.content, list) else []:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    url = (part.get("image_url") or {}).get("url") or ""
                    images.append(await image_to_base64(url, fetch))
            if images:
                entry["images"] = images
            out.append(entry)
        elif role == "assistant":
            entry = {"role": "assistant", "content": _text(msg.content)}
            calls = []
            for call in extra.get("tool_calls") or []:
                fn = call.get("function") or {}
                names[call.get("id") or ""] = fn.get("name") or ""
                raw = fn.get("arguments")
                try:
                    args = json.loads(raw) if isinstance(raw, str) and raw else (raw or {})
                except ValueError:
                    raise BadRequestError(
                        f"an assistant tool call's arguments are not JSON: {raw!r}", param="messages"
                    ) from None
                calls.append({"function": {"name": fn.get("name") or "", "arguments": args}})
            if calls:
                entry["tool_calls"] = calls
            out.append(entry)
        else:  # tool, or the legacy function role
            entry = {"role": "tool", "content": _text(msg.content)}
            name = names.get(extra.get("tool_call_id") or "") or extra.get("name")
            if name:
                entry["tool_name"] = name
            out.append(entry)
    return out


def _tools(request: OpenAIChatCompletionRequest) -> list[dict[str, Any]] | None:
    tools, choice = request.tools, request.tool_choice
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        picked = [t for t in tools if (t.get("function") or {}).get("name") == name]
        if not picked:
            raise BadRequestError(
                f"tool_choice names {name!r}, which is not among tools", param="tool_choice"
            )
        return picked
    return tools


def _format(fmt: dict[str, Any] | None) -> Any:
    if not fmt or fmt.get("type") == "text":
        return None
    if fmt.get("type") == "json_object":
        return "json"
    return (fmt.get("json_schema") or {}).get("schema") or "json"


async def chat_body(
    request: OpenAIChatCompletionRequest, model: str, provider_id: str, fetch: ImageFetcher
) -> dict[str, Any]:
    if request.logprobs or request.top_logprobs:
        raise _refuse(provider_id, "logprobs", "does not return logprobs")
    if request.stream and (request.n or 1) > 1:
        raise _refuse(provider_id, "n", "streams one choice only")
    body: dict[str, Any] = {
        "model": model,
        "messages": await _messages(request.messages, fetch),
        "stream": bool(request.stream),
    }
    tools = _tools(request)
    if tools:
        body["tools"] = tools
    fmt = _format(request.response_format)
    if fmt is not None:
        body["format"] = fmt
    return _common(request, body, provider_id)


def completion_bodies(request: OpenAICompletionRequest, model: str, provider_id: str) -> list[dict[str, Any]]:
    """One /api/generate body per prompt (Ollama takes one prompt a request)."""
    if request.logprobs:
        raise _refuse(provider_id, "logprobs", "does not return logprobs")
    if (request.best_of or 1) > 1:
        raise _refuse(provider_id, "best_of", "does not support best_of")
    prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise _refuse(provider_id, "prompt", "takes text prompts only, not token ids")
    if request.stream and (len(prompts) > 1 or (request.n or 1) > 1):
        raise _refuse(provider_id, "n", "streams one prompt and one choice only")
    bodies = []
    for prompt in prompts:
        body: dict[str, Any] = {"model": model, "prompt": prompt, "stream": bool(request.stream)}
        if request.suffix:
            body["suffix"] = request.suffix  # fill-in-the-middle needs the model's template
        else:
            body["raw"] = True
        bodies.append(_common(request, body, provider_id))
    return bodies


def embed_body(request: OpenAIEmbeddingsRequest, model: str, provider_id: str) -> dict[str, Any]:
    texts = [request.input] if isinstance(request.input, str) else request.input
    if not all(isinstance(t, str) for t in texts):
        raise _refuse(provider_id, "input", "embeds text only, not token ids")
    body: dict[str, Any] = {"model": model, "input": texts}
    if request.dimensions:
        body["dimensions"] = request.dimensions
    extra = request.model_extra or {}
    body.update({k: extra[k] for k in ("keep_alive", "truncate") if k in extra})
    return body


# -- answers -------------------------------------------------------------------------------------


def _openai_tool_calls(calls: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out = []
    for i, call in enumerate(calls or []):
        fn = call.get("function") or {}
        args = fn.get("arguments")
        out.append(
            {
                "index": fn.get("index", i),
                "id": call.get("id") or new_call_id(),
                "type": "function",
                "function": {
                    "name": fn.get("name") or "",
                    "arguments": args if isinstance(args, str) else json.dumps(args or {}),
                },
            }
        )
    return out


def _finish(doc: dict[str, Any], has_calls: bool) -> str:
    if doc.get("done_reason") == "length":
        return "length"
    return "tool_calls" if has_calls else "stop"


def _usage(docs: list[dict[str, Any]]) -> dict[str, int]:
    prompt = sum(int(d.get("prompt_eval_count") or 0) for d in docs)
    completion = sum(int(d.get("eval_count") or 0) for d in docs)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def chat_completion(docs: list[dict[str, Any]], model_id: str, provider_id: str) -> dict[str, Any]:
    choices = []
    for index, doc in enumerate(docs):
        message = doc.get("message")
        if not isinstance(message, dict):
            raise UpstreamError(provider_id, f"the /api/chat answer has no message: {str(doc)[:200]}")
        calls = _openai_tool_calls(message.get("tool_calls"))
        out: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
        if calls:
            out["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
            out["content"] = out["content"] or None
        if message.get("thinking"):
            out["reasoning_content"] = message["thinking"]
        choices.append(
            {"index": index, "message": out, "finish_reason": _finish(doc, bool(calls)), "logprobs": None}
        )
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_id,
        "choices": choices,
        "usage": _usage(docs),
    }


async def chat_chunks(events: AsyncIterator[dict[str, Any]], model_id: str) -> AsyncIterator[dict[str, Any]]:
    """NDJSON chat lines -> chat.completion.chunk objects (tool calls as whole-call deltas).

    The usage chunk always ends the stream: the inference store records it, and the router sends it
    on only when the request asked for it (``lamina.providers.openai_wire``).
    """
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "model": model_id}
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {**base, "created": created, "choices": [choice]}

    first = True
    calls_seen = 0
    last: dict[str, Any] = {}
    async for event in events:
        last = event
        message = event.get("message") or {}
        delta: dict[str, Any] = {}
        if message.get("content"):
            delta["content"] = message["content"]
        if message.get("thinking"):
            delta["reasoning_content"] = message["thinking"]
        calls = _openai_tool_calls(message.get("tool_calls"))
        for call in calls:
            call["index"] = calls_seen
            calls_seen += 1
        if calls:
            delta["tool_calls"] = calls
        if first:
            yield chunk({"role": "assistant", "content": "", **delta})
            first = False
        elif delta:
            yield chunk(delta)
    yield chunk({}, _finish(last, calls_seen > 0))
    yield {**base, "created": created, "choices": [], "usage": _usage([last])}


def text_completion(
    docs: list[dict[str, Any]], prompts: list[str], echo: bool, model_id: str
) -> dict[str, Any]:
    choices = []
    for index, (doc, prompt) in enumerate(zip(docs, prompts, strict=True)):
        text = doc.get("response") or ""
        choices.append(
            {
                "index": index,
                "text": prompt + text if echo else text,
                "finish_reason": _finish(doc, False),
                "logprobs": None,
            }
        )
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model_id,
        "choices": choices,
        "usage": _usage(docs),
    }


async def text_chunks(
    events: AsyncIterator[dict[str, Any]], model_id: str, prompt: str, echo: bool
) -> AsyncIterator[dict[str, Any]]:
    """NDJSON generate lines -> text_completion chunks, the usage chunk last (see ``chat_chunks``)."""
    base = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "model": model_id}
    created = int(time.time())

    def chunk(text: str, finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
        return {**base, "created": created, "choices": [choice]}

    last: dict[str, Any] = {}
    pending_echo = echo
    async for event in events:
        last = event
        text = event.get("response") or ""
        if pending_echo:
            text, pending_echo = prompt + text, False
        if text:
            yield chunk(text)
    yield chunk("", _finish(last, False))
    yield {**base, "created": created, "choices": [], "usage": _usage([last])}


def embeddings(
    doc: dict[str, Any], expected: int, encoding: str | None, model_id: str, provider_id: str
) -> dict[str, Any]:
    vectors = doc.get("embeddings")
    if not isinstance(vectors, list) or len(vectors) != expected:
        got = len(vectors) if isinstance(vectors, list) else "none"
        raise UpstreamError(provider_id, f"expected {expected} embeddings from /api/embed, got {got}")
    data = []
    for index, vector in enumerate(vectors):
        value: Any = vector
        if encoding == "base64":
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": value})
    prompt = int(doc.get("prompt_eval_count") or 0)
    return {
        "object": "list",
        "data": data,
        "model": model_id,
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }
