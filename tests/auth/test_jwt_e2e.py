"""``oauth2_token`` with a JWKS, end to end: a real ``lamina run`` checks tokens signed by keys the test
generates and serves from a real JWKS endpoint (lamina.testing.auth_servers) on loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from llama_stack_client import AuthenticationError as LSAuthError
from llama_stack_client import LlamaStackClient
from openai import AuthenticationError as OAAuthError
from openai import OpenAI

from lamina.testing.auth_servers import AUDIENCE, ISSUER, IdentityProvider, SigningKey
from lamina.testing.processes import ServerProcess, lamina_server

from .conftest import UPSTREAM_KEY, auth_run_config


@pytest.fixture(scope="module")
def server(idp: IdentityProvider, fake_upstream: ServerProcess, tmp_path_factory) -> Iterator[ServerProcess]:
    auth = {
        "provider_type": "oauth2_token",
        "config": {
            "jwks": {"uri": f"{idp.url}/jwks", "key_recheck_period": 3600, "unknown_kid_refetch_seconds": 0},
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "claims_mapping": {"roles": "roles", "groups": "teams", "project": "projects"},
        },
    }
    work: Path = tmp_path_factory.mktemp("auth-jwt")
    config = auth_run_config(fake_upstream, auth)
    with lamina_server(config, work, env={"LAMINA_LOG_LEVEL": "debug"}) as srv:
        yield srv


def _refused(server: ServerProcess, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(f"{server.url}/v1/models", headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_no_token_is_401_with_a_bearer_challenge_and_health_stays_open(server: ServerProcess) -> None:
    resp = _refused(server, None)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="lamina"'
    assert "Authorization: Bearer" in resp.json()["detail"]
    assert httpx.get(f"{server.url}/v1/health").status_code == 200
    assert httpx.get(f"{server.url}/v1/version").status_code == 200
    with pytest.raises(LSAuthError):
        LlamaStackClient(base_url=server.url, max_retries=0).models.list()
    with pytest.raises(OAAuthError):
        OpenAI(base_url=f"{server.url}/v1", api_key="not-a-jwt", max_retries=0).models.list()


def test_valid_token_through_both_clients(server: ServerProcess, idp: IdentityProvider) -> None:
    token = idp.token(sub="alice", roles=["reader"], groups=["red"])
    ls = LlamaStackClient(base_url=server.url, api_key=token, max_retries=0)
    assert "ok" in [m.identifier for m in ls.models.list()]
    oa = OpenAI(base_url=f"{server.url}/v1", api_key=token, max_retries=0)
    answer = oa.chat.completions.create(model="ok", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content


@pytest.mark.parametrize(
    ("claims", "says"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"nbf": int(time.time()) + 3600}, "not valid yet"),
        ({"iss": "https://evil.test"}, "issuer"),
        ({"aud": "someone-else"}, "audience"),
        ({"exp": None}, "'exp'"),
    ],
)
def test_bad_claims_are_401_naming_the_problem(
    server: ServerProcess, idp: IdentityProvider, claims: dict, says: str
) -> None:
    resp = _refused(server, idp.token(**claims))
    assert resp.status_code == 401, resp.text
    assert says in resp.json()["detail"]
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


def test_alg_none_and_garbage_are_refused(server: ServerProcess, idp: IdentityProvider) -> None:
    unsigned = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": int(time.time()) + 600},
        None,
        algorithm="none",
        headers={"kid": idp.keys[0].kid},
    )
    resp = _refused(server, unsigned)
    assert resp.status_code == 401 and "'none' is not accepted" in resp.json()["detail"]
    resp = _refused(server, "not.a.jwt")
    assert resp.status_code == 401 and "not a well-formed JWT" in resp.json()["detail"]
    resp = httpx.get(f"{server.url}/v1/models", headers={"Authorization": "Basic abc"})
    assert resp.status_code == 401 and "Bearer <token>" in resp.json()["detail"]


def test_hs256_signed_with_the_public_key_is_refused(server: ServerProcess, idp: IdentityProvider) -> None:
    """The key-confusion attack: HMAC keyed with the (public) PEM of the issuer's RSA key."""
    key = idp.keys[0]
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": int(time.time()) + 600}
    signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    resp = _refused(server, f"{signing_input}.{_b64(signature)}")
    assert resp.status_code == 401 and "'HS256' is not accepted" in resp.json()["detail"]


