"""Lamina API keys end to end: a real ``lamina run`` with ``provider_type: api_keys``; the bootstrap
admin creates keys, they authenticate the official clients, and a revoked key stops working (across a
restart too: the keys live in the metadata store, hashed)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from llama_stack_client import LlamaStackClient

from lamina.testing.processes import ServerProcess, lamina_server

from .conftest import auth_run_config

BOOTSTRAP = "bootstrap-admin-key-for-tests-0123456789"


@pytest.fixture(scope="module")
def server(fake_upstream: ServerProcess, tmp_path_factory) -> Iterator[ServerProcess]:
    auth = {"provider_type": "api_keys", "config": {"bootstrap_admin_key": "${env.TEST_ADMIN_KEY}"}}
    work = tmp_path_factory.mktemp("api-keys")
    with lamina_server(auth_run_config(fake_upstream, auth), work, env={"TEST_ADMIN_KEY": BOOTSTRAP}) as srv:
        yield srv


def _admin(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_create_use_list_revoke(server: ServerProcess) -> None:
    url = f"{server.url}/v1/admin/api-keys"
    assert httpx.post(url, json={"principal": "x"}).status_code == 401
    created = httpx.post(
        url, json={"principal": "grace", "name": "ci", "teams": ["blue"]}, headers=_admin(BOOTSTRAP)
    )
    assert created.status_code == 201, created.text
    record = created.json()
    key = record["key"]
    assert key.startswith("lam_") and record["principal"] == "grace" and "sha256" not in record

    client = LlamaStackClient(base_url=server.url, api_key=key, max_retries=0)
    assert "ok" in [m.identifier for m in client.models.list()]
    # A key without the admin role cannot manage keys.
    resp = httpx.get(url, headers=_admin(key))
    assert resp.status_code == 403 and "'admin' role" in resp.json()["detail"]

    listed = httpx.get(url, headers=_admin(BOOTSTRAP)).json()["data"]
    assert [r["id"] for r in listed] == [record["id"]] and "key" not in listed[0]
    # Only the hash is stored.
    db = server.log_path.parent / "home"
    stored = b"".join(p.read_bytes() for p in db.rglob("registry.db*"))
    assert key.split("_", 2)[2].encode() not in stored and record["id"].encode() in stored

    assert httpx.delete(f"{url}/{record['id']}", headers=_admin(BOOTSTRAP)).json() == {
        "id": record["id"],
        "deleted": True,
    }
    resp = httpx.get(f"{server.url}/v1/models", headers=_admin(key))
    assert resp.status_code == 401 and "unknown or revoked" in resp.json()["detail"]
    assert httpx.delete(f"{url}/{record['id']}", headers=_admin(BOOTSTRAP)).status_code == 404


def test_bad_requests_name_the_field(server: ServerProcess) -> None:
    url = f"{server.url}/v1/admin/api-keys"
    resp = httpx.post(url, json={"name": "no principal"}, headers=_admin(BOOTSTRAP))
    assert resp.status_code == 400 and "principal" in resp.json()["detail"]
    resp = httpx.get(f"{server.url}/v1/models", headers=_admin("lam_nothex_short"))
    assert resp.status_code == 401 and "malformed" in resp.json()["detail"]
    resp = httpx.get(f"{server.url}/v1/models", headers=_admin("some-other-token-value"))
    assert resp.status_code == 401


def test_keys_survive_a_restart(server: ServerProcess) -> None:
    url = f"{server.url}/v1/admin/api-keys"
    key = httpx.post(url, json={"principal": "heidi"}, headers=_admin(BOOTSTRAP)).json()["key"]
    server.restart()
    assert httpx.get(f"{server.url}/v1/models", headers=_admin(key)).status_code == 200
