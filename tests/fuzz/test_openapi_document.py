"""/openapi.json types every parameter and declares the errors the server really answers."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import lamina.apis
from lamina.apis.webmethod import routes_of
from lamina.server.openapi import build_openapi


def _document() -> dict[str, Any]:
    apis = []
    for info in pkgutil.iter_modules(lamina.apis.__path__):
        module = importlib.import_module(f"lamina.apis.{info.name}")
        for obj in vars(module).values():
            if inspect.isclass(obj) and obj.__module__ == module.__name__ and routes_of(obj):
                apis.append((obj, None, []))
    return build_openapi(apis)


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


def test_every_parameter_has_a_typed_schema() -> None:
    for method, path, op in _operations(_document()):
        for param in op["parameters"]:
            schema = param["schema"]
            assert "type" in schema or "enum" in schema or "anyOf" in schema, (method, path, param)
            assert {"type": "null"} not in schema.get("anyOf", []), (method, path, param)
            if param["in"] == "path":
                assert schema["type"] == "string" and schema.get("minLength") == 1, (method, path, param)


def test_query_parameters_carry_the_request_models_bounds_and_enums() -> None:
    ops = {(m, p): op for m, p, op in _operations(_document())}
    params = {p["name"]: p for p in ops[("GET", "/v1/openai/v1/vector_stores")]["parameters"]}
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
    assert params["order"]["schema"]["enum"] == ["asc", "desc"]
    assert params["after"]["schema"] == {"type": "string"}
    files = {p["name"]: p for p in ops[("GET", "/v1/openai/v1/files")]["parameters"]}
    assert "assistants" in files["purpose"]["schema"]["enum"]
    assert files["purpose"]["required"] is False


def test_declared_errors_match_what_the_server_answers() -> None:
    doc = _document()
    ops = {(m, p): op for m, p, op in _operations(doc)}
    for method, path, op in _operations(doc):
        codes = set(op["responses"])
        assert {"400", "404", "503"} <= codes, (method, path)
        if method in ("POST", "PUT", "PATCH"):
            assert "413" in codes, (method, path)  # server.max_request_body_bytes
        for ref in op["responses"].values():
            if "$ref" in ref:
                assert ref["$ref"].rsplit("/", 1)[-1] in doc["components"]["responses"]
    chat = set(ops[("POST", "/v1/openai/v1/chat/completions")]["responses"])
    assert {"429", "502", "503", "504"} <= chat  # upstream rate limit, failure, queue full, timeout
    assert "409" in ops[("POST", "/v1/models")]["responses"]  # registered differently
    assert not {"409", "502", "504"} & set(ops[("GET", "/v1/health")]["responses"])


def test_streams_declare_each_event_with_its_json_data() -> None:
    """OpenAPI 3.1 has the text/event-stream schema describe one event; ``data`` holds the JSON."""
    doc = _document()
    ops = {(m, p): op for m, p, op in _operations(doc)}
    sse = "text/event-stream"
    native = ops[("POST", "/v1/inference/chat-completion")]["responses"]["200"]["content"][sse]
    data = native["schema"]["properties"]["data"]
    assert data["contentMediaType"] == "application/json"
    refs = [s["$ref"] for s in data["contentSchema"]["anyOf"]]
    assert refs == [
        "#/components/schemas/ChatCompletionResponseStreamChunk",
        "#/components/schemas/StreamError",
    ]
    openai = ops[("POST", "/v1/openai/v1/chat/completions")]["responses"]["200"]["content"][sse]
    done = [s for s in openai["schema"]["properties"]["data"]["anyOf"] if s.get("const") == "[DONE]"]
    assert len(done) == 1 and "llama-stack-client" in done[0]["description"]  # who does not get it
    assert "StreamError" in doc["components"]["schemas"]
