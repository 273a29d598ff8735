"""What each route does to which resource: declared beside the route (``@webmethod(access=...)``).

Every served route carries one declaration, so access control has one mechanism for all of them
(``lamina.access.guard``) and a route without one fails the route-enumerating test. The kinds are Llama
Stack's resource types (the ``<type>`` of an ``access_policy`` ``resource: <type>::<id>`` pattern), plus
the ones Lamina adds for what Llama Stack 0.2.12 does not protect yet. A sub-resource is declared on its
parent: an agent's sessions and turns are checked as the agent, a vector store's files, file batches and
search as the vector store (``vector_db``), a dataset's rows as the dataset, a response's input items as
the response, a stored chat completion's messages as the completion.
"""

from __future__ import annotations

from dataclasses import dataclass

from lamina.access.policy import Action

# kind -> what a client calls it (error messages and docs)
KINDS = {
    "model": "model",
    "shield": "shield",
    "vector_db": "vector DB or vector store",
    "file": "file",
    "dataset": "dataset",
    "benchmark": "benchmark",
    "scoring_function": "scoring function",
    "tool_group": "tool group",
    "agent": "agent (with its sessions and turns)",
    "response": "response",
    "chat_completion": "stored chat completion",
    "batch": "batch",
    "job": "job (batch-agents, post-training, SDG, /v1/jobs)",
    "eval_job": "eval job (its id: <benchmark_id>/<job number>)",
    "telemetry": "telemetry (telemetry::traces: every trace and span; telemetry::metrics)",
}


@dataclass(frozen=True)
class Access:
    """One route's access declaration.

    - ``kind`` and ``action`` with ``id_field``: the request field (path, query or body) naming the
      resource acted on (``a/b``: two fields whose values, joined by ``/``, are its id); a denied
      read/update/delete answers as a missing resource (404).
    - ``action`` create: the caller needs create on ``kind::*`` (403 otherwise); the new resource's id
      is read from the answer at ``created_id`` (a dotted path; in a stream, the first item having it)
      and the caller is recorded as its owner.
    - ``listing``: the answer's items (``data``, or the list itself) are filtered to those the caller
      may read, each named by its ``item_id`` field; cursor pages (``after``/``limit``) are refilled.
    - ``uses``: other resources the request names ((kind, field) pairs, a field may hold one id or a
      list, or be a dotted path with ``name[]`` stepping into a list's items:
      ``agent_config.toolgroups[].args.vector_db_ids``): each needs read, as a missing one otherwise.
      Resources the server uses on the caller's behalf (an agent's tool groups, a RAG tool's vector DBs)
      are named here, since the server calls them without a route.
    - ``created_id`` may list alternatives (``id|response.id``: an answer, or a stream's event);
      ``created_from`` names the request field holding the id when the answer has none.
    - ``result_id``: a read checked on the resource its answer names (``get_tool``: its tool group).
    - ``kind`` None: the route touches no owned resource (``reason`` says why).
    """

    kind: str | None
    action: Action | None = None
    id_field: str | None = None
    created_id: str = "id"
    listing: bool = False
    item_id: str = "id"
    uses: tuple[tuple[str, str], ...] = ()
    reason: str = ""
    forget: bool = False  # a delete: the owner record goes with the resource
    created_from: str | None = None  # a create answering no id: the request field naming the new one
    fixed_id: str | None = None  # a resource with one fixed id (telemetry::traces)
    # a denied read answers from the caller's own traces (lamina.request_context.TRACES_OF), not a 404
    own_traces: bool = False
    result_id: str | None = None  # a read whose resource is named in its answer (a tool: its toolgroup_id)
    created_under: str | None = None  # a create whose id is unique within a parent (an eval job's benchmark)
    tool_field: str | None = None  # a request naming a tool (by name): its tool group needs read

    def __post_init__(self) -> None:
        assert self.kind is None or self.kind in KINDS, f"unknown resource kind {self.kind!r}"
        for kind, _ in self.uses:
            assert kind in KINDS, f"unknown resource kind {kind!r}"


def no_resource(reason: str, uses: tuple[tuple[str, str], ...] = ()) -> Access:
    """A route that acts on no owned resource (health, a search of the caller's own traces...)."""
    return Access(None, reason=reason, uses=uses)


def creates(
    kind: str,
    created_id: str = "id",
    uses: tuple[tuple[str, str], ...] = (),
    created_from: str | None = None,
    created_under: str | None = None,
    requested: str | None = None,
) -> Access:
    """``requested``: the request field naming the new resource's id, for a registration: registering an
    id that exists is an update of that resource (its owner stays)."""
    return Access(
        kind,
        Action.create,
        requested,
        created_id=created_id,
        uses=uses,
        created_from=created_from,
        created_under=created_under,
    )


def lists(kind: str, item_id: str = "id") -> Access:
    return Access(kind, Action.read, listing=True, item_id=item_id)


def reads(kind: str, id_field: str, uses: tuple[tuple[str, str], ...] = ()) -> Access:
    return Access(kind, Action.read, id_field, uses=uses)


def updates(kind: str, id_field: str, uses: tuple[tuple[str, str], ...] = ()) -> Access:
    return Access(kind, Action.update, id_field, uses=uses)


def deletes(kind: str, id_field: str, *, forget: bool = True) -> Access:
    return Access(kind, Action.delete, id_field, forget=forget)


def reads_fixed(kind: str, fixed_id: str) -> Access:
    """A read of the one resource ``kind::fixed_id`` (unowned: the policy decides who may read it)."""
    return Access(kind, Action.read, fixed_id=fixed_id)


def reads_traces(uses: tuple[tuple[str, str], ...] = ()) -> Access:
    """A query of the trace store: every trace for a caller that may read ``telemetry::traces`` (the
    server's own resource: a rule must permit it, e.g. for admins); the traces of its own requests for
    any other caller."""
    return Access("telemetry", Action.read, fixed_id="traces", uses=uses, own_traces=True)


def reads_result(kind: str, result_id: str) -> Access:
    return Access(kind, Action.read, result_id=result_id)


def uses(*pairs: tuple[str, str]) -> Access:
    """A computation over resources the request names (a chat completion uses its model): each needs read."""
    return Access(None, uses=pairs, reason="uses the resources it names")


def uses_tool(field: str, uses: tuple[tuple[str, str], ...] = ()) -> Access:
    """A call of the tool ``field`` names (bare or ``<toolgroup_id>/<name>``): its tool group needs read,
    and so does each resource ``uses`` names (its arguments may name some)."""
    return Access(None, tool_field=field, uses=uses, reason="calls a tool: its tool group needs read")
