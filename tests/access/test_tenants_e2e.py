"""Two tenants and an admin on one real ``lamina run`` with JWT auth and a Llama Stack ``access_policy``,
driven by llama-stack-client 0.2.12, the OpenAI SDK and raw HTTP (tokens from a real JWKS server).

Model answers come from the fake OpenAI upstream (lamina.testing.fake_openai); files, vector stores,
agents, responses, stored chat completions, datasets, batches and eval jobs are the real providers.
One server serves the module (CI time).
"""

from __future__ import annotations

import io
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from llama_stack_client import LlamaStackClient
from llama_stack_client import NotFoundError as LSNotFound
from openai import OpenAI

from lamina.api_table import API_TABLE, SERVER_PROTOCOLS
from lamina.apis.webmethod import RouteDecl, routes_of
from lamina.testing.auth_servers import AUDIENCE, ISSUER, IdentityProvider
from lamina.testing.processes import ServerProcess, lamina_server, until

pytestmark = pytest.mark.e2e

POLICY = [
    {
        "permit": {"actions": ["create", "read", "update", "delete"]},
        "when": "user with admin in roles",
        "description": "admins see and manage everything",
    },
    {"forbid": {"actions": ["create"], "resource": "vector_db::*"}, "when": "user with readonly in roles"},
    {"permit": {"actions": ["create"]}, "description": "anyone may create"},
    {"permit": {"actions": ["read", "update", "delete"]}, "when": "user is owner"},
    {
        "permit": {"actions": ["read"]},
        "when": "resource is unowned",
        "description": "the run config's models",
    },
]


def run_config(fake: ServerProcess, idp: IdentityProvider, state: Path) -> dict[str, Any]:
    def sqlite(name: str) -> dict[str, str]:
        return {"type": "sqlite", "db_path": str(state / name)}

    localfs = {"provider_id": "localfs", "provider_type": "inline::localfs"}
    meta = {"provider_id": "meta-reference", "provider_type": "inline::meta-reference"}
    return {
        "version": 2,
        "image_name": "access-e2e",
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
            ],
            "files": [{**localfs, "config": {"storage_dir": str(state / "files")}}],
            "vector_io": [{"provider_id": "faiss", "provider_type": "inline::faiss", "config": {}}],
            "datasetio": [{**localfs, "config": {"kvstore": sqlite("datasets.db")}}],
            "scoring": [{"provider_id": "basic", "provider_type": "inline::basic", "config": {}}],
            "agents": [{**meta, "config": {"persistence_store": sqlite("agents.db")}}],
            "eval": [{**meta, "config": {"kvstore": sqlite("eval.db")}}],
            "batches": [{"provider_id": "reference", "provider_type": "inline::reference", "config": {}}],
            "tool_runtime": [
                {"provider_id": "rag-runtime", "provider_type": "inline::rag-runtime", "config": {}}
            ],
        },
        "metadata_store": sqlite("registry.db"),
        "models": [
            {"model_id": "ok", "provider_id": "fake"},
            {
                "model_id": "embed",
                "provider_id": "fake",
                "model_type": "embedding",
                "metadata": {"embedding_dimension": 4},
            },
        ],
        "server": {
            "auth": {
                "provider_type": "oauth2_token",
                "config": {
                    "jwks": {"uri": f"{idp.url}/jwks"},
                    "issuer": ISSUER,
                    "audience": AUDIENCE,
                    "claims_mapping": {"roles": "roles", "groups": "teams"},
                },
                "access_policy": POLICY,
            }
        },
    }


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    with IdentityProvider() as provider:
        yield provider


@pytest.fixture(scope="module")
def server(fake_upstream: ServerProcess, idp: IdentityProvider, tmp_path_factory) -> Iterator[ServerProcess]:
    state = tmp_path_factory.mktemp("access")
    with lamina_server(run_config(fake_upstream, idp, state), state) as srv:
        yield srv


class Tenant:
    def __init__(self, server: ServerProcess, token: str) -> None:
        self.token = token
        self.ls = LlamaStackClient(base_url=server.url, api_key=token, max_retries=0, timeout=60)
        self.oa = OpenAI(base_url=f"{server.url}/v1", api_key=token, max_retries=0, timeout=60)
        self.http = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        self.ids: dict[str, str] = {}


