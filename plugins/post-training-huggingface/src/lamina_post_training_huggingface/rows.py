"""Dataset rows to training examples: prompts (as chat messages) and answers, checked with clear errors.

Formats (Llama Stack's, plus the ``post-training/messages`` purpose's ``messages`` column):

* ``instruct``: ``input_query`` (text) or ``chat_completion_input`` (a list of messages, or its JSON),
  and ``expected_answer``;
* ``dialog``: ``messages`` or ``dialog`` (a list of messages, or its JSON) ending with the assistant's
  answer: the messages before it are the prompt;
* preference (DPO): ``prompt`` (text or messages), ``chosen`` and ``rejected`` (text, or messages whose
  last is the assistant's answer).

A row that fits none is a ``RowError`` naming the row and the columns it lacks, raised before training.
"""

from __future__ import annotations

import json
from typing import Any


class RowError(ValueError):
    pass


def _messages(value: Any, where: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise RowError(f"{where} must be a non-empty list of chat messages ({{role, content}})")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise RowError(f"{where}[{i}] must be a chat message with role and content")
        out.append({"role": str(message["role"]), "content": _text(message["content"])})
    return out


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text", ""))
    if isinstance(content, list):
        return "".join(_text(item) for item in content)
    return "" if content is None else str(content)


def sft_example(row: dict[str, Any], data_format: str, index: int) -> tuple[list[dict[str, str]], str]:
    """(prompt messages, answer) of one row."""
    where = f"row {index}"
    if data_format == "instruct":
        if "expected_answer" not in row:
            raise RowError(
                f"{where} has no 'expected_answer' column (instruct rows need it); it has {sorted(row)}"
            )
        if "chat_completion_input" in row:
            prompt = _messages(row["chat_completion_input"], f"{where}.chat_completion_input")
        elif "input_query" in row:
            prompt = [{"role": "user", "content": _text(row["input_query"])}]
        else:
            raise RowError(
                f"{where} has neither 'input_query' nor 'chat_completion_input' (instruct rows need one); "
                f"it has {sorted(row)}"
            )
        return prompt, _text(row["expected_answer"])
    column = "messages" if "messages" in row else "dialog" if "dialog" in row else None
    if column is None:
        raise RowError(
            f"{where} has no 'messages' (or 'dialog') column (dialog rows need one); it has {sorted(row)}"
        )
    messages = _messages(row[column], f"{where}.{column}")
    if messages[-1]["role"] != "assistant" or len(messages) < 2:
        raise RowError(
            f"{where}.{column} must end with the assistant's answer after at least one prompt message"
        )
    return messages[:-1], messages[-1]["content"]


def preference_example(row: dict[str, Any], index: int) -> tuple[list[dict[str, str]], str, str]:
    """(prompt messages, chosen answer, rejected answer) of one preference row."""
    where = f"row {index}"
    missing = [c for c in ("prompt", "chosen", "rejected") if c not in row]
    if missing:
        raise RowError(
            f"{where} lacks {', '.join(repr(c) for c in missing)} (preference rows need prompt, chosen and "
            f"rejected); it has {sorted(row)}"
        )
    prompt = _messages(row["prompt"], f"{where}.prompt")

    def answer(column: str) -> str:
        value = row[column]
        if isinstance(value, list):
            return _messages(value, f"{where}.{column}")[-1]["content"]
        if isinstance(value, str) and value.lstrip().startswith("["):
            try:
                return _messages(value, f"{where}.{column}")[-1]["content"]
            except RowError:
                return value
        return _text(value)

    return prompt, answer("chosen"), answer("rejected")


def format_prompt(tokenizer: Any, messages: list[dict[str, str]], chat_template: str) -> str:
    """The prompt text the model answers after: the tokenizer's chat template when it has one, else the
    provider config's ``chat_template`` (``{input}``: the last user message; cut before ``{output}``)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), messages[-1]["content"])
    return chat_template.split("{output}")[0].replace("{input}", user)
