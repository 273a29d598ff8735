"""Traces per tenant: with ``server.auth``, a caller reads the traces of its own requests only, unless a
rule permits it to read ``telemetry::traces`` (here: admins). A real ``lamina run`` with API keys, the
sqlite trace store and the fake upstream, driven by llama-stack-client 0.2.12 and httpx."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_stack_client import LlamaStackClient
from llama_stack_client import NotFoundError as LSNotFound

from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

ADMIN_KEY = "traces-e2e-bootstrap-admin-key-0123456789"
POLICY = [
    {"permit": {"actions": ["create", "read", "update", "delete"]}, "when": "user with admin in roles"},
    {"permit": {"actions": ["create"]}},
    {"permit": {"actions": ["read", "update", "delete"]}, "when": "user is owner"},
    {"permit": {"actions": ["read"]}, "when": "resource is unowned"},
]


def run_config(state: Path, fake: ServerProcess) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "traces-access-e2e",
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
            ],
            "telemetry": [
                {
                    "provider_id": "meta-reference",
                    "provider_type": "inline::meta-reference",
                    "config": {"sinks": "sqlite", "sqlite_db_path": str(state / "trace_store.db")},
                }
            ],
        },
        "metadata_store": {"type": "sqlite", "db_path": str(state / "registry.db")},
        "models": [{"model_id": "ok", "provider_id": "fake"}],
        "server": {
            "auth": {
                "provider_type": "api_keys",
                "config": {"bootstrap_admin_key": ADMIN_KEY},
                "access_policy": POLICY,
            }
        },
    }


def test_a_tenant_reads_only_the_traces_of_its_own_requests(
    start_lamina: Callable[..., ServerProcess], fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    server = start_lamina(run_config(tmp_path / "state", fake_upstream))
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}

    def key(principal: str) -> str:
        made = httpx.post(f"{server.url}/v1/admin/api-keys", json={"principal": principal}, headers=admin)
        assert made.status_code == 201, made.text
        return made.json()["key"]

    clients = {w: LlamaStackClient(base_url=server.url, api_key=key(w), max_retries=0) for w in ("a", "b")}
    everyone = LlamaStackClient(base_url=server.url, api_key=ADMIN_KEY, max_retries=0)
    for who, client in clients.items():
        client.inference.chat_completion(model_id="ok", messages=[{"role": "user", "content": f"{who} asks"}])

    def traces_of(principal: str) -> set[str]:
        found = everyone.telemetry.query_traces(
            attribute_filters=[{"key": "enduser.id", "op": "eq", "value": principal}], limit=100
        )
        return {t.trace_id for t in found}

    deadline = time.monotonic() + 30  # the export worker writes the store in the background
    while not (traces_of("a") and traces_of("b")) and time.monotonic() < deadline:
        time.sleep(0.2)
    mine, theirs = traces_of("a"), traces_of("b")
    assert mine and theirs and not mine & theirs

    seen = {t.trace_id for t in clients["a"].telemetry.query_traces(limit=100)}
    assert seen and seen <= mine and not seen & theirs  # only A's own (its key creation's are the admin's)
    other = next(iter(theirs))
    with pytest.raises(LSNotFound, match="is not in the trace store"):
        clients["a"].telemetry.get_trace(other)
    root = everyone.telemetry.get_trace(other).root_span_id
    with pytest.raises(LSNotFound):
        clients["a"].telemetry.get_span_tree(root)
    of_b = [{"key": "enduser.id", "op": "eq", "value": "b"}]
    spans = clients["a"].telemetry.query_spans(attribute_filters=of_b, attributes_to_return=["enduser.id"])
    assert spans == []  # filtering on another's id finds nothing either
    own = clients["a"].telemetry.get_trace(next(iter(seen)))
    assert own.trace_id in mine
    # The admin rule reads every trace; metrics (telemetry::metrics, unowned) stay readable by all.
    assert {t.trace_id for t in everyone.telemetry.query_traces(limit=100)} >= mine | theirs
    metrics = httpx.post(
        f"{server.url}/v1/telemetry/metrics/llama_stack_prompt_tokens",
        json={"start_time": int(time.time()) - 600, "query_type": "range"},
        headers={"Authorization": f"Bearer {clients['a'].api_key}"},
    )
    assert metrics.status_code == 200, metrics.text