@pytest.fixture(scope="module")
def people(server: ServerProcess, idp: IdentityProvider) -> dict[str, Tenant]:
    return {
        "a": Tenant(server, idp.token(sub="alice", roles=["user"], groups=["red"])),
        "b": Tenant(server, idp.token(sub="bob", roles=["user"], groups=["blue"])),
        "admin": Tenant(server, idp.token(sub="root", roles=["admin"])),
    }


def _make(t: Tenant, tag: str) -> None:
    """Everything a tenant owns, each made through one of the official clients."""
    f = t.ls.files.create(file=(f"{tag}.txt", io.BytesIO(f"{tag} keeps bees".encode())), purpose="assistants")
    t.ids["file"] = f.id
    vs = t.oa.vector_stores.create(
        name=f"{tag}-store",
        file_ids=[f.id],
        extra_body={"embedding_model": "embed", "embedding_dimension": 4},
    )
    t.ids["vector_db"] = vs.id
    assert t.oa.vector_stores.search(vs.id, query="bees").search_query
    agent = t.ls.agents.create(agent_config={"model": "ok", "instructions": "be brief"})
    t.ids["agent"] = agent.agent_id
    t.ids["session"] = t.ls.agents.session.create(agent.agent_id, session_name=tag).session_id
    t.ids["response"] = t.oa.responses.create(model="ok", input="hi").id
    t.ids["chat_completion"] = t.oa.chat.completions.create(
        model="ok", messages=[{"role": "user", "content": "hi"}], store=True
    ).id
    ds = t.http.post(
        "/v1/datasets",
        json={
            "purpose": "eval/messages-answer",
            "source": {"type": "rows", "rows": [{"messages": [], "answer": "x"}]},
        },
    )
    assert ds.status_code == 200, ds.text
    t.ids["dataset"] = ds.json()["identifier"]
    model = t.http.post(
        "/v1/models", json={"model_id": f"{tag}-model", "provider_id": "fake", "provider_model_id": "ok"}
    )
    assert model.status_code == 200, model.text
    t.ids["model"] = model.json()["identifier"]
    bench = t.http.post(
        "/v1/eval/benchmarks",
        json={
            "benchmark_id": f"{tag}-bench",
            "dataset_id": t.ids["dataset"],
            "scoring_functions": ["basic::equality"],
        },
    )
    assert bench.status_code == 200, bench.text
    t.ids["benchmark"] = f"{tag}-bench"
    job = t.http.post(
        f"/v1/eval/benchmarks/{tag}-bench/jobs",
        json={
            "benchmark_config": {
                "eval_candidate": {"type": "model", "model": t.ids["model"], "sampling_params": {}}
            }
        },
    )
    assert job.status_code == 200, job.text
    t.ids["eval_job"] = f"{tag}-bench/{job.json()['job_id']}"
    (mine,) = t.http.get("/v1/jobs").json()["data"]  # the eval's job: the only job this tenant may see
    t.ids["job"] = mine["id"]
    batch_file = t.oa.files.create(
        file=(
            "b.jsonl",
            io.BytesIO(
                b'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", '
                b'"body": {"model": "ok", "messages": [{"role": "user", "content": "hi"}]}}\n'
            ),
        ),
        purpose="batch",
    )
    t.ids["batch"] = t.oa.batches.create(
        input_file_id=batch_file.id, endpoint="/v1/chat/completions", completion_window="24h"
    ).id


@pytest.fixture(scope="module")
def made(people: dict[str, Tenant]) -> dict[str, Tenant]:
    _make(people["a"], "alpha")
    _make(people["b"], "beta")
    return people


def _listed_ids(t: Tenant) -> dict[str, set[str]]:
    return {
        "file": {f.id for f in t.oa.files.list()},
        "vector_db": {v.id for v in t.oa.vector_stores.list()},
        "agent": {a["agent_id"] for a in t.http.get("/v1/agents").json()["data"]},
        "response": {r["id"] for r in t.http.get("/v1/responses").json()["data"]},
        "chat_completion": {c.id for c in t.oa.chat.completions.list()},
        "dataset": {d.identifier for d in t.ls.datasets.list()},
        "batch": {b.id for b in t.oa.batches.list()},
    }