def test_a_token_signed_by_an_unknown_key_is_refused(server: ServerProcess, idp: IdentityProvider) -> None:
    stranger = SigningKey()  # not served by the JWKS
    resp = _refused(server, idp.token(stranger))
    assert resp.status_code == 401 and "not one of the issuer's keys" in resp.json()["detail"]
    # A known kid with a signature by another key.
    forged = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": int(time.time()) + 600},
        stranger.private,
        algorithm="RS256",
        headers={"kid": idp.keys[0].kid},
    )
    resp = _refused(server, forged)
    assert resp.status_code == 401 and "signature does not verify" in resp.json()["detail"]


def test_key_rotation_is_picked_up(server: ServerProcess, idp: IdentityProvider) -> None:
    new = SigningKey()
    idp.keys.append(new)
    before = idp.fetches
    resp = _refused(server, idp.token(new, sub="bob"))
    assert resp.status_code == 200, resp.text
    assert idp.fetches == before + 1  # the unknown kid made the server fetch the JWKS again
    idp.keys.remove(new)


def test_jwks_down_fails_closed_and_recovers(server: ServerProcess, idp: IdentityProvider) -> None:
    idp.up = False
    try:
        # An unknown kid forces a fetch, which fails: the cached keys are dropped, nothing gets through.
        resp = _refused(server, idp.token(SigningKey()))
        assert resp.status_code == 503 and "JWKS" in resp.json()["detail"]
        resp = _refused(server, idp.token())
        assert resp.status_code == 503
        assert resp.headers["Retry-After"]
    finally:
        idp.up = True
    assert _refused(server, idp.token()).status_code == 200


def test_no_secret_reaches_the_log_and_the_principal_does(
    server: ServerProcess, idp: IdentityProvider
) -> None:
    token = idp.token(sub="carol-the-auditor")
    caller_key = "sk-caller-provider-data-secret-42"
    resp = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "oai-echo", "messages": [{"role": "user", "content": "hi"}]},
        headers={
            "Authorization": f"Bearer {token}",
            "X-LlamaStack-Provider-Data": json.dumps({"openai_api_key": caller_key}),
        },
    )
    assert resp.status_code == 200, resp.text
    # The caller's key did reach the upstream (so the server handled it)...
    sent = json.loads(resp.json()["choices"][0]["message"]["content"])["_authorization"]
    assert sent == f"Bearer {caller_key}"
    _refused(server, token + "x")  # a bad token is refused: it must not be logged either
    log = server.log_path.read_text()
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(e.get("principal") == "carol-the-auditor" and e.get("event") == "request" for e in events)
    for secret in (token, token.split(".")[2], caller_key, UPSTREAM_KEY):
        assert secret not in log


def test_an_admin_token_manages_api_keys_and_a_key_works_beside_jwts(
    server: ServerProcess, idp: IdentityProvider
) -> None:
    url = f"{server.url}/v1/admin/api-keys"
    user = {"Authorization": f"Bearer {idp.token(sub='ivan', roles=['reader'])}"}
    resp = httpx.post(url, json={"principal": "bot"}, headers=user)
    assert resp.status_code == 403 and "'admin' role" in resp.json()["detail"]
    admin = {"Authorization": f"Bearer {idp.token(sub='judy', roles=['admin'])}"}
    created = httpx.post(url, json={"principal": "bot", "roles": ["reader"]}, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["created_by"] == "judy"
    client = OpenAI(base_url=f"{server.url}/v1", api_key=created.json()["key"], max_retries=0)
    assert "ok" in [m.id for m in client.models.list()]


def test_a_hostile_kid_cannot_inject_headers(server: ServerProcess, idp: IdentityProvider) -> None:
    token = idp.token(headers={"kid": 'évil"\r\nX-Injected: 1'})
    resp = _refused(server, token)
    assert resp.status_code == 401 and "X-Injected" not in resp.headers
    challenge = resp.headers["WWW-Authenticate"]
    assert challenge.isascii() and "\r" not in challenge and "\n" not in challenge
