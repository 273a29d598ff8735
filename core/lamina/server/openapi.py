"""The OpenAPI document, generated from the same route declarations the server serves."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from lamina import __version__
from lamina.apis.webmethod import RouteDecl, routes_of

REF = "#/components/schemas/{model}"


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
            for p in path_params:
                op["parameters"].append(
                    {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                )
            if d.request is not None and d.method not in ("POST", "PUT", "PATCH"):
                for name, field in d.request.model_fields.items():
                    if name in path_params:
                        continue
                    op["parameters"].append(
                        {
                            "name": name,
                            "in": "query",
                            "required": field.is_required(),
                            "schema": {},
                            "description": field.description or "",
                        }
                    )
            elif d.request is not None:
                media = "multipart/form-data" if d.multipart else "application/json"
                op["requestBody"] = {"required": True, "content": {media: {"schema": ref(d.request)}}}
            content: dict[str, Any] = {}
            if d.response is not None:
                content["application/json"] = {"schema": ref(d.response)}
            if d.binary:
                content["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
            if d.stream_item is not None:
                content["text/event-stream"] = {"schema": ref(d.stream_item)}
            op["responses"] = {
                str(d.status): {"description": "OK", **({"content": content} if content else {})},
                "400": {"$ref": "#/components/responses/BadRequest"},
                "404": {"$ref": "#/components/responses/NotFound"},
                "502": {"$ref": "#/components/responses/UpstreamError"},
            }
            if d.multipart:
                op["responses"]["413"] = {"$ref": "#/components/responses/PayloadTooLarge"}
            paths.setdefault(d.openapi_path(path), {})[d.method.lower()] = op
    error_schema = {
        "type": "object",
        "required": ["detail"],
        "properties": {"detail": {"type": "string"}, "error": {"type": "object"}},
    }
    components["Error"] = error_schema
    responses = {
        name: {
            "description": desc,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for name, desc in (
            ("BadRequest", "The request is invalid; `detail` names the field."),
            ("NotFound", "Unknown resource or route."),
            ("UpstreamError", "The provider's upstream failed (502) or timed out (504)."),
            ("PayloadTooLarge", "The upload is larger than the provider's limit, named in `detail`."),
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


def _slug(path: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in path).strip("_")
