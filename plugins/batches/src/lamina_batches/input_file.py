"""Reading a batch's input file: one request per JSONL line, checked before any line is sent.

A line is ``{"custom_id": str, "method": "POST", "url": <the batch's endpoint>, "body": {...,
"model": str}}``. Every problem of every line becomes one OpenAI ``BatchError`` (``code``, ``message``,
``param``, ``line`` counted from 1, blank lines counted but skipped), so a user fixes the file in one
go; a file with any problem fails the batch before a request is sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lamina.apis.batches import BatchError, canonical_endpoint

MAX_ERRORS = 1000  # errors reported for one file; past it one more entry says how many were left out


@dataclass(frozen=True)
class LineRequest:
    index: int  # position among the file's requests, from 0: the key its result is saved under
    line: int  # the line of the file, from 1
    custom_id: str
    body: dict[str, Any]


def parse_input(data: bytes, endpoint: str, *, max_lines: int) -> tuple[list[LineRequest], list[BatchError]]:
    """The requests of a JSONL file for a batch on ``endpoint``, and every problem found in it."""
    want = canonical_endpoint(endpoint)
    requests: list[LineRequest] = []
    errors: list[BatchError] = []
    seen: dict[str, int] = {}  # custom_id -> the line that used it first
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = (
            f"the input file is not UTF-8 text (byte {exc.start} cannot be decoded); save it as UTF-8 JSONL"
        )
        return [], [BatchError(code="invalid_file", message=message, param="input_file_id")]
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        doc, problems = _check_line(raw, number, want, endpoint, seen)
        if problems:
            errors.extend(problems)
            continue
        requests.append(LineRequest(len(requests), number, doc["custom_id"], doc["body"]))
    if not requests and not errors:
        errors.append(
            BatchError(
                code="empty_file",
                message="the input file holds no request lines; write one JSON request per line",
                param="input_file_id",
            )
        )
    total = len(requests) + len({e.line for e in errors if e.line is not None})
    if total > max_lines:
        errors.insert(
            0,
            BatchError(
                code="too_many_lines",
                message=f"the input file holds {total} requests; a batch takes at most {max_lines}: split it "
                "into several batches",
                param="input_file_id",
            ),
        )
    if len(errors) > MAX_ERRORS:
        left = len(errors) - MAX_ERRORS
        errors = errors[:MAX_ERRORS]
        errors.append(BatchError(code="too_many_errors", message=f"{left} more errors were left out"))
    return requests, errors


def _check_line(
    raw: str, number: int, want: str | None, endpoint: str, seen: dict[str, int]
) -> tuple[Any, list[BatchError]]:
    def error(code: str, message: str, param: str | None = None) -> BatchError:
        return BatchError(code=code, message=message, param=param, line=number)

    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        reason = getattr(exc, "msg", "too deeply nested")
        return None, [
            error(
                "invalid_json_line",
                f"line {number} is not valid JSON ({reason}); write one JSON object per line",
            )
        ]
    if not isinstance(doc, dict):
        return doc, [error("invalid_request", f"line {number} is a JSON {type(doc).__name__}, not an object")]
    problems: list[BatchError] = []
    for field, kind, label in (
        ("custom_id", str, "a string"),
        ("method", str, "a string"),
        ("url", str, "a string"),
        ("body", dict, "an object"),
    ):
        if field not in doc:
            problems.append(error("missing_required_parameter", f"line {number} has no {field!r}", field))
        elif not isinstance(doc[field], kind):
            problems.append(error("invalid_request", f"line {number}: {field!r} must be {label}", field))
    custom_id = doc.get("custom_id")
    if isinstance(custom_id, str):
        if custom_id in seen:
            problems.append(
                error(
                    "duplicate_custom_id",
                    f"line {number}: custom_id {custom_id!r} is also the custom_id of line "
                    f"{seen[custom_id]}; give every line its own",
                    "custom_id",
                )
            )
        else:
            seen[custom_id] = number
    method = doc.get("method")
    if isinstance(method, str) and method.upper() != "POST":
        problems.append(
            error("invalid_request", f"line {number}: method must be POST, not {method!r}", "method")
        )
    url = doc.get("url")
    if isinstance(url, str) and canonical_endpoint(url) != want:
        problems.append(
            error(
                "invalid_url",
                f"line {number}: url {url!r} is not the batch's endpoint {endpoint!r}; every line of a batch "
                "goes to its endpoint",
                "url",
            )
        )
    body = doc.get("body")
    if isinstance(body, dict):
        model = body.get("model")
        if model is None:
            problems.append(
                error("missing_required_parameter", f"line {number}: body has no 'model'", "body.model")
            )
        elif not isinstance(model, str) or not model:
            problems.append(
                error("invalid_request", f"line {number}: body.model must be a model id", "body.model")
            )
        if body.get("stream"):
            problems.append(
                error(
                    "streaming_unsupported",
                    f"line {number}: body.stream is true; a batch line cannot stream: remove it",
                    "body.stream",
                )
            )
    return doc, problems
