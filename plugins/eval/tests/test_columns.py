"""The column rules: which columns of a row a model or an agent candidate answers from."""

from __future__ import annotations

import json

import pytest

from lamina_eval.columns import RowError, agent_input, model_input

SYSTEM = {"role": "system", "content": "Answer in one word."}


def test_completion_input_comes_first():
    row = {"completion_input": json.dumps("2+2="), "input_query": "ignored"}
    assert model_input(row, SYSTEM) == ("completion", "2+2=")


def test_chat_completion_input_keeps_system_then_user_messages_and_drops_the_rest():
    messages = [
        {"role": "system", "content": "row system"},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
    ]
    kind, out = model_input({"chat_completion_input": json.dumps(messages), "input_query": "x"}, SYSTEM)
    assert kind == "chat"
    assert out == [SYSTEM, messages[0], messages[1], messages[3]]


def test_chat_completion_input_may_be_the_list_itself():
    kind, out = model_input({"chat_completion_input": [{"role": "user", "content": "hi"}]}, None)
    assert (kind, out) == ("chat", [{"role": "user", "content": "hi"}])


def test_input_query_is_one_user_message_after_the_system_message():
    assert model_input({"input_query": "What is 2+2?"}, SYSTEM) == (
        "chat",
        [SYSTEM, {"role": "user", "content": "What is 2+2?"}],
    )


def test_a_row_without_input_columns_names_the_columns_it_has():
    with pytest.raises(RowError, match=r"none of the input columns .* \(it has: question, answer\)"):
        model_input({"question": "q", "answer": "a"}, None)


def test_chat_completion_input_that_is_not_json_says_where():
    with pytest.raises(RowError, match="column 'chat_completion_input' is not JSON"):
        model_input({"chat_completion_input": "[{'role': 'user'}"}, None)


def test_chat_completion_input_without_a_user_message_is_refused():
    with pytest.raises(RowError, match="no user message"):
        model_input({"chat_completion_input": json.dumps([SYSTEM])}, None)


def test_agent_takes_only_user_messages_else_input_query():
    messages = [SYSTEM, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    assert agent_input({"chat_completion_input": json.dumps(messages)}) == [messages[1]]
    assert agent_input({"input_query": "q2"}) == [{"role": "user", "content": "q2"}]
    with pytest.raises(RowError, match="an agent answers"):
        agent_input({"completion_input": '"x"'})
