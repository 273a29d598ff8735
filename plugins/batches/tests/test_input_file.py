"""Checking a batch's input file (lamina_batches.input_file.parse_input): every problem, named by line."""

from __future__ import annotations

import json
from typing import Any

from lamina_batches.input_file import MAX_ERRORS, parse_input


def line(custom_id: str, url: str = "/v1/chat/completions", **body: Any) -> str:
    doc = {"custom_id": custom_id, "method": "POST", "url": url, "body": {"model": "m", **body}}
    return json.dumps(doc)


def test_requests_keep_their_line_numbers_and_blank_lines_count() -> None:
    data = "\n".join([line("a"), "", "   ", line("b", "/v1/openai/v1/chat/completions", n=1)]) + "\n"
    requests, errors = parse_input(data.encode(), "/v1/chat/completions", max_lines=10)
    assert errors == []
    assert [(r.index, r.line, r.custom_id, r.body) for r in requests] == [
        (0, 1, "a", {"model": "m"}),
        (1, 4, "b", {"model": "m", "n": 1}),
    ]


def test_every_problem_of_every_line_is_reported() -> None:
    data = "\n".join(
        [
            "[1, 2]",
            json.dumps({"custom_id": 7, "method": "POST", "url": "/v1/embeddings", "body": "x"}),
            json.dumps({"custom_id": "a", "method": "PUT", "url": "/v1/x", "body": {"model": ""}}),
        ]
    )
    requests, errors = parse_input(data.encode(), "/v1/embeddings", max_lines=10)
    assert requests == []
    assert [(e.line, e.code, e.param) for e in errors] == [
        (1, "invalid_request", None),
        (2, "invalid_request", "custom_id"),
        (2, "invalid_request", "body"),
        (3, "invalid_request", "method"),
        (3, "invalid_url", "url"),
        (3, "invalid_request", "body.model"),
    ]
    assert errors[0].message == "line 1 is a JSON list, not an object"


def test_file_level_problems_name_the_input_file() -> None:
    for data, code in ((b"\n\n", "empty_file"), (b"\xff\xfe", "invalid_file")):
        requests, errors = parse_input(data, "/v1/completions", max_lines=10)
        assert requests == [] and [(e.code, e.param, e.line) for e in errors] == [
            (code, "input_file_id", None)
        ]
    data = "\n".join(line(f"r{i}") for i in range(4)).encode()
    _, errors = parse_input(data, "/v1/chat/completions", max_lines=3)
    assert [e.code for e in errors] == ["too_many_lines"]
    assert "holds 4 requests; a batch takes at most 3" in errors[0].message


def test_the_error_list_is_bounded() -> None:
    data = "\n".join("nope" for _ in range(MAX_ERRORS + 5)).encode()
    _, errors = parse_input(data, "/v1/chat/completions", max_lines=100_000)
    assert len(errors) == MAX_ERRORS + 1
    assert (errors[-1].code, errors[-1].message) == ("too_many_errors", "5 more errors were left out")
