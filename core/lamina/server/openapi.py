"""The OpenAPI document, generated from the same route declarations the server serves."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from lamina import __version__
from lamina.api_table import SERVER_PROTOCOLS
from lamina.apis.webmethod import RouteDecl, routes_of

REF = "#/components/schemas/{model}"
# APIs the server answers itself, without a provider: no upstream errors.
_SERVER_ONLY = {protocol.__name__ for protocol in SERVER_PROTOCOLS}


def build_openapi(apis: list[tuple[type, Any, list[str]]]) -> dict[str, Any]:
    decls: list[tuple[str, RouteDecl]] = []
    for protocol, _impl, _types in apis:
        tag = protocol.__name__
        decls.extend((tag, d) for d in routes_of(protocol))
    models: set[type[BaseModel]] = set()
    for _tag, d in decls:
        for m in (d.request, d.response, d.stream_item):
            if m is not None:
                models.add(m)
    ordered = sorted(models, key=lambda m: (m.__module__, m.__name__))
    keys, schema = models_json_schema([(m, "validation") for m in ordered], ref_template=REF)
    components = schema.get("$defs", {})

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return keys[(model, "validation")]

    paths: dict[str, Any] = {}
    for tag, d in decls:
        path_params = d.path_params()
        for path in d.paths:
            op: dict[str, Any] = {
                "operationId": d.name if path == d.path else f"{d.name}_{_slug(path)}",
                "summary": d.summary,
                "tags": [tag],
                "parameters": [],
            }
            fields = d.request.model_fields if d.request is not None else {}
            for p in path_params:
                schema = _param_schema(components, ref(d.request), p) if p in fields else {}
                op["parameters"].append(
                    {"name": p, "in": "path", "required": True, "schema": {"type": "string", **schema}}
                )
            if d.request is not None and d.method not in ("POST", "PUT", "PATCH"):
                for name, field in fields.items():
                    if name in path_params:
                        continue
                    schema = _param_schema(components, ref(d.request), name) or {"type": "string"}
                    param: dict[str, Any] = {"name": name, "in": "query", "required": field.is_required()}
                    if "$ref" in schema:  # an object, sent as name[key]=value (llama-stack-client does)
                        target = components[schema.pop("$ref").rsplit("/", 1)[-1]]
                        schema = {k: v for k, v in target.items() if k not in ("title", "description")}
                        param.update(style="deepObject", explode=True)
                    param.update(schema=schema, description=field.description or "")
                    op["parameters"].append(param)
            elif d.request is not None:
                media = "multipart/form-data" if d.multipart else "application/json"
                op["requestBody"] = {"required": True, "content": {media: {"schema": ref(d.request)}}}
            content: dict[str, Any] = {}
            if d.response is not None:
                content["application/json"] = {"schema": ref(d.response)}
            if d.binary:  # the bytes keep their own type, e.g. a file's content is served as uploaded
                content["*/*"] = {"schema": {"type": "string", "format": "binary"}}
            if d.stream_item is not None:
                content["text/event-stream"] = {"schema": _sse_event(ref(d.stream_item), openai=d.openai)}
            op["responses"] = {
                str(d.status): {"description": "OK", **({"content": content} if content else {})},
                **{str(code): {"$ref": f"#/components/responses/{name}"} for code, name in _errors(tag, d)},
            }
            paths.setdefault(d.openapi_path(path), {})[d.method.lower()] = op
    error_schema = {
        "type": "object",
        "required": ["detail"],
        "properties": {"detail": {"type": "string"}, "error": {"type": "object"}},
    }
    components["Error"] = error_schema
    components["StreamError"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "code": {"type": "integer", "description": "The HTTP status the error would have had."},
                },
            }
        },
        "description": "The last event of a stream that failed after it started (see lamina.server.sse).",
    }
    responses = {
        name: {
            "description": desc,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for name, desc in (
            ("BadRequest", "The request is invalid; `detail` names the field."),
            ("NotFound", "Unknown resource or route."),
            ("Conflict", "The resource is registered differently, or in use by another resource."),
            (
                "PayloadTooLarge",
                "The body is larger than server.max_request_body_bytes, or an upload larger than the "
                "provider's limit; `detail` names the limit.",
            ),
            (
                "RateLimited",
                "A quota of the caller's is spent (server.quota: `error.quota` names it), or a provider is "
                "at its limit or its upstream rate limiting; retry after `Retry-After` seconds when given.",
            ),
            ("NotImplemented", "The provider does not implement this operation."),
            ("UpstreamError", "The provider's upstream failed or answered something unusable."),
            (
                "Unavailable",
                "The server or provider cannot take the request now (queue full, model loading, "
                "shutting down); retry after `Retry-After` seconds when given.",
            ),
            ("UpstreamTimeout", "The provider's upstream did not answer in time."),
        )
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Lamina",
            "version": __version__,
            "description": "Llama Stack and OpenAI compatible LLM application server.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(components.items())), "responses": responses},
    }


_DONE_NOTE = (
    "The last event of a stream that ended normally, as OpenAI sends it; not sent to llama-stack-client "
    "(User-Agent LlamaStackClient/..., or an X-LlamaStack-Client-Version header without an OpenAI SDK's "
    "User-Agent), which cannot parse it. Before it, when the request set stream_options.include_usage, "
    "comes one chunk with `choices: []` and the usage; no other chunk carries usage or lacks a choice."
)


def _sse_event(item: dict[str, Any], *, openai: bool) -> dict[str, Any]:
    """One server-sent event (OpenAPI 3.1: the schema of a text/event-stream describes each event).

    ``data`` is JSON: a stream item, or the error that ended the stream. OpenAI streams end with
    ``data: [DONE]``, except to llama-stack-client, which cannot parse it
    (``lamina.server.sse.ends_with_done`` decides from the request's headers); see ``_DONE_NOTE``.
    """
    json_data = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"anyOf": [item, {"$ref": REF.format(model="StreamError")}]},
    }
    return {
        "type": "object",
        "required": ["data"],
        "properties": {
            "event": {"type": "string"},
            "id": {"type": "string"},
            "retry": {"type": "integer"},
            "data": {"anyOf": [json_data, {"const": "[DONE]", "description": _DONE_NOTE}]}
            if openai
            else json_data,
        },
    }


def _errors(tag: str, d: RouteDecl) -> list[tuple[int, str]]:
    """The error statuses an operation can answer (see lamina.errors and server.middlewares)."""
    out = [(400, "BadRequest"), (404, "NotFound")]
    if d.method in ("POST", "DELETE"):
        out.append((409, "Conflict"))
    if d.method in ("POST", "PUT", "PATCH"):
        out.append((413, "PayloadTooLarge"))
    if tag not in _SERVER_ONLY:
        out += [(429, "RateLimited"), (501, "NotImplemented"), (502, "UpstreamError")]
    out.append((503, "Unavailable"))
    if tag not in _SERVER_ONLY:
        out.append((504, "UpstreamTimeout"))
    return out


def _param_schema(components: dict[str, Any], model_ref: dict[str, Any], name: str) -> dict[str, Any]:
    """The JSON schema of a request field sent as a path or query parameter (type, bounds, enum).

    A parameter is absent rather than null, so ``X | None`` is declared as ``X``, without its default.
    """
    model = components[model_ref["$ref"].rsplit("/", 1)[-1]]
    schema = {k: v for k, v in model["properties"][name].items() if k not in ("title", "description")}
    variants = [v for v in schema.pop("anyOf", []) if v != {"type": "null"}]
    if len(variants) == 1:
        schema.update(variants[0])
    elif variants:
        schema["anyOf"] = variants
    if schema.get("default", 0) is None:
        del schema["default"]
    return schema


def _slug(path: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in path).strip("_")
