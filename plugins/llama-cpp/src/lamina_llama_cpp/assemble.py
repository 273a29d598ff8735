"""A streamed llama.cpp answer joined back into the document its non-streamed call returns.

Every generation runs streamed inside, because only a streamed call can be stopped (its chunk
callback returns True): a non-streamed ``handle_*`` of xllamacpp runs to the end whatever happens
to its caller. These functions rebuild the non-streamed shape from the chunks: per choice the
text (or message with role, content, reasoning and tool calls), the token logprobs, and the last
finish_reason; the usage (summed when several prompts ran), timings, id, created, model and
system_fingerprint.
"""

from __future__ import annotations

from typing import Any

_HEAD = ("id", "created", "model", "system_fingerprint")


def _head(chunks: list[dict[str, Any]], obj: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"object": obj}
    for chunk in chunks:
        for key in _HEAD:
            if key not in doc and chunk.get(key) is not None:
                doc[key] = chunk[key]
    usages = [c["usage"] for c in chunks if isinstance(c.get("usage"), dict)]
    if len(usages) == 1:
        doc["usage"] = usages[0]
    elif usages:  # one per prompt of a multi-prompt completion
        doc["usage"] = {
            key: sum(u.get(key, 0) for u in usages)
            for key in ("completion_tokens", "prompt_tokens", "total_tokens")
        }
    timings = [c["timings"] for c in chunks if isinstance(c.get("timings"), dict)]
    if timings:
        doc["timings"] = timings[-1]
    return doc


def _logprobs(parts: list[Any]) -> dict[str, Any] | None:
    tokens = [t for part in parts if isinstance(part, dict) for t in part.get("content") or []]
    return {"content": tokens} if tokens else None


def completion_from_chunks(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """``handle_completions`` chunks as one ``text_completion``."""
    texts: dict[int, list[str]] = {}
    logprobs: dict[int, list[Any]] = {}
    finish: dict[int, Any] = {}
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            i = int(choice.get("index") or 0)
            texts.setdefault(i, []).append(choice.get("text") or "")
            logprobs.setdefault(i, []).append(choice.get("logprobs"))
            if choice.get("finish_reason") is not None:
                finish[i] = choice["finish_reason"]
    doc = _head(chunks, "text_completion")
    doc["choices"] = [
        {
            "text": "".join(texts[i]),
            "index": i,
            "logprobs": _logprobs(logprobs[i]),
            "finish_reason": finish.get(i),
        }
        for i in sorted(texts)
    ]
    return doc


class _Message:
    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.logprobs: list[Any] = []
        self.finish: Any = None

    def add(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta") or {}
        if delta.get("content"):
            self.content.append(delta["content"])
        if delta.get("reasoning_content"):
            self.reasoning.append(delta["reasoning_content"])
        for call in delta.get("tool_calls") or []:
            self._add_call(call)
        self.logprobs.append(choice.get("logprobs"))
        if choice.get("finish_reason") is not None:
            self.finish = choice["finish_reason"]

    def _add_call(self, call: dict[str, Any]) -> None:
        slot = self.calls.setdefault(
            int(call.get("index") or 0), {"type": "function", "function": {"name": "", "arguments": ""}}
        )
        if call.get("id"):
            slot["id"] = call["id"]
        if call.get("type"):
            slot["type"] = call["type"]
        function = call.get("function") or {}
        if function.get("name"):
            slot["function"]["name"] += function["name"]
        if function.get("arguments"):
            slot["function"]["arguments"] += function["arguments"]

    def choice(self, index: int) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant"}
        calls = [self.calls[k] for k in sorted(self.calls)]
        message["content"] = "".join(self.content) if self.content else (None if calls else "")
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if calls:
            message["tool_calls"] = calls
        out: dict[str, Any] = {"finish_reason": self.finish, "index": index, "message": message}
        logprobs = _logprobs(self.logprobs)
        if logprobs is not None:
            out["logprobs"] = logprobs
        return out


def chat_from_chunks(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """``handle_chat_completions`` chunks as one ``chat.completion``."""
    messages: dict[int, _Message] = {}
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            messages.setdefault(int(choice.get("index") or 0), _Message()).add(choice)
    doc = _head(chunks, "chat.completion")
    doc["choices"] = [messages[i].choice(i) for i in sorted(messages)] or [_Message().choice(0)]
    return doc
