"""Lamina's tool prompt format, for models whose chat template knows nothing of tools.

The tools are described in the system prompt; the model calls one by writing
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (the Hermes convention many small
models were tuned on). Earlier calls and tool results are rendered back into the conversation in
the same words, so a tool-result round trip reads naturally to any chat template.

When a call is required (``tool_choice: required`` or a named tool), the answer is constrained
by a JSON schema (llama.cpp turns it into a grammar): a non-empty array of
``{"name": <one of the tools>, "arguments": <that tool's parameters>}``, so it always parses and
validates, whatever the model. In ``auto`` mode the parser is lenient: tags, fenced JSON, or a
bare JSON call naming a declared tool all count; anything else is text.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from lamina.errors import BadRequestError

OPEN = "<tool_call>"
CLOSE = "</tool_call>"

_FENCED = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


@dataclass
class ToolPlan:
    """How one request uses tools."""

    functions: list[dict[str, Any]]
    mode: Literal["auto", "required"]
    parallel: bool = True
    names: set[str] = field(init=False)  # the functions' names, derived from them

    def __post_init__(self) -> None:
        self.names = {f["name"] for f in self.functions}


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def openai_call(name: str, arguments: Any, call_id: str | None = None) -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return {"id": call_id or new_call_id(), "type": "function", "function": {"name": name, "arguments": args}}


# -- the request side ------------------------------------------------------------------------------


def _functions(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type", "function") != "function" or not isinstance(fn, dict) or not fn.get("name"):
            raise BadRequestError(
                f"tools[{i}] must be {{'type': 'function', "
                f"'function': {{'name': ..., 'parameters': {{...}}}}}}",
                param=f"tools[{i}]",
            )
        out.append(
            {
                "name": fn["name"],
                "description": fn.get("description") or "",
                "parameters": fn.get("parameters") or {"type": "object", "properties": {}},
            }
        )
    return out


def _text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for j, part in enumerate(content):
        if isinstance(part, dict) and part.get("type") == "text":
            parts.append(str(part.get("text", "")))
        elif isinstance(part, str):
            parts.append(part)
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise BadRequestError(
                f"{where}.content[{j}] is {kind!r}: this model reads text only; send text parts",
                param=f"{where}.content[{j}]",
            )
    return "".join(parts)


def render_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as plain role/content text: tool calls and tool results in Lamina's words."""
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        role = msg.get("role")
        where = f"messages[{i}]"
        if role == "assistant" and msg.get("tool_calls"):
            lines = [_text(msg.get("content"), where)] if msg.get("content") else []
            for call in msg["tool_calls"]:
                fn = call.get("function") or {}
                names[call.get("id", "")] = fn.get("name", "")
                try:
                    args = json.loads(fn.get("arguments") or "{}")
                except json.JSONDecodeError:
                    args = fn.get("arguments")
                lines.append(OPEN + json.dumps({"name": fn.get("name"), "arguments": args}) + CLOSE)
            out.append({"role": "assistant", "content": "\n".join(lines)})
        elif role in ("tool", "function"):
            name = msg.get("name") or names.get(msg.get("tool_call_id", ""), "")
            body = json.dumps({"name": name, "content": _text(msg.get("content"), where)}, ensure_ascii=False)
            out.append({"role": "user", "content": f"<tool_response>{body}</tool_response>"})
        elif role == "developer":
            out.append({"role": "system", "content": _text(msg.get("content"), where)})
        else:
            out.append({"role": role, "content": _text(msg.get("content"), where)})
    return out


def _system_prompt(plan: ToolPlan) -> str:
    listing = "\n".join(json.dumps(f, ensure_ascii=False) for f in plan.functions)
    if plan.mode == "required":
        return (
            "You call functions to answer. The functions, as JSON schemas:\n"
            f"{listing}\n"
            'Answer with only a JSON array of calls: [{"name": <function name>, "arguments": {...}}]. '
            "Fill the arguments from the conversation."
        )
    many = "one line per call" if plan.parallel else "at most one call"
    return (
        "You can call functions. The functions, as JSON schemas:\n"
        f"{listing}\n"
        "To call a function, answer with only\n"
        f'{OPEN}{{"name": <function name>, "arguments": {{...}}}}{CLOSE}\n'
        f"({many}). A function's result comes back as <tool_response>; then answer the user. "
        "If no function is needed, answer the user directly."
    )


