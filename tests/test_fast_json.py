"""lamina.fast_json.dumps: the same JSON values as json.dumps (floats read back exactly), faster."""

from __future__ import annotations

import json
import random
import struct

import numpy as np
import pytest

from lamina import fast_json
from lamina.server.routes import json_response


def _floats() -> list[float]:
    rng = random.Random(20261206)
    values = [rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30) for _ in range(20_000)]
    values += [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(20_000)]
    values += np.random.default_rng(7).standard_normal(20_000).astype(np.float32).tolist()
    values += [0.0, -0.0, 5e-324, 1.7976931348623157e308, 1e-05, 1.5e-07, 1e16]
    return [v for v in values if v == v and abs(v) != float("inf")]


def test_every_float_reads_back_exactly() -> None:
    values = _floats()
    assert json.loads(fast_json.dumps(values)) == values


@pytest.mark.parametrize(
    "doc",
    [
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "m",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11},
        },
        {"text": 'héllo ✓ \u2028 "quoted" \\ back\nslash \x00', "emoji": "🦙"},
        {"nested": [[1, 2.5, None, True, False], {"k": []}, (3, 4)], "big": 123456789012345678901234567890},
        {"not finite": [float("nan"), float("inf"), float("-inf")]},
        {"1": "int keys", "unicode key é": 1},
    ],
)
def test_the_same_bytes_as_json_dumps_outside_float_spelling(doc: dict) -> None:
    assert fast_json.dumps(doc) == json.dumps(doc, separators=(",", ":")).encode()


def test_what_pydantic_refuses_falls_back_to_json_dumps() -> None:
    assert fast_json.dumps({"a": "\ud800"}) == b'{"a":"\\ud800"}'  # a lone surrogate
    with pytest.raises(TypeError):
        fast_json.dumps({"a": object()})


def test_a_dict_answer_is_sent_with_it() -> None:
    vector = np.random.default_rng(1).standard_normal(384).astype(np.float32).tolist()
    doc = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": vector}]}
    response = json_response(doc)
    assert response.content_type == "application/json"
    assert response.body == fast_json.dumps(doc)
    assert json.loads(response.body) == doc
