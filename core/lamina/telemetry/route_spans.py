"""The router call's span: one per API request, opened where every API passes (the route dispatch,
lamina.server.routes), a child of the request's SERVER span and the parent of the provider calls.

Named ``{Protocol}.{method}`` (``Inference.openai_chat_completion``, ``VectorIO.query_chunks``) with
``lamina.api`` (the API of the table: inference, vector_io, ...), ``lamina.method`` and, when the
request names one, ``lamina.resource.id`` (the model, vector DB, shield, tool, dataset, ...). A
method that answers with a stream keeps its span open until the stream ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from lamina.apis.webmethod import RouteDecl
from lamina.telemetry import spans

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
    """``method`` (a router's, called with the parsed request or nothing) inside its span."""
    name = f"{protocol.__name__ if protocol else 'Api'}.{decl.name}"
    api = api_of(protocol)
    field = resource_field(decl, path_params)

    async def call(*args: Any) -> Any:
        attributes: dict[str, Any] = {"lamina.api": api, "lamina.method": decl.name}
        if field is not None and args:
            value = getattr(args[0], field, None)
            if isinstance(value, str):
                attributes["lamina.resource.id"] = value
        span = spans.start_span(name, attributes)
        if span is None:  # telemetry went off since the handler looked
            return await method(*args)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            result = await method(*args)
        except BaseException as exc:
            spans.end(span, exc)
            raise
        finally:
            otel_context.detach(token)
        if hasattr(result, "__anext__"):
            return spans.traced_iterator(span, result)
        span.end()
        return result

    call.__name__ = decl.name
    return call