def calls_schema(plan: ToolPlan, *, min_items: int = 1, closed: bool = False) -> dict[str, Any]:
    """JSON schema of a constrained answer: an array of calls to the plan's tools (non-empty by default).

    ``closed``: arguments limited to the declared properties where a tool's schema does not say
    otherwise, so that a small model cannot pad a call with keys the tool never declared.
    """
    variants = []
    for f in plan.functions:
        arguments = f["parameters"]
        if closed and arguments.get("type", "object") == "object" and "additionalProperties" not in arguments:
            arguments = {**arguments, "additionalProperties": False}
        variants.append(
            {
                "type": "object",
                "properties": {"name": {"const": f["name"]}, "arguments": arguments},
                "required": ["name", "arguments"],
            }
        )
    items = variants[0] if len(variants) == 1 else {"anyOf": variants}
    schema: dict[str, Any] = {"type": "array", "items": items, "minItems": min_items}
    if not plan.parallel:
        schema["maxItems"] = 1
    return schema


@dataclass
class Prepared:
    """A chat body rewritten for one tool format, and how to read the model's answer."""

    body: dict[str, Any]
    plan: ToolPlan | None
    # The answer is generated under a schema or grammar of calls: it is read whole (parse_forced).
    constrained: bool = False
    # When a constrained answer holds no call (the model declined, in a format that lets it):
    # the body that generates the text answer instead.
    fallback: dict[str, Any] | None = None
    # Input markers of the format that a small model may echo into a text answer: dropped from it.
    echo_tags: tuple[str, ...] = ()

    def text_filter(self) -> EchoFilter | None:
        return EchoFilter(self.echo_tags) if self.echo_tags else None


def read_plan(body: dict[str, Any]) -> tuple[dict[str, Any], ToolPlan | None]:
    """Pop the OpenAI tool fields off a chat body: the body without them, and the plan they make."""
    body = dict(body)
    tools = body.pop("tools", None) or []
    choice = body.pop("tool_choice", None) or ("auto" if tools else "none")
    parallel = body.pop("parallel_tool_calls", None) is not False
    if not tools or choice == "none":
        return body, None
    functions = _functions(tools)
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        functions = [f for f in functions if f["name"] == wanted]
        if not functions:
            raise BadRequestError(
                f"tool_choice names {wanted!r}, which is not among the request's tools",
                param="tool_choice",
            )
        return body, ToolPlan(functions, "required", parallel)
    if choice in ("auto", "required"):
        return body, ToolPlan(functions, choice, parallel)
    raise BadRequestError(
        "tool_choice must be 'auto', 'required', 'none' or {'type': 'function', 'function': {'name': ...}}",
        param="tool_choice",
    )


def with_system(messages: list[dict[str, Any]], prompt: str) -> list[dict[str, Any]]:
    """The messages with ``prompt`` after the caller's own system message (or as the system message)."""
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": f"{messages[0]['content']}\n\n{prompt}"}, *messages[1:]]
    return [{"role": "system", "content": prompt}, *messages]


def prepare(body: dict[str, Any]) -> tuple[dict[str, Any], ToolPlan | None]:
    """Rewrite an OpenAI chat body for Lamina's tool format; the plan says how to read the answer."""
    body, plan = read_plan(body)
    messages = render_messages(body.get("messages") or [])
    if plan is not None:
        messages = with_system(messages, _system_prompt(plan))
        if plan.mode == "required":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "tool_calls", "schema": calls_schema(plan)},
            }
    body["messages"] = messages
    return body, plan


def prepare_lamina(body: dict[str, Any]) -> Prepared:
    """``prepare`` as a Prepared: a required call is schema-constrained, an auto answer parsed leniently."""
    body, plan = prepare(body)
    return Prepared(body, plan, constrained=plan is not None and plan.mode == "required")


# -- the answer side --------------------------------------------------------------------------------


def _loads(text: str) -> Any:
    """JSON from text that may carry junk after the value (small models ramble)."""
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        raise ValueError("no JSON value")
    value, _end = json.JSONDecoder().raw_decode(text[min(starts) :])
    return value


