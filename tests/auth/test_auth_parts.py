"""The auth parts on their own: config validation, the JWKS cache's refetch limit (against the real JWKS
server of lamina.testing.auth_servers), claims mapping, and log/span redaction."""

from __future__ import annotations

import json

import pytest
import structlog
from pydantic import ValidationError

from lamina import redaction
from lamina.auth.config import AuthConfig, JWKSConfig
from lamina.auth.errors import verifier_down
from lamina.auth.http_client import AuthHttpClient
from lamina.auth.oauth2_token import JWKSCache
from lamina.auth.principal import attributes_from_claims
from lamina.errors import ServiceUnavailableError, UnauthorizedError
from lamina.testing.auth_servers import IdentityProvider


def _oauth(**config) -> AuthConfig:
    return AuthConfig.model_validate({"provider_type": "oauth2_token", "config": config})


def test_llama_stack_shape_validates() -> None:
    cfg = _oauth(jwks={"uri": "https://idp/jwks", "key_recheck_period": 60}, issuer="i", audience="a")
    assert cfg.provider_config().claims_mapping["groups"] == "teams"
    assert cfg.open_paths == ["/v1/health", "/v1/health/ready", "/v1/version"]


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({}, "exactly one of jwks"),
        (
            {
                "jwks": {"uri": "https://i/j"},
                "introspection": {"url": "https://i/x", "client_id": "c", "client_secret": "s"},
            },
            "exactly one",
        ),
        ({"jwks": {"uri": "https://i/j"}, "algorithms": ["HS256"]}, "only asymmetric"),
        ({"jwks": {"uri": "https://i/j"}, "algorithms": ["none"]}, "only asymmetric"),
        ({"jwks": {"uri": "https://i/j"}, "clams_mapping": {}}, "clams_mapping"),
        ({"jwks": {"uri": "https://i/j"}, "claims_mapping": {"sub": ""}}, "to no attribute"),
    ],
)
def test_bad_oauth_configs_fail_at_start_up(config: dict, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        _oauth(**config)


@pytest.mark.parametrize(
    ("policy", "refused"),
    [
        ([{"permit": {"actions": ["read"]}}], None),
        (
            [{"permit": {"actions": ["read"]}}, {"permit": {"actions": ["read"]}, "when": "user is boss"}],
            r"access_policy\[1\].*unknown condition 'user is boss'",
        ),
    ],
)
def test_access_policy_is_checked_at_start_up(policy: list, refused: str | None) -> None:
    from lamina.config import RunConfig, check_settings_are_enforced
    from lamina.errors import ConfigError

    config = RunConfig.model_validate(
        {
            "version": 2,
            "providers": {},
            "server": {
                "auth": {
                    "provider_type": "custom",
                    "config": {"endpoint": "http://127.0.0.1:9/auth"},
                    "access_policy": policy,
                }
            },
        }
    )
    if refused is None:
        check_settings_are_enforced(config, served_apis=[])
        return
    with pytest.raises(ConfigError, match=refused):
        check_settings_are_enforced(config, served_apis=[])


def test_claims_mapping_as_llama_stack() -> None:
    claims = {"sub": "u1", "groups": ["red", "blue"], "scope": "read write", "project": "p", "other": "x"}
    mapping = {"sub": "roles", "groups": "teams", "scope": "roles", "project": "projects"}
    assert attributes_from_claims(claims, mapping) == {
        "roles": ["u1", "read", "write"],
        "teams": ["red", "blue"],
        "projects": ["p"],
    }


async def test_unknown_kids_refetch_the_jwks_at_most_once_per_interval() -> None:
    with IdentityProvider() as idp:
        now = [1000.0]
        cache = JWKSCache(
            JWKSConfig(uri=f"{idp.url}/jwks", key_recheck_period=3600, unknown_kid_refetch_seconds=10),
            AuthHttpClient(),
            clock=lambda: now[0],
        )
        try:
            assert (await cache.key(idp.keys[0].kid)).key_id == idp.keys[0].kid
            assert idp.fetches == 1
            for kid in ("made-up-1", "made-up-2", "made-up-3"):
                with pytest.raises(UnauthorizedError):
                    await cache.key(kid)
            assert idp.fetches == 1  # within the interval: no refetch, whatever the kids
            now[0] += 11
            with pytest.raises(UnauthorizedError):
                await cache.key("made-up-4")
            assert idp.fetches == 2
            now[0] += 3600  # the recheck period: fetched again, even for a known kid
            await cache.key(idp.keys[0].kid)
            assert idp.fetches == 3
            idp.up = False
            now[0] += 3600
            with pytest.raises(ServiceUnavailableError):
                await cache.key(idp.keys[0].kid)
        finally:
            await cache.client.close()


async def test_the_jwks_token_is_sent_when_configured() -> None:
    with IdentityProvider() as idp:
        idp.jwks_token = "jwks-access-token-123"
        config = {"uri": f"{idp.url}/jwks"}
        refused = JWKSCache(JWKSConfig(**config), AuthHttpClient())
        allowed = JWKSCache(JWKSConfig(**config, token="jwks-access-token-123"), AuthHttpClient())
        try:
            with pytest.raises(ServiceUnavailableError):
                await refused.key(idp.keys[0].kid)
            assert (await allowed.key(idp.keys[0].kid)).key_id == idp.keys[0].kid
        finally:
            await refused.client.close()
            await allowed.client.close()


def test_redaction_masks_secret_keys_shapes_and_known_values() -> None:
    redaction.register_secrets(["sk-config-secret-987654"])
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"
    event = {
        "event": f"calling upstream with sk-config-secret-987654 and Authorization: Bearer {token}",
        "api_key": "plain",
        "headers": {"X-LlamaStack-Provider-Data": '{"k": "v"}', "accept": "json"},
        "max_tokens": 64,
        "access_token": "abcdef",
        "note": f"token {token} inline",
        "key": "lam_0123456789abcdef_" + "A" * 43,
    }
    out = redaction.structlog_processor(None, "info", event)
    text = json.dumps(out)
    for secret in ("sk-config-secret-987654", token, "plain", '{\\"k\\": \\"v\\"}', "abcdef", "A" * 43):
        assert secret not in text
    assert out["max_tokens"] == 64 and out["headers"]["accept"] == "json"
    assert out["event"].startswith("calling upstream with ***")


def test_request_secrets_are_masked_in_log_lines() -> None:
    import io

    from lamina.logging import configure_logging

    configure_logging("info", "json")
    try:
        processors = structlog.get_config()["processors"]
        assert redaction.structlog_processor in processors
    finally:
        structlog.reset_defaults()
    out = io.StringIO()
    logger = structlog.wrap_logger(structlog.PrintLogger(file=out), processors=processors)
    redaction.REQUEST_SECRETS.set(())
    redaction.add_request_secrets(["opaque-request-token-xyz"])
    logger.info("seen", detail="got opaque-request-token-xyz from the client")
    line = out.getvalue()
    assert "opaque-request-token-xyz" not in line and "got *** from the client" in line


def test_verifier_down_says_retry() -> None:
    exc = verifier_down("the JWKS")
    assert exc.status == 503 and exc.headers["Retry-After"] == "5"


def test_span_attributes_are_redacted() -> None:
    from lamina.telemetry.spans import clean

    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"
    attributes = clean({"http.request.header.authorization": f"Bearer {token}", "url.path": "/v1/models"})
    assert attributes == {"http.request.header.authorization": "***", "url.path": "/v1/models"}
    assert clean({"lamina.note": f"sent {token}"}) == {"lamina.note": "sent ***"}


async def test_verified_tokens_are_reused_only_with_the_key_set_that_verified_them() -> None:
    from lamina.auth.config import OAuth2TokenConfig
    from lamina.auth.oauth2_token import OAuth2TokenAuth
    from lamina.testing.auth_servers import AUDIENCE, ISSUER, SigningKey

    with IdentityProvider() as idp:
        jwks = {"uri": f"{idp.url}/jwks", "unknown_kid_refetch_seconds": 0}
        auth = OAuth2TokenAuth(OAuth2TokenConfig(jwks=jwks, issuer=ISSUER, audience=AUDIENCE))
        try:
            old = idp.token(sub="kim")
            assert (await auth.authenticate(old, None)).id == "kim"
            assert (await auth.authenticate(old, None)).id == "kim"  # from the cache
            assert idp.fetches == 1
            # The issuer withdraws the old key; a token with a new kid makes the server refetch.
            new = SigningKey()
            idp.keys = [new]
            assert (await auth.authenticate(idp.token(new, sub="lee"), None)).id == "lee"
            with pytest.raises(UnauthorizedError, match="not one of the issuer's keys"):
                await auth.authenticate(old, None)
        finally:
            await auth.close()
