"""One chat.completion object rebuilt from the chat.completion.chunk objects of an OpenAI stream.

The inference router records every streamed OpenAI chat completion in the inference store
(``lamina.storage.inference_store``) as the completion a non-streamed request would have got; a
provider that can only stream its upstream can answer a non-streamed request the same way.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    return obj if isinstance(obj, dict) else {}


class StreamAssembler:
    """Rebuilds the chat.completion object from a stream of chat.completion.chunk objects.

    Per choice: content concatenated, tool calls merged by their ``index`` (id, type, name and
    argument fragments), the last finish_reason, logprobs content concatenated; the stream's usage
    (``stream_options.include_usage``) and system_fingerprint are kept.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.id: str | None = None
        self.created: int | None = None
        self.usage: Any = None
        self.system_fingerprint: Any = None
        self.choices: dict[int, dict[str, Any]] = {}

    def add(self, chunk: Any) -> None:
        doc = _as_dict(chunk)
        if self.id is None and doc.get("id"):
            self.id = str(doc["id"])
        if self.created is None and isinstance(doc.get("created"), int) and doc["created"] > 0:
            self.created = doc["created"]
        if doc.get("usage"):
            self.usage = doc["usage"]
        if doc.get("system_fingerprint"):
            self.system_fingerprint = doc["system_fingerprint"]
        for choice in doc.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            state = self.choices.setdefault(
                int(choice.get("index") or 0),
                {"content": [], "refusal": [], "tool_calls": {}, "finish_reason": None, "logprobs": []},
            )
            delta = choice.get("delta") or {}
            if delta.get("content"):
                state["content"].append(delta["content"])
            if delta.get("refusal"):
                state["refusal"].append(delta["refusal"])
            for call in delta.get("tool_calls") or ():
                self._merge_tool_call(state["tool_calls"], call)
            if choice.get("finish_reason"):
                state["finish_reason"] = choice["finish_reason"]
            logprobs = choice.get("logprobs")
            if isinstance(logprobs, dict) and logprobs.get("content"):
                state["logprobs"].extend(logprobs["content"])

    @staticmethod
    def _merge_tool_call(calls: dict[int, dict[str, Any]], call: dict[str, Any]) -> None:
        slot = calls.setdefault(
            int(call.get("index") or 0), {"id": None, "type": "function", "name": [], "arguments": []}
        )
        if call.get("id"):
            slot["id"] = call["id"]
        if call.get("type"):
            slot["type"] = call["type"]
        function = call.get("function") or {}
        if function.get("name"):
            slot["name"].append(function["name"])
        if function.get("arguments"):
            slot["arguments"].append(function["arguments"])

    def completion(self) -> dict[str, Any] | None:
        """The assembled chat.completion object, or None when the stream carried no id."""
        if not self.id:
            return None
        choices = []
        for index in sorted(self.choices):
            state = self.choices[index]
            message: dict[str, Any] = {"role": "assistant", "content": "".join(state["content"]) or None}
            if state["refusal"]:
                message["refusal"] = "".join(state["refusal"])
            calls = [
                {
                    "id": slot["id"],
                    "type": slot["type"],
                    "function": {"name": "".join(slot["name"]), "arguments": "".join(slot["arguments"])},
                }
                for _, slot in sorted(state["tool_calls"].items())
                if slot["id"] or slot["name"]
            ]
            if calls:
                message["tool_calls"] = calls
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "finish_reason": state["finish_reason"],
                    "logprobs": {"content": state["logprobs"]} if state["logprobs"] else None,
                }
            )
        created = self.created or int(time.time())
        completion: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": created,
            "model": self.model,
            "choices": choices,
        }
        if self.usage is not None:
            completion["usage"] = self.usage
        if self.system_fingerprint is not None:
            completion["system_fingerprint"] = self.system_fingerprint
        return completion