def _as_calls(value: Any, plan: ToolPlan) -> list[dict[str, Any]] | None:
    items = value if isinstance(value, list) else [value]
    calls = []
    for item in items:
        if not isinstance(item, dict):
            return None
        if "function" in item and isinstance(item["function"], dict):  # OpenAI-shaped
            item = item["function"]
        name = item.get("name")
        args = item.get("arguments", item.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                return None
        if name not in plan.names or not isinstance(args, dict):
            return None
        calls.append(openai_call(name, args))
    return calls or None


def parse_forced(text: str, plan: ToolPlan) -> list[dict[str, Any]] | None:
    """The calls in a schema-constrained answer; of an answer cut short (max_tokens), the whole calls."""
    try:
        return _as_calls(_loads(text), plan)
    except ValueError:
        pass
    start = text.find("[")
    if start < 0:
        return None
    decoder = json.JSONDecoder()
    items: list[Any] = []
    pos = start + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        try:
            item, pos = decoder.raw_decode(text, pos)
        except ValueError:
            break
        items.append(item)
    return _as_calls(items, plan) if items else None


def parse_answer(text: str, plan: ToolPlan) -> tuple[str, list[dict[str, Any]]]:
    """Split a free answer into (text, calls): tagged calls, fenced JSON or a bare JSON call."""
    calls: list[dict[str, Any]] = []
    rest: list[str] = []
    pos = 0
    while True:
        start = text.find(OPEN, pos)
        if start < 0:
            rest.append(text[pos:])
            break
        rest.append(text[pos:start])
        end = text.find(CLOSE, start)
        inner = text[start + len(OPEN) : end if end >= 0 else len(text)]
        found = None
        try:
            found = _as_calls(_loads(inner), plan)
        except ValueError:
            pass
        if found:
            calls.extend(found)
        else:
            rest.append(text[start : end + len(CLOSE) if end >= 0 else len(text)])
        if end < 0:
            break
        pos = end + len(CLOSE)
    content = "".join(rest)
    if not calls:
        for candidate in [m.group(1) for m in _FENCED.finditer(content)] + [content]:
            try:
                found = _as_calls(_loads(candidate), plan)
            except ValueError:
                continue
            if found:
                calls = found
                content = _FENCED.sub("", content) if candidate is not content else ""
                break
    if calls and not plan.parallel:
        calls = calls[:1]
    return content.strip() if calls else content, calls


class StreamSplitter:
    """Streamed text in, text and whole tool calls out: holds back only what may start a tag."""

    def __init__(self, plan: ToolPlan) -> None:
        self.plan = plan
        self.buffer = ""
        self.capturing = False
        self.calls = 0

    def feed(self, text: str) -> list[tuple[str, Any]]:
        self.buffer += text
        out: list[tuple[str, Any]] = []
        while True:
            if self.capturing:
                end = self.buffer.find(CLOSE)
                if end < 0:
                    return out
                out.extend(self._emit_call(self.buffer[:end], self.buffer[: end + len(CLOSE)]))
                self.buffer = self.buffer[end + len(CLOSE) :]
                self.capturing = False
                continue
            start = self.buffer.find(OPEN)
            if start >= 0:
                if start:
                    out.append(("text", self.buffer[:start]))
                self.buffer = self.buffer[start + len(OPEN) :]
                self.capturing = True
                continue
            keep = _partial_suffix(self.buffer, OPEN)
            emit, self.buffer = self.buffer[: len(self.buffer) - keep], self.buffer[len(self.buffer) - keep :]
            if emit:
                out.append(("text", emit))
            return out

    def finish(self) -> list[tuple[str, Any]]:
        rest, self.buffer = self.buffer, ""
        if self.capturing:  # a model that stops before closing the tag
            self.capturing = False
            return self._emit_call(rest, OPEN + rest)
        return [("text", rest)] if rest else []

    def _emit_call(self, inner: str, raw: str) -> list[tuple[str, Any]]:
        try:
            found = _as_calls(_loads(inner), self.plan)
        except ValueError:
            found = None
        if not found:
            return [("text", raw)]
        if not self.plan.parallel:
            found = found[: max(0, 1 - self.calls)]
        self.calls += len(found)
        return [("call", call) for call in found]


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(text), len(tag) - 1), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class EchoFilter:
    """Streamed text in, the same text without the given tags out: holds back only what may start one."""

    def __init__(self, tags: tuple[str, ...]) -> None:
        self.tags = tags
        self.buffer = ""

    def feed(self, text: str) -> str:
        self.buffer += text
        for tag in self.tags:
            self.buffer = self.buffer.replace(tag, "")
        keep = max(_partial_suffix(self.buffer, tag) for tag in self.tags)
        out, self.buffer = self.buffer[: len(self.buffer) - keep], self.buffer[len(self.buffer) - keep :]
        return out

    def finish(self) -> str:
        rest, self.buffer = self.buffer, ""
        return rest

    def whole(self, text: str) -> str:
        """A whole answer filtered, without the blank lines the tags leave at its ends."""
        return (self.feed(text) + self.finish()).strip()
