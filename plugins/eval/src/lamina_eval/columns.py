"""Which columns of a row a candidate answers from (Llama Stack 0.2.12's rules, plus ``input_query``).

For a model candidate, in this order:

- ``completion_input`` (JSON content): a text completion of it;
- ``chat_completion_input`` (JSON list of messages, or the list itself): a chat completion of the
  candidate's system message, then the row's system messages, then its user messages (assistant and
  tool messages in the row are dropped, as in Llama Stack: the row asks one question);
- ``input_query`` (text): a chat completion of the system message and one user message.

An agent candidate takes the user messages of ``chat_completion_input``, else ``input_query`` as one
user message. A row with none of these is a ``RowError`` naming the columns it has.
"""

from __future__ import annotations

import json
from typing import Any

INPUT_COLUMNS = ("completion_input", "chat_completion_input", "input_query")


class RowError(ValueError):
    """A row a candidate cannot answer; ``str()`` says why and names the columns."""


def _json(row: dict[str, Any], column: str) -> Any:
    value = row[column]
    if not isinstance(value, str):
        return value  # rows given inline may hold the structure itself
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise RowError(f"column '{column}' is not JSON ({exc.msg} at character {exc.pos})") from None


def _messages(row: dict[str, Any]) -> list[dict[str, Any]]:
    messages = _json(row, "chat_completion_input")
    if isinstance(messages, dict):
        messages = [messages]
    if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m for m in messages):
        raise RowError(
            "column 'chat_completion_input' must be a JSON list of messages like "
            '[{"role": "user", "content": "..."}]'
        )
    return messages


def _missing(row: dict[str, Any]) -> RowError:
    return RowError(
        f"the row has none of the input columns {', '.join(INPUT_COLUMNS)} (it has: "
        f"{', '.join(map(str, row)) or 'none'}); add one of them"
    )


def model_input(row: dict[str, Any], system_message: dict[str, Any] | None) -> tuple[str, Any]:
    """``("completion", content)`` or ``("chat", [message, ...])`` for a model candidate."""
    if "completion_input" in row:
        return "completion", _json(row, "completion_input")
    if "chat_completion_input" in row:
        messages = _messages(row)
        users = [m for m in messages if m["role"] == "user"]
        if not users:
            raise RowError("column 'chat_completion_input' holds no user message to answer")
        systems = [m for m in messages if m["role"] == "system"]
        return "chat", [*([system_message] if system_message else []), *systems, *users]
    if "input_query" in row:
        user = {"role": "user", "content": str(row["input_query"])}
        return "chat", [*([system_message] if system_message else []), user]
    raise _missing(row)


def agent_input(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The user messages of an agent candidate's turn."""
    if "chat_completion_input" in row:
        users = [m for m in _messages(row) if m["role"] == "user"]
        if not users:
            raise RowError("column 'chat_completion_input' holds no user message to answer")
        return users
    if "input_query" in row:
        return [{"role": "user", "content": str(row["input_query"])}]
    raise RowError(
        f"an agent answers 'chat_completion_input' or 'input_query', and the row has neither (it has: "
        f"{', '.join(map(str, row)) or 'none'})"
    )
