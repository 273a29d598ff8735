"""The router call, on the request's span: which API, method and resource each request is about.

Named where every API request passes (the route dispatch, lamina.server.routes: :meth:`RouteCall.note`)
and put on the request's SERVER span when it ends (lamina.telemetry.http_spans): ``lamina.api`` (the API
of the table: inference, vector_io, ...), ``lamina.method`` (the API method: ``openai_chat_completion``)
and, when the request names one, ``lamina.resource.id`` (the model, vector DB, shield, tool, dataset,
...). The handler only sets a context variable: the attributes are built with the span's others, maybe in
the export worker (lamina.telemetry.derived).

Attributes rather than a span of its own: an API route and its router call are one to one, so a second
span would repeat the first's timing and double what each request costs to record and export (about
15 µs to make and 40 µs to encode for OTLP per span, on this machine). The provider calls the router
makes are the request span's children.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from lamina.apis.webmethod import RouteDecl

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


class RouteCall:
    """What a route's handler tells the request's span about its router call (while telemetry is on)."""

    __slots__ = ("api", "field", "method")

    def __init__(self, decl: RouteDecl, protocol: type | None, path_params: list[str]) -> None:
        self.api = api_of(protocol)
        self.method = decl.name
        self.field = resource_field(decl, path_params)

    def note(self, request: Any) -> None:
        """Name the call (``request``: the parsed request, or None) for the request's span: its end reads
        it (lamina.telemetry.http_spans), so no attribute is set here."""
        field = self.field
        resource = getattr(request, field, None) if field is not None and request is not None else None
        CURRENT.set((self.api, self.method, resource if isinstance(resource, str) else None))


# The router call of the request being served: (api, method, resource id or None), or None. Set by the route's
# handler, read when the request's span ends; reset by the HTTP middleware for each request (requests of one
# keep-alive connection share a context).
CURRENT: ContextVar[tuple[str, str, str | None] | None] = ContextVar("lamina_route_call", default=None)