def test_lists_show_only_what_the_caller_may_read(made: dict[str, Tenant]) -> None:
    a, b, admin = made["a"], made["b"], made["admin"]
    mine, theirs, everything = _listed_ids(a), _listed_ids(b), _listed_ids(admin)
    for kind, listed in mine.items():
        assert a.ids[kind] in listed, kind
        assert b.ids[kind] not in listed, kind
        assert b.ids[kind] in theirs[kind] and a.ids[kind] not in theirs[kind], kind
        assert {a.ids[kind], b.ids[kind]} <= everything[kind], kind
    # the run config's models are unowned: every tenant may use them
    assert {"ok", "embed"} <= {m.identifier for m in b.ls.models.list()}


def test_a_page_the_policy_empties_keeps_its_declared_shape(
    made: dict[str, Tenant], server: ServerProcess, idp: IdentityProvider
) -> None:
    """A caller who may read none of the listed items gets an empty page of the route's declared shape
    (first_id and last_id '' as for any empty page: schemathesis checks every answer against it)."""
    from lamina.apis.files import ListOpenAIFileResponse
    from lamina.apis.inference import ListOpenAIChatCompletionResponse

    carol = Tenant(server, idp.token(sub="carol", roles=["user"], groups=["green"]))
    for path, model in (
        ("/v1/files", ListOpenAIFileResponse),
        ("/v1/openai/v1/files", ListOpenAIFileResponse),
        ("/v1/chat/completions", ListOpenAIChatCompletionResponse),
    ):
        answer = carol.http.get(path)
        assert answer.status_code == 200, answer.text
        page = model.model_validate(answer.json())
        assert (page.data, page.first_id, page.last_id, page.has_more) == ([], "", "", False), path


def test_a_cursor_page_is_refilled_past_hidden_items(made: dict[str, Tenant]) -> None:
    """limit=1 pages over B's files only, however A's files sit between them."""
    b = made["b"]
    extra = b.oa.files.create(file=("more.txt", io.BytesIO(b"more")), purpose="assistants")
    seen, after = [], None
    for _ in range(3):
        page = b.oa.files.list(limit=1, purpose="assistants", **({"after": after} if after else {}))
        seen += [f.id for f in page.data]
        if not page.has_more:
            break
        after = page.data[-1].id
    assert sorted(seen) == sorted([extra.id, b.ids["file"]])  # two pages of one, A's files skipped
    assert not page.has_more


