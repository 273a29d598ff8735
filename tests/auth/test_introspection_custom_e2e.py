"""``oauth2_token`` with RFC 7662 introspection and ``custom`` auth, end to end: real ``lamina run``
processes against a real introspection endpoint and a real custom auth endpoint on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from llama_stack_client import LlamaStackClient
from openai import OpenAI

from lamina.testing.auth_servers import AUDIENCE, CLIENT_ID, CLIENT_SECRET, IdentityProvider
from lamina.testing.processes import ServerProcess, lamina_server

from .conftest import auth_run_config


@pytest.fixture(scope="module")
def introspecting(
    idp: IdentityProvider, fake_upstream: ServerProcess, tmp_path_factory
) -> Iterator[ServerProcess]:
    auth = {
        "provider_type": "oauth2_token",
        "config": {
            "introspection": {
                "url": f"{idp.url}/introspect",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "send_secret_in_body": True,
            },
            "audience": AUDIENCE,
            "claims_mapping": {"scope": "roles", "team": "teams"},
        },
    }
    with lamina_server(auth_run_config(fake_upstream, auth), tmp_path_factory.mktemp("introspect")) as srv:
        yield srv


@pytest.fixture(scope="module")
def custom(idp: IdentityProvider, fake_upstream: ServerProcess, tmp_path_factory) -> Iterator[ServerProcess]:
    auth = {"provider_type": "custom", "config": {"endpoint": f"{idp.url}/custom", "cache_ttl_seconds": 0}}
    with lamina_server(auth_run_config(fake_upstream, auth), tmp_path_factory.mktemp("custom")) as srv:
        yield srv


def _models(server: ServerProcess, token: str) -> httpx.Response:
    return httpx.get(f"{server.url}/v1/models", headers={"Authorization": f"Bearer {token}"})


def test_introspection_active_and_inactive(introspecting: ServerProcess, idp: IdentityProvider) -> None:
    idp.active_tokens["opaque-good-token"] = {
        "active": True,
        "sub": "dave",
        "aud": AUDIENCE,
        "exp": int(time.time()) + 600,
        "scope": "reader writer",
    }
    client = LlamaStackClient(base_url=introspecting.url, api_key="opaque-good-token", max_retries=0)
    assert "ok" in [m.identifier for m in client.models.list()]
    seen = idp.introspections
    client.models.list()
    assert idp.introspections == seen  # the answer is cached (until exp, at most cache_ttl_seconds)
    resp = _models(introspecting, "opaque-unknown-token")
    assert resp.status_code == 401 and "not active" in resp.json()["detail"]
    idp.active_tokens["opaque-other-aud"] = {
        "active": True,
        "sub": "eve",
        "aud": "other",
        "exp": time.time() + 60,
    }
    resp = _models(introspecting, "opaque-other-aud")
    assert resp.status_code == 401 and "audience" in resp.json()["detail"]


def test_introspection_endpoint_down_fails_closed(
    introspecting: ServerProcess, idp: IdentityProvider
) -> None:
    idp.up = False
    try:
        resp = _models(introspecting, "opaque-never-seen-token")
        assert resp.status_code == 503 and "introspection" in resp.json()["detail"]
    finally:
        idp.up = True


def test_custom_endpoint_accepts_denies_and_fails_closed(
    custom: ServerProcess, idp: IdentityProvider
) -> None:
    idp.custom_principals["custom-key-frank"] = {"principal": "frank", "attributes": {"roles": ["user"]}}
    client = OpenAI(base_url=f"{custom.url}/v1", api_key="custom-key-frank", max_retries=0)
    answer = client.chat.completions.create(
        model="ok", messages=[{"role": "user", "content": "hi"}], extra_query={"trace": "1"}
    )
    assert answer.choices[0].message.content
    call = idp.custom_calls[-1]
    assert call["api_key"] == "custom-key-frank"
    assert call["request"]["path"] == "/v1/chat/completions"
    assert call["request"]["params"] == {"trace": ["1"]}
    assert "authorization" not in {k.lower() for k in call["request"]["headers"]}
    resp = _models(custom, "custom-key-unknown")
    assert resp.status_code == 401 and "refused the token: unknown key" in resp.json()["detail"]
    idp.up = False
    try:
        resp = _models(custom, "custom-key-frank")
        assert resp.status_code == 503 and "authentication endpoint" in resp.json()["detail"]
    finally:
        idp.up = True
