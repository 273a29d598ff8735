"""Cheap shape checks of an OpenAI-compatible upstream's answers, before they are passed on.

The OpenAI routes relay the upstream's JSON as it came (a full pydantic parse of every answer and
stream chunk would cost the gateway much of its throughput). A malformed answer such as
``{"foo": "bar", "choices": "nope"}`` must still not reach a client as a 200 that its SDK then
chokes on: these checks look only at what clients index without looking (the ``choices`` list, each
choice's ``message``/``delta``/``text``, the embeddings ``data`` list) and raise an ``UpstreamError``
(502) naming the provider and what was wrong. Each costs a few dict lookups per choice.
"""

from __future__ import annotations

from typing import Any, NoReturn

from lamina.errors import UpstreamError


def _kind(value: Any) -> str:
    if value is None:
        return "missing"
    shown = repr(value)
    return f"{type(value).__name__} {shown[:40]}{'...' if len(shown) > 40 else ''}"


def _fail(provider_id: str, what: str, problem: str, doc: Any) -> NoReturn:
    shown = repr(doc)
    shown = shown if len(shown) <= 200 else shown[:200] + "..."
    raise UpstreamError(
        provider_id, f"the upstream's {what} is not OpenAI-shaped: {problem}; it sent {shown}"
    )


def _choices(doc: Any, provider_id: str, what: str, *, chunk: bool) -> list[dict[str, Any]]:
    if not isinstance(doc, dict):
        _fail(provider_id, what, f"expected a JSON object, got {type(doc).__name__}", doc)
    choices = doc.get("choices")
    if chunk and choices is None and isinstance(doc.get("usage"), dict):
        return []  # a usage-only chunk (stream_options.include_usage) may leave choices out
    if not isinstance(choices, list):
        _fail(provider_id, what, f"'choices' is {_kind(choices)}, expected a list", doc)
    if not choices and not chunk:
        _fail(provider_id, what, "'choices' is empty", doc)
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict):
            _fail(provider_id, what, f"choices[{i}] is {_kind(choice)}, expected an object", doc)
    return choices


def check_chat_completion(doc: Any, provider_id: str) -> dict[str, Any]:
    for i, choice in enumerate(_choices(doc, provider_id, "chat completion", chunk=False)):
        if not isinstance(choice.get("message"), dict):
            _fail(
                provider_id, "chat completion", f"choices[{i}].message is {_kind(choice.get('message'))}", doc
            )
    return doc


def check_completion(doc: Any, provider_id: str) -> dict[str, Any]:
    for i, choice in enumerate(_choices(doc, provider_id, "completion", chunk=False)):
        if not isinstance(choice.get("text"), str):
            _fail(provider_id, "completion", f"choices[{i}].text is {_kind(choice.get('text'))}", doc)
    return doc


def check_chat_chunk(doc: Any, provider_id: str) -> dict[str, Any]:
    for i, choice in enumerate(_choices(doc, provider_id, "chat completion chunk", chunk=True)):
        delta = choice.get("delta")
        if delta is not None and not isinstance(delta, dict):
            _fail(provider_id, "chat completion chunk", f"choices[{i}].delta is {_kind(delta)}", doc)
    return doc


def check_completion_chunk(doc: Any, provider_id: str) -> dict[str, Any]:
    for i, choice in enumerate(_choices(doc, provider_id, "completion chunk", chunk=True)):
        text = choice.get("text")
        if text is not None and not isinstance(text, str):
            _fail(provider_id, "completion chunk", f"choices[{i}].text is {_kind(text)}", doc)
    return doc


def check_embeddings(doc: Any, provider_id: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        _fail(provider_id, "embeddings answer", f"expected a JSON object, got {type(doc).__name__}", doc)
    data = doc.get("data")
    if not isinstance(data, list):
        _fail(provider_id, "embeddings answer", f"'data' is {_kind(data)}, expected a list", doc)
    for i, item in enumerate(data):
        vector = item.get("embedding") if isinstance(item, dict) else None
        if not isinstance(vector, list | str):  # a str is base64 (encoding_format "base64")
            _fail(provider_id, "embeddings answer", f"data[{i}].embedding is {_kind(vector)}", doc)
    return doc
