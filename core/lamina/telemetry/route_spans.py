"""The router call, on the request's span: which API, method and resource each request is about.

Set where every API request passes (the route dispatch, lamina.server.routes) on the request's SERVER
span (lamina.telemetry.http_spans): ``lamina.api`` (the API of the table: inference, vector_io, ...),
``lamina.method`` (the API method: ``openai_chat_completion``) and, when the request names one,
``lamina.resource.id`` (the model, vector DB, shield, tool, dataset, ...).

Attributes rather than a span of its own: an API route and its router call are one to one, so a second
span would repeat the first's timing and double what each request costs to record and export (about
15 µs to make and 40 µs to encode for OTLP per span, on this machine). The provider calls the router
makes are the request span's children.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from lamina.apis.webmethod import RouteDecl
from lamina.telemetry.context import current_span

# Request fields that name the resource a call is about, most specific first: the first one the
# route's path or request model has is its lamina.resource.id.
RESOURCE_FIELDS = (
    "model_id",
    "model",
    "shield_id",
    "vector_db_id",
    "vector_store_id",
    "toolgroup_id",
    "tool_group_id",
    "tool_name",
    "dataset_id",
    "benchmark_id",
    "scoring_fn_id",
    "agent_id",
    "response_id",
    "file_id",
    "job_id",
    "batch_id",
    "completion_id",
    "identifier",
)
_apis: dict[type, str] | None = None


def api_of(protocol: type | None) -> str:
    """The API (``lamina.specs.Api`` value) serving ``protocol``, per lamina.api_table."""
    global _apis
    if protocol is None:
        return "unknown"
    if _apis is None:
        from lamina import api_table

        _apis = {p: e.api.value for e in api_table.API_TABLE for p in (*e.protocols, *e.always_served)}
    return _apis.get(protocol) or protocol.__name__.lower()


def resource_field(decl: RouteDecl, path_params: list[str]) -> str | None:
    names = set(path_params) | set(decl.request.model_fields if decl.request is not None else ())
    return next((name for name in RESOURCE_FIELDS if name in names), None)


def traced(
    decl: RouteDecl, protocol: type | None, path_params: list[str], method: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    """``method`` (a router's, called with the parsed request or nothing), naming itself on the
    request's span first."""
    named = {"lamina.api": api_of(protocol), "lamina.method": decl.name}  # fixed per route: built once
    field = resource_field(decl, path_params)

    async def call(*args: Any) -> Any:
        span = current_span()
        if span.is_recording():
            span.set_attributes(named)
            if field is not None and args:
                value = getattr(args[0], field, None)
                if isinstance(value, str):
                    span.set_attribute("lamina.resource.id", value)
        return await method(*args)

    call.__name__ = decl.name
    return call