def test_neither_tenant_reaches_the_others_resources_through_the_clients(made: dict[str, Tenant]) -> None:
    a, b = made["a"], made["b"]
    for attempt in (
        lambda: b.oa.files.retrieve(a.ids["file"]),
        lambda: b.oa.files.content(a.ids["file"]),
        lambda: b.oa.files.delete(a.ids["file"]),
        lambda: b.oa.vector_stores.retrieve(a.ids["vector_db"]),
        lambda: b.oa.vector_stores.search(a.ids["vector_db"], query="bees"),
        lambda: b.oa.vector_stores.update(a.ids["vector_db"], name="mine now"),
        lambda: b.oa.vector_stores.files.list(a.ids["vector_db"]),
        lambda: b.oa.vector_stores.delete(a.ids["vector_db"]),
        lambda: b.oa.responses.retrieve(a.ids["response"]),
        lambda: b.oa.responses.input_items.list(a.ids["response"]),
        lambda: b.oa.responses.delete(a.ids["response"]),
        lambda: b.oa.responses.create(model="ok", input="go on", previous_response_id=a.ids["response"]),
        lambda: b.oa.chat.completions.retrieve(a.ids["chat_completion"]),
        lambda: b.oa.chat.completions.messages.list(a.ids["chat_completion"]),
        lambda: b.oa.batches.retrieve(a.ids["batch"]),
        lambda: b.oa.batches.cancel(a.ids["batch"]),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    for attempt in (
        lambda: b.ls.agents.session.retrieve(a.ids["session"], agent_id=a.ids["agent"]),
        lambda: b.ls.agents.session.create(a.ids["agent"], session_name="intruder"),
        lambda: b.ls.agents.session.delete(a.ids["session"], agent_id=a.ids["agent"]),
        lambda: b.ls.agents.delete(a.ids["agent"]),
        lambda: b.ls.files.retrieve(a.ids["file"]),
        lambda: b.ls.datasets.retrieve(a.ids["dataset"]),
        lambda: b.ls.datasets.iterrows(a.ids["dataset"]),
        lambda: b.ls.datasets.unregister(a.ids["dataset"]),
    ):
        with pytest.raises(LSNotFound):
            attempt()
    # nothing B tried changed A's things, and A still reaches them
    assert a.oa.vector_stores.retrieve(a.ids["vector_db"]).name == "alpha-store"
    assert a.oa.files.content(a.ids["file"]).read() == b"alpha keeps bees"
    assert (
        a.ls.agents.session.retrieve(a.ids["session"], agent_id=a.ids["agent"]).session_id == a.ids["session"]
    )
    assert a.oa.vector_stores.search(a.ids["vector_db"], query="bees").data


def test_what_a_job_writes_belongs_to_its_submitter(made: dict[str, Tenant]) -> None:
    """A batch's output file is written by the batch job, not by a route: the job runs as the tenant
    that created the batch, so the file is that tenant's (the policy lets everyone read unowned
    resources: an unowned output file would be every tenant's to read)."""
    a, b = made["a"], made["b"]
    batch = until(
        lambda: (found := a.oa.batches.retrieve(a.ids["batch"])).status == "completed" and found,
        "tenant A's batch to complete",
        interval=0.2,
    )
    assert batch.output_file_id is not None
    assert b"custom_id" in a.oa.files.content(batch.output_file_id).read()
    with pytest.raises(openai.NotFoundError):
        b.oa.files.content(batch.output_file_id)
    assert batch.output_file_id not in {f.id for f in b.oa.files.list()}
    assert batch.output_file_id in {f.id for f in a.oa.files.list()}


def test_a_tool_is_called_only_by_those_who_may_read_its_group(made: dict[str, Tenant]) -> None:
    """A tool is invoked by name (`<toolgroup_id>/<tool>`): the caller needs read on its tool group, and
    a denied call answers as an unknown tool does. The run config's group (unowned) is everyone's."""
    a, b = made["a"], made["b"]
    group = {"toolgroup_id": "alpha-rag", "provider_id": "rag-runtime"}
    registered = a.http.post("/v1/toolgroups", json=group)
    assert registered.status_code == 200, registered.text
    call = {"kwargs": {"query": "bees", "vector_db_ids": [a.ids["vector_db"]]}}
    mine = a.http.post("/v1/tool-runtime/invoke", json={"tool_name": "alpha-rag/knowledge_search", **call})
    assert mine.status_code == 200, mine.text
    assert "bees" in str(mine.json()["content"])
    denied = b.http.post("/v1/tool-runtime/invoke", json={"tool_name": "alpha-rag/knowledge_search", **call})
    missing = b.http.post("/v1/tool-runtime/invoke", json={"tool_name": "gamma-rag/knowledge_search", **call})
    assert denied.status_code == missing.status_code == 404, (denied.text, missing.text)
    assert denied.json()["error"]["type"] == missing.json()["error"]["type"]
    assert denied.json()["error"]["message"] == missing.json()["error"]["message"].replace("gamma", "alpha")
    public = b.http.post(
        "/v1/tool-runtime/invoke",
        json={"tool_name": "builtin::rag/knowledge_search", "kwargs": {"query": "x", "vector_db_ids": []}},
    )
    assert public.status_code != 404, public.text


def test_a_denied_read_answers_exactly_as_a_missing_resource(made: dict[str, Tenant]) -> None:
    a, b = made["a"], made["b"]
    assert b.http.get(f"/v1/agents/{a.ids['agent']}").status_code == 404
    for kind, path in (
        ("file", "/v1/files/{}"),
        ("vector_db", "/v1/vector_stores/{}"),
        ("response", "/v1/responses/{}"),
        ("chat_completion", "/v1/chat/completions/{}"),
        ("agent", "/v1/agents/{}"),
        ("dataset", "/v1/datasets/{}"),
        ("batch", "/v1/batches/{}"),
    ):
        real = a.ids[kind]
        missing = real[:-4] + "zzzz"
        denied, absent = b.http.get(path.format(real)), b.http.get(path.format(missing))
        assert denied.status_code == absent.status_code == 404, (kind, denied.text, absent.text)
        assert denied.json() == _swap(absent.json(), missing, real), kind


def _swap(value: Any, old: str, new: str) -> Any:
    if isinstance(value, dict):
        return {k: _swap(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap(v, old, new) for v in value]
    return value.replace(old, new) if isinstance(value, str) else value


def test_an_admin_role_reaches_every_tenants_resources(made: dict[str, Tenant]) -> None:
    a, admin = made["a"], made["admin"]
    assert admin.oa.files.retrieve(a.ids["file"]).id == a.ids["file"]
    assert admin.oa.vector_stores.search(a.ids["vector_db"], query="bees").data
    assert admin.oa.responses.retrieve(a.ids["response"]).id == a.ids["response"]
    assert admin.oa.chat.completions.retrieve(a.ids["chat_completion"]).id == a.ids["chat_completion"]
    assert admin.ls.agents.session.retrieve(a.ids["session"], agent_id=a.ids["agent"]).session_id
    assert admin.ls.datasets.retrieve(a.ids["dataset"]).identifier == a.ids["dataset"]


def test_a_create_the_policy_forbids_is_403_and_naming_a_foreign_resource_is_404(
    server: ServerProcess, idp: IdentityProvider, made: dict[str, Tenant]
) -> None:
    reader = Tenant(server, idp.token(sub="carol", roles=["readonly"]))
    with pytest.raises(openai.PermissionDeniedError) as denied:
        reader.oa.vector_stores.create(
            name="x", extra_body={"embedding_model": "embed", "embedding_dimension": 4}
        )
    assert "may not create" in denied.value.message
    reader.oa.files.create(
        file=("ok.txt", io.BytesIO(b"fine")), purpose="assistants"
    )  # other kinds: permitted
    # registering an id that exists is an update of it: nobody takes over A's model or the run config's
    for model_id in (made["a"].ids["model"], "ok"):
        again = made["b"].http.post(
            "/v1/models", json={"model_id": model_id, "provider_id": "fake", "provider_model_id": "ok"}
        )
        assert again.status_code == 403 and "registered already" in again.json()["detail"], again.text
    assert made["a"].http.get(f"/v1/models/{made['a'].ids['model']}").status_code == 200
    assert made["b"].http.get("/v1/models/ok").status_code == 200
    # B's create naming A's file: A's file is as missing
    resp = made["b"].http.post(
        "/v1/vector_stores",
        json={
            "name": "x",
            "file_ids": [made["a"].ids["file"]],
            "embedding_model": "embed",
            "embedding_dimension": 4,
        },
    )
    assert resp.status_code == 404, resp.text


# --- every served route -------------------------------------------------------------------------


def _declarations() -> dict[tuple[str, str], RouteDecl]:
    out = {}
    for protocol in [p for e in API_TABLE for p in (*e.protocols, *e.always_served)] + list(SERVER_PROTOCOLS):
        for decl in routes_of(protocol):
            for path in decl.paths:
                out[(decl.method, decl.openapi_path(path))] = decl
    return out


# Routes the server adds beside the API declarations, and why access control does not apply.
NOT_API_ROUTES = {
    ("GET", "/openapi.json"): "the API description",
    ("GET", "/metrics"): "Prometheus metrics (needs a token; no tenant data)",
    ("POST", "/v1/admin/api-keys"): "admin role only (lamina.auth.api_keys)",
    ("GET", "/v1/admin/api-keys"): "admin role only",
    ("DELETE", "/v1/admin/api-keys/{key_id}"): "admin role only",
}


def test_every_served_route_declares_its_access(server: ServerProcess, made: dict[str, Tenant]) -> None:
    served = {(r["method"], r["route"]) for r in made["admin"].http.get("/v1/inspect/routes").json()["data"]}
    openapi = made["admin"].http.get("/openapi.json").json()
    served |= {(m.upper(), p) for p, ops in openapi["paths"].items() for m in ops}
    declared = _declarations()
    undeclared = sorted(
        r for r in served if r not in NOT_API_ROUTES and (r not in declared or declared[r].access is None)
    )
    assert not undeclared, f"routes without an access declaration (webmethod access=...): {undeclared}"
    assert len(served) > 100


# Values for request fields other than the ids, so a request passes validation and reaches the check.
FILLERS: dict[str, Any] = {
    "messages": [{"role": "user", "content": "hi"}],
    "query": "bees",
    "rows": [{"messages": [], "answer": "x"}],
    "tool_responses": [{"call_id": "c1", "tool_name": "t", "content": "x"}],
    "input_rows": [{"x": 1}],
    "scoring_functions": {"basic::equality": None},
    "benchmark_config": {"eval_candidate": {"type": "model", "model": "ok", "sampling_params": {}}},
    "name": "x",
    "attributes": {},
    "session_name": "x",
    "chunks": [{"content": "x", "metadata": {"document_id": "d"}}],
    "documents": [{"document_id": "d", "content": "x"}],
}
# Further values for the requests that name another resource (a new resource's id, a model to run).
USE_FILLERS: dict[str, Any] = {
    "model": "ok",
    "model_id": "ok",
    "input": "hi",
    "content": "hi",
    "contents": ["hi"],
    "benchmark_id": "new-bench",
    "vector_db_id": "new-db",
    "job_uuid": "new-job",
    "training_config": {"n_epochs": 1},
    "endpoint": "/v1/chat/completions",
    "completion_window": "24h",
}
# Path parameters of sub-resources: the owner check is the parent's, these only fill the path.
SUB_IDS = {"session_id": "session", "turn_id": "turn-x", "step_id": "step-x", "batch_id": "vsfb-x"}


def _request(decl: RouteDecl, a: Tenant, b: Tenant, value: str) -> tuple[str, dict[str, Any]]:
    """The request of ``decl`` naming ``value`` (an id of its resource kind; ``x/y`` for a two-field id)."""
    access = decl.access
    assert access is not None and access.kind is not None and access.id_field is not None
    values: dict[str, Any] = dict(zip(access.id_field.split("/"), value.split("/"), strict=True))
    for name in decl.path_params():
        if name not in values:
            values[name] = a.ids.get(SUB_IDS.get(name, ""), SUB_IDS.get(name, "x"))
    path = re.sub(r"\{([A-Za-z_]+)(?::[^}]*)?\}", lambda m: str(values[m.group(1)]), decl.path)
    body = {k: v for k, v in values.items() if k not in decl.path_params()}
    if decl.request is not None:
        for field, info in decl.request.model_fields.items():
            if info.is_required() and field not in values and field in FILLERS:
                body[field] = FILLERS[field]
            elif field in ("file_id", "file_ids") and field not in values and decl.method == "POST":
                body[field] = b.ids["file"] if field == "file_id" else [b.ids["file"]]  # B's own file
    return path, body


def _missing(resource_id: str) -> str:
    """An id like ``resource_id`` that names nothing."""
    if "/" in resource_id:  # a parent's id and a number within it
        return resource_id.rsplit("/", 1)[0] + "/9999"
    return resource_id[:-4] + "zzzz"


def _send(t: Tenant, decl: RouteDecl, path: str, body: dict[str, Any]) -> httpx.Response:
    if decl.method in ("GET", "DELETE"):
        return t.http.request(decl.method, path, params=body)
    return t.http.request(decl.method, path, json=body)


def test_every_resource_route_denies_the_other_tenant(server: ServerProcess, made: dict[str, Tenant]) -> None:
    """Driven by the declarations: for each route that names an owned resource (kinds this server
    serves), B's request on A's resource answers 404, the same as for a missing one; an admin's GET
    passes the check."""
    a, b, admin = made["a"], made["b"], made["admin"]
    served = {(r["method"], r["route"]) for r in admin.http.get("/v1/inspect/routes").json()["data"]}
    checked = []
    for (method, route), decl in sorted(_declarations().items()):
        access = decl.access
        if (
            (method, route) not in served
            or access is None
            or access.id_field is None
            or access.action is None
            or access.action.value == "create"
            or access.kind not in a.ids
        ):
            continue
        if route != decl.openapi_path():  # an alias: the same handler as its main path
            continue
        path, body = _request(decl, a, b, a.ids[access.kind])
        denied = _send(b, decl, path, body)
        assert denied.status_code == 404, (method, route, denied.status_code, denied.text)
        missing = _missing(a.ids[access.kind])
        absent = _send(b, decl, *_request(decl, a, b, missing))
        shown, hidden = a.ids[access.kind].split("/")[-1], missing.split("/")[-1]
        assert denied.json() == _swap(absent.json(), hidden, shown), (method, route)
        # (the tenant's job is an eval's: the batch-agents and post-training routes do not know it)
        if method == "GET" and (access.kind != "job" or route.startswith("/v1/jobs")):
            allowed = _send(admin, decl, path, body)
            assert allowed.content != denied.content, (method, route, allowed.text)
        checked.append((method, route))
    kinds = {_declarations()[c].access.kind for c in checked}
    assert {
        "file",
        "vector_db",
        "agent",
        "response",
        "chat_completion",
        "dataset",
        "batch",
        "model",
        "eval_job",
        "job",
    } <= kinds
    assert len(checked) >= 45, checked
    # every denied write left A's resources as they were
    assert a.oa.vector_stores.retrieve(a.ids["vector_db"]).name == "alpha-store"
    assert a.oa.files.retrieve(a.ids["file"]).id == a.ids["file"]
    assert a.http.get(f"/v1/agents/{a.ids['agent']}").json()["agent_id"] == a.ids["agent"]
    assert a.oa.responses.retrieve(a.ids["response"]).id == a.ids["response"]
    assert a.ls.datasets.retrieve(a.ids["dataset"]).identifier == a.ids["dataset"]


def test_every_route_naming_another_resource_denies_the_other_tenants(
    server: ServerProcess, made: dict[str, Tenant]
) -> None:
    """Driven by the declarations' ``uses``: B's request naming A's model, file, vector store, dataset,
    benchmark or response (a chat completion's model, a vector store's file_ids...) answers 404 as for a
    missing one."""
    a, b = made["a"], made["b"]
    served = {(r["method"], r["route"]) for r in made["admin"].http.get("/v1/inspect/routes").json()["data"]}
    checked = []
    for (method, route), decl in sorted(_declarations().items()):
        access = decl.access
        if (method, route) not in served or access is None or route != decl.openapi_path():
            continue
        for kind, field in access.uses:
            if kind not in a.ids or field in decl.path_params() or not field.isidentifier():
                continue  # (a path into the request: test_what_the_server_uses_for_a_caller_is_checked)
            annotation = str(decl.request.model_fields[field].annotation)
            theirs = [a.ids[kind]] if "list" in annotation else a.ids[kind]
            missing = _missing(a.ids[kind])
            body = {
                f: FILLERS[f]
                for f, i in decl.request.model_fields.items()
                if i.is_required() and f in FILLERS
            }
            body |= USE_FILLERS
            if "dict" not in str(decl.request.model_fields.get("scoring_functions", "dict")):
                body["scoring_functions"] = ["basic::equality"]
            body = {f: v for f, v in body.items() if f in decl.request.model_fields}
            values = {name: a.ids.get(name.removesuffix("_id"), "x") for name in decl.path_params()}
            path = re.sub(r"\{([A-Za-z_]+)(?::[^}]*)?\}", lambda m, v=values: str(v[m.group(1)]), decl.path)
            path = path.replace(a.ids.get("benchmark", "-"), b.ids.get("benchmark", "-"))  # B's own parent
            denied = _send(b, decl, path, {**body, field: theirs})
            absent = _send(b, decl, path, {**body, field: _swap(theirs, a.ids[kind], missing)})
            if access.action is None or access.action.value == "read":
                # 404, or what the route answers first for a missing id (a 400 for another field, say)
                assert denied.status_code in (400, 404), (method, route, field, denied.text)
                assert denied.json() == _swap(absent.json(), missing, a.ids[kind]), (method, route, field)
            else:  # a create or update is not run again to see how it answers: a plain 404 naming the field
                assert denied.status_code == 404, (method, route, field, denied.text)
                assert denied.json()["error"]["param"] == field
            checked.append((method, route, field))
    assert len(checked) >= 15, checked


def test_what_the_server_uses_for_a_caller_is_checked(made: dict[str, Tenant]) -> None:
    """Resources the server uses on the caller's behalf, named deep inside a request: an agent's model,
    shields, tool groups and the vector DBs bound to RAG, a turn's tool groups, a response's file_search
    vector stores, knowledge_search's vector_db_ids, a tool group's args. B naming A's vector store in
    any of them is a 404 naming the path; naming B's own works."""
    a, b = made["a"], made["b"]
    theirs, mine = a.ids["vector_db"], b.ids["vector_db"]

    def rag(vector_db: str) -> list[dict[str, Any]]:
        return [{"name": "builtin::rag/knowledge_search", "args": {"vector_db_ids": [vector_db]}}]

    path = "agent_config.toolgroups[].args.vector_db_ids"
    with pytest.raises(LSNotFound, match=re.escape(theirs)) as denied:
        b.ls.agents.create(agent_config={"model": "ok", "instructions": "x", "toolgroups": rag(theirs)})
    assert denied.value.body["error"]["param"] == path
    assert b.ls.agents.create(agent_config={"model": "ok", "instructions": "x", "toolgroups": rag(mine)})
    session = {"agent_id": b.ids["agent"], "session_id": b.ids["session"]}
    with pytest.raises(LSNotFound, match=re.escape(theirs)):
        b.ls.agents.turn.create(
            **session, messages=[{"role": "user", "content": "bees?"}], toolgroups=rag(theirs), stream=False
        )
    with pytest.raises(openai.NotFoundError, match=re.escape(theirs)):
        b.oa.responses.create(
            model="ok", input="bees?", tools=[{"type": "file_search", "vector_store_ids": [theirs]}]
        )
    # A's tool group alpha-rag also provides knowledge_search and sorts first: for B, only the groups B may
    # use count, so the bare name is builtin::rag's, and a miss lists no tool of A's
    invoke = {"tool_name": "knowledge_search"}
    stolen = {**invoke, "kwargs": {"query": "bees", "vector_db_ids": [theirs]}}
    answer = b.http.post("/v1/tool-runtime/invoke", json=stolen)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["param"] == "kwargs.vector_db_ids"
    own = {**invoke, "kwargs": {"query": "bees", "vector_db_ids": [mine]}}
    answer = b.http.post("/v1/tool-runtime/invoke", json=own)
    assert answer.status_code == 200 and "bees" in answer.text, answer.text
    miss = b.http.post("/v1/tool-runtime/invoke", json={"tool_name": "no_such_tool", "kwargs": {}})
    assert miss.status_code == 404 and "builtin::rag" in miss.text and "alpha-rag" not in miss.text
    group = {"toolgroup_id": "b-rag", "provider_id": "rag-runtime", "args": {"vector_db_ids": [theirs]}}
    registered = b.http.post("/v1/toolgroups", json=group)
    assert registered.status_code == 404 and registered.json()["error"]["param"] == "args.vector_db_ids"


def test_a_stored_completion_keeps_its_owner_in_its_row(server: ServerProcess, made: dict[str, Tenant]):
    """A chat completion's owner is written with it, in its inference store row (one write, no crash
    window between the two); the metadata store gets owner records for the other kinds only."""
    state = server.log_path.parent
    with closing(sqlite3.connect(state / "registry.db")) as db:
        keys = [k for (k,) in db.execute("SELECT key FROM kvstore WHERE key LIKE 'access:owner:%'")]
    assert any(k.startswith("access:owner:file::") for k in keys), keys
    assert not [k for k in keys if k.startswith("access:owner:chat_completion::")]
    (store,) = state.glob("home/**/inference_store.db")
    with closing(sqlite3.connect(store)) as db:
        rows = db.execute("SELECT id, owner FROM chat_completions").fetchall()
    owners = {cid: json.loads(owner)["principal"] for cid, owner in rows if owner is not None}
    assert owners[made["a"].ids["chat_completion"]] == "alice"
    assert owners[made["b"].ids["chat_completion"]] == "bob"


def test_a_streamed_create_records_its_owner(made: dict[str, Tenant]) -> None:
    """The id of a streamed chat completion or response is in its events: the owner is recorded from them."""
    a, b = made["a"], made["b"]
    chunks = list(
        a.oa.chat.completions.create(model="ok", messages=[{"role": "user", "content": "hi"}], stream=True)
    )
    completion_id = chunks[0].id
    events = list(a.oa.responses.create(model="ok", input="hi", stream=True))
    response_id = next(e.response.id for e in events if getattr(e, "response", None) is not None)
    for path in (f"/v1/chat/completions/{completion_id}", f"/v1/responses/{response_id}"):
        for _ in range(50):  # the store writes a completion in the background: poll until A sees it
            if a.http.get(path).status_code == 200:
                break
            time.sleep(0.1)
        assert a.http.get(path).status_code == 200, path
        assert b.http.get(path).status_code == 404, path
