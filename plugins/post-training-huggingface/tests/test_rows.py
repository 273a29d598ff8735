"""Dataset rows to training examples: every accepted layout, and the errors that name row and column."""

from __future__ import annotations

import json

import pytest

from lamina_post_training_huggingface.rows import RowError, format_prompt, preference_example, sft_example

CHAT = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]


def test_instruct_rows_take_input_query_or_chat_completion_input() -> None:
    assert sft_example({"input_query": "Q", "expected_answer": "A"}, "instruct", 0) == (
        [{"role": "user", "content": "Q"}],
        "A",
    )
    row = {"chat_completion_input": json.dumps(CHAT[:1]), "expected_answer": "A", "input_query": "ignored"}
    assert sft_example(row, "instruct", 0) == (CHAT[:1], "A")


def test_dialog_rows_end_with_the_answer() -> None:
    assert sft_example({"messages": CHAT}, "dialog", 0) == (CHAT[:1], "Hello.")
    assert sft_example({"dialog": json.dumps(CHAT)}, "dialog", 0) == (CHAT[:1], "Hello.")
    # Content parts are flattened to their text.
    parts = [
        CHAT[0],
        {"role": "assistant", "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo."}]},
    ]
    assert sft_example({"messages": parts}, "dialog", 0)[1] == "Hello."


@pytest.mark.parametrize(
    ("row", "fmt", "message"),
    [
        ({"input_query": "Q"}, "instruct", "row 3 has no 'expected_answer' column"),
        ({"expected_answer": "A"}, "instruct", "neither 'input_query' nor 'chat_completion_input'"),
        ({"text": "x"}, "dialog", r"row 3 has no 'messages' \(or 'dialog'\) column"),
        ({"messages": CHAT[:1]}, "dialog", "must end with the assistant's answer"),
        ({"messages": [{"role": "user"}]}, "dialog", r"row 3.messages\[0\] must be a chat message"),
    ],
)
def test_bad_rows_name_the_row_and_what_is_missing(row: dict, fmt: str, message: str) -> None:
    with pytest.raises(RowError, match=message):
        sft_example(row, fmt, 3)


def test_preference_rows() -> None:
    assert preference_example({"prompt": "Q", "chosen": "good", "rejected": "bad"}, 0) == (
        [{"role": "user", "content": "Q"}],
        "good",
        "bad",
    )
    row = {"prompt": CHAT[:1], "chosen": CHAT, "rejected": [CHAT[0], {"role": "assistant", "content": "No."}]}
    assert preference_example(row, 0) == (CHAT[:1], "Hello.", "No.")
    with pytest.raises(RowError, match="row 1 lacks 'rejected'"):
        preference_example({"prompt": "Q", "chosen": "good"}, 1)


def test_prompts_use_the_config_template_when_the_tokenizer_has_none() -> None:
    class Plain:
        chat_template = None

    template = "<|user|>\n{input}\n<|assistant|>\n{output}"
    assert format_prompt(Plain(), CHAT[:1], template) == "<|user|>\nHi?\n<|assistant|>\n"
