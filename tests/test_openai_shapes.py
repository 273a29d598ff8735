"""The shape checks on what OpenAI-compatible upstreams answer (lamina.providers.openai_shapes).

The end-to-end cases are in tests/e2e/test_upstream_faults.py; these pin down which real answer
shapes pass (tool calls with null content, usage-only stream chunks, base64 embeddings) and what
the 502 says for each kind of garbage.
"""

from __future__ import annotations

from typing import Any

import pytest

from lamina.errors import UpstreamError
from lamina.providers import openai_shapes as shapes

TOOL_CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
VALID: list[tuple[Any, Any]] = [
    (shapes.check_chat_completion, {"object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}),
    (shapes.check_chat_completion, {"choices": [
        {"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
         "finish_reason": "tool_calls"}]}),
    (shapes.check_completion, {"object": "text_completion", "choices": [
        {"index": 0, "text": "", "logprobs": None, "finish_reason": "length"}]}),
    (shapes.check_chat_chunk, {"choices": [{"index": 0, "delta": {"content": "t"}, "finish_reason": None}]}),
    (shapes.check_chat_chunk, {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}),
    (shapes.check_chat_chunk, {"usage": {"prompt_tokens": 1, "completion_tokens": 2}}),
    (shapes.check_completion_chunk, {"choices": [{"index": 0, "text": "t", "finish_reason": None}]}),
    (shapes.check_embeddings, {"object": "list", "data": [{"index": 0, "embedding": [0.1, 0.2]}]}),
    (shapes.check_embeddings, {"object": "list", "data": [{"index": 0, "embedding": "AAAAAA=="}]}),
]  # fmt: skip


@pytest.mark.parametrize(("check", "doc"), VALID)
def test_real_answer_shapes_pass_unchanged(check: Any, doc: Any) -> None:
    assert check(doc, "up") is doc


GARBAGE = {"foo": "bar", "choices": "nope"}
INVALID: list[tuple[Any, Any, str]] = [
    (shapes.check_chat_completion, GARBAGE, "chat completion is not OpenAI-shaped: 'choices' is str 'nope'"),
    (shapes.check_completion, GARBAGE, "'choices' is str 'nope', expected a list"),
    (shapes.check_chat_chunk, GARBAGE, "chat completion chunk is not OpenAI-shaped: 'choices' is str 'nope'"),
    (shapes.check_completion_chunk, GARBAGE, "'choices' is str 'nope'"),
    (shapes.check_chat_completion, {"foo": "bar"}, "'choices' is missing, expected a list"),
    (shapes.check_chat_completion, {"choices": []}, "'choices' is empty"),
    (shapes.check_chat_completion, {"choices": ["x"]}, "choices[0] is str 'x', expected an object"),
    (shapes.check_chat_completion, {"choices": [{"text": "hi"}]}, "choices[0].message is missing"),
    (shapes.check_completion, {"choices": [{"message": {}}]}, "choices[0].text is missing"),
    (shapes.check_chat_chunk, {"choices": [{"delta": "t"}]}, "choices[0].delta is str 't'"),
    (shapes.check_completion_chunk, {"choices": [{"text": 5}]}, "choices[0].text is int 5"),
    (shapes.check_chat_completion, ["a list"], "expected a JSON object, got list"),
    (shapes.check_embeddings, {"data": "nope"}, "'data' is str 'nope', expected a list"),
    (shapes.check_embeddings, {"data": [{"embedding": None}]}, "data[0].embedding is missing"),
    (shapes.check_embeddings, {"data": [[0.1]]}, "data[0].embedding is missing"),
]  # fmt: skip


@pytest.mark.parametrize(("check", "doc", "message"), INVALID)
def test_garbage_is_a_502_naming_the_provider_and_the_problem(check: Any, doc: Any, message: str) -> None:
    with pytest.raises(UpstreamError) as err:
        check(doc, "up")
    assert err.value.status == 502 and err.value.provider_id == "up"
    assert err.value.message.startswith("provider 'up': the upstream's ")
    assert message in err.value.message and "it sent " in err.value.message
