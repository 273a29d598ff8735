"""SmolLM2's own tool-call format, for SmolLM2 GGUFs (whose chat template knows nothing of tools).

Hugging Face's SmolLM2-Instruct model card ("Function calling", the format of the APIGen data it
cites) gives the words: a system prompt listing the tools as JSON inside ``<tools>...</tools>``, and
an answer that is only ``<tool_call>[{"name": ..., "arguments": {...}}, ...]</tool_call>``: a list,
so several calls fit in one answer, and the empty list when no call is needed. Earlier calls are
rendered back in those words, tool results as a user turn in ``<tool_response>...</tool_response>``
(as Ollama's SmolLM2 template does).

How an answer is generated:

* until the conversation holds a tool result, under a llama.cpp grammar of exactly that format,
  with each call's arguments held to its tool's schema, so a call always parses;
* ``auto``: the list may be empty (the model declined); a second generation without the tool
  prompt then gives the text answer (``Prepared.fallback``). ``required`` or a named tool: at
  least one call;
* after a tool result (``auto``): free text, parsed leniently, so a model that writes a call again
  still gets it read; the ``<tool_response>`` tags a small model echoes back are dropped.

The 135M and 360M were tuned on smol-smoltalk, which its card says holds no function calling data:
they seldom decline, so ``auto`` calls a tool nearly whenever one is offered (docs/benchmarks.md,
"Tool calling (local model)", measures both sides).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from lamina_llama_cpp import tools
from lamina_llama_cpp.runtime import GGUFInfo

RESPONSE_OPEN = "<tool_response>"
RESPONSE_CLOSE = "</tool_response>"
ECHO_TAGS = (RESPONSE_OPEN, RESPONSE_CLOSE)

# The prompt in Lamina's words, in the card's shape: the task, the tools inside <tools>, then the
# answer format (a <tool_call> list; the empty list when no call is needed).
_PROMPT = (
    "You compose function calls. Given a question and a set of possible functions, make one or more "
    "function/tool calls that achieve its purpose. If no function fits, say so and do not answer; if "
    "the question lacks a parameter a function requires, say so too.\n\n"
    "You have access to the following tools:\n<tools>{tools}</tools>\n\n"
    "Answer in exactly this format and nothing else, with parameters of the right types; when no "
    "function call is needed, make the list empty: '[]'.\n"
    '<tool_call>[\n{{"name": "func_name1", "arguments": {{"argument1": "value1", "argument2": "value2"}}}},\n'
    "... (more calls as needed)\n]</tool_call>"
)


def matches(info: GGUFInfo) -> bool:
    """A GGUF of the SmolLM2 family: by its name, or by the SmolLM pre-tokenizer it declares."""
    names = " ".join(n for n in (info.name, info.basename) if n).lower()
    return "smollm2" in names or info.tokenizer_pre == "smollm"


def system_prompt(functions: list[dict[str, Any]]) -> str:
    """The tool prompt; tools listed as the APIGen data lists them: name, description, parameters."""
    return _PROMPT.format(tools=json.dumps(functions, ensure_ascii=False))


def render_call_list(calls: list[dict[str, Any]]) -> str:
    """OpenAI tool calls as SmolLM2 writes them: one ``<tool_call>`` list."""
    items = []
    for call in calls:
        fn = call.get("function") or {}
        try:
            args = json.loads(fn.get("arguments") or "{}")
        except json.JSONDecodeError:
            args = fn.get("arguments")
        items.append({"name": fn.get("name"), "arguments": args})
    return tools.OPEN + json.dumps(items, ensure_ascii=False) + tools.CLOSE


def render_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as plain role/content text, tool calls and results in SmolLM2's words."""
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        role = msg.get("role")
        where = f"messages[{i}]"
        if role == "assistant" and msg.get("tool_calls"):
            text = tools._text(msg.get("content"), where)
            calls = render_call_list(msg["tool_calls"])
            out.append({"role": "assistant", "content": f"{text}\n{calls}" if text else calls})
        elif role in ("tool", "function"):
            body = tools._text(msg.get("content"), where)
            out.append({"role": "user", "content": f"{RESPONSE_OPEN}\n{body}\n{RESPONSE_CLOSE}"})
        elif role == "developer":
            out.append({"role": "system", "content": tools._text(msg.get("content"), where)})
        else:
            out.append({"role": role, "content": tools._text(msg.get("content"), where)})
    return out


def grammar(plan: tools.ToolPlan, *, min_items: int, to_grammar: Callable[[str], str] | None = None) -> str:
    """A llama.cpp grammar of one ``<tool_call>[...]</tool_call>`` answer calling the plan's tools.

    ``to_grammar`` is llama.cpp's JSON-schema converter (xllamacpp's by default): its output says
    which grammar engine this build uses, llguidance (Lark) or GBNF, and the wrapper follows it.
    """
    if to_grammar is None:
        import xllamacpp

        to_grammar = xllamacpp.json_schema_to_grammar
    schema = json.dumps(tools.calls_schema(plan, min_items=min_items, closed=True))
    converted = to_grammar(schema)
    open_tag, close_tag = json.dumps(tools.OPEN), json.dumps(tools.CLOSE)
    if converted.lstrip().startswith("%llguidance"):
        return f"%llguidance {{}}\nstart: {open_tag} calls {close_tag}\ncalls: %json {schema}\n"
    rules = re.sub(r"^root\s*::=", "calls ::=", converted, count=1, flags=re.MULTILINE)
    return f"root ::= {open_tag} calls {close_tag}\n{rules}"


def prepare(body: dict[str, Any]) -> tools.Prepared:
    """Rewrite an OpenAI chat body for SmolLM2's format (see the module's docstring)."""
    raw = body.get("messages") or []
    body, plan = tools.read_plan(body)
    body["messages"] = render_messages(raw)
    # Only a conversation that holds a tool result can see its tags echoed: plain chats pass untouched.
    echo = ECHO_TAGS if any(m.get("role") in ("tool", "function") for m in raw) else ()
    if plan is None:
        return tools.Prepared(body, None, echo_tags=echo)
    prompted = {**body, "messages": tools.with_system(body["messages"], system_prompt(plan.functions))}
    after_result = bool(raw) and raw[-1].get("role") in ("tool", "function")
    if plan.mode == "auto" and after_result:
        return tools.Prepared(prompted, plan, echo_tags=echo)
    prompted.pop("response_format", None)  # the grammar is the answer's format
    prompted["grammar"] = grammar(plan, min_items=0 if plan.mode == "auto" else 1)
    return tools.Prepared(
        prompted,
        plan,
        constrained=True,
        fallback=body if plan.mode == "auto" else None,
        echo_tags=echo,
    )
