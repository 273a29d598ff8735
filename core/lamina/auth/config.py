"""``server.auth`` of a run config: Llama Stack 0.2.12's shape, plus Lamina's own keys beside it.

Llama Stack's keys: ``provider_type`` (``oauth2_token`` | ``custom``), ``config`` (that provider's
settings) and ``access_policy``. Lamina adds ``api_keys`` (hashed keys created through the admin routes,
accepted beside the provider), ``admin_role`` and ``open_paths``, and the provider type ``api_keys``
(keys only, for small deployments). docs/security.md explains each.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

# Llama Stack 0.2.12's default mapping from token claims to principal attributes.
DEFAULT_CLAIMS_MAPPING = {
    "sub": "roles",
    "username": "roles",
    "groups": "teams",
    "team": "teams",
    "project": "projects",
    "tenant": "namespaces",
    "namespace": "namespaces",
}
# Asymmetric algorithms only: "none" proves nothing, and an HS* token checked against a JWKS would let
# anyone holding the public key sign (the key-confusion attack).
ASYMMETRIC_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip
DEFAULT_OPEN_PATHS = ("/v1/health", "/v1/health/ready", "/v1/version")


class AuthProviderType(StrEnum):
    oauth2_token = "oauth2_token"
    custom = "custom"
    api_keys = "api_keys"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JWKSConfig(_Strict):
    uri: HttpUrl = Field(description="Where the issuer publishes its signing keys (a JWKS document).")
    token: str | None = Field(default=None, description="A bearer token the JWKS endpoint asks for, if any.")
    key_recheck_period: int = Field(
        default=3600, gt=0, description="Seconds between fetches of the JWKS (key rotation is picked up)."
    )
    # Lamina's: an unknown `kid` refetches the JWKS at once, but not more often than this.
    unknown_kid_refetch_seconds: float = Field(default=10.0, ge=0)
    timeout_seconds: float = Field(default=5.0, gt=0)


class IntrospectionConfig(_Strict):
    url: HttpUrl = Field(description="The RFC 7662 token introspection endpoint.")
    client_id: str
    client_secret: str
    send_secret_in_body: bool = Field(
        default=False, description="Send client_id/client_secret in the form body instead of HTTP basic auth."
    )
    # Lamina's: how long an answer is reused (never past the token's exp).
    cache_ttl_seconds: float = Field(default=60.0, ge=0)
    timeout_seconds: float = Field(default=5.0, gt=0)


class OAuth2TokenConfig(_Strict):
    """``provider_type: oauth2_token``: a JWT checked against a JWKS, or an opaque token introspected."""

    jwks: JWKSConfig | None = None
    introspection: IntrospectionConfig | None = None
    issuer: str | None = Field(
        default=None, description="The `iss` every token must carry (unchecked if unset)."
    )
    audience: str = Field(default="llama-stack", description="The `aud` every token must carry.")
    claims_mapping: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_CLAIMS_MAPPING))
    verify_tls: bool = True
    tls_cafile: str | None = None
    # Lamina's.
    algorithms: list[str] = Field(default_factory=lambda: list(ASYMMETRIC_ALGORITHMS))
    leeway_seconds: float = Field(
        default=30.0, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat."
    )

    @field_validator("claims_mapping")
    @classmethod
    def _named_attributes(cls, mapping: dict[str, str]) -> dict[str, str]:
        empty = [claim for claim, attribute in mapping.items() if not attribute]
        if empty:
            raise ValueError(f"claims_mapping maps {empty} to no attribute; name one, e.g. {{sub: roles}}")
        return mapping

    @model_validator(mode="after")
    def _one_method(self) -> OAuth2TokenConfig:
        if (self.jwks is None) == (self.introspection is None):
            raise ValueError("set exactly one of jwks (JWT signature check) or introspection (RFC 7662)")
        bad = [a for a in self.algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if bad:
            raise ValueError(
                f"algorithms {bad} are not allowed: only asymmetric algorithms are checked against a JWKS "
                f"(choose from {', '.join(ASYMMETRIC_ALGORITHMS)})"
            )
        if not self.algorithms:
            raise ValueError("algorithms is empty: list at least one, e.g. [RS256]")
        return self


class CustomAuthConfig(_Strict):
    """``provider_type: custom``: an endpoint of yours decides who the caller is."""

    endpoint: HttpUrl = Field(description="POSTed {api_key, request: {path, headers, params}} per request.")
    # Lamina's.
    timeout_seconds: float = Field(default=5.0, gt=0)
    cache_ttl_seconds: float = Field(
        default=10.0, ge=0, description="How long an accepting answer is reused."
    )


class ApiKeysOnlyConfig(_Strict):
    """``provider_type: api_keys``: Lamina's keys only; ``bootstrap_admin_key`` lets the first admin in."""

    bootstrap_admin_key: str | None = Field(
        default=None,
        min_length=24,
        description="A secret (from an environment variable) accepted as principal 'admin' with the admin "
        "role, to create the first keys; remove it afterwards.",
    )


class AuthConfig(_Strict):
    """``server.auth``."""

    provider_type: AuthProviderType
    config: dict[str, Any] = Field(default_factory=dict)
    access_policy: list[dict[str, Any]] = Field(default_factory=list)
    # Lamina's keys.
    api_keys: bool = Field(
        default=True, description="Accept Lamina API keys (`lam_...`, created at /v1/admin/api-keys) too."
    )
    admin_role: str = Field(
        default="admin", description="The role (attribute `roles`) that may manage API keys."
    )
    open_paths: list[str] = Field(
        default_factory=lambda: list(DEFAULT_OPEN_PATHS), description="Paths served without a token."
    )

    @model_validator(mode="after")
    def _provider_config(self) -> AuthConfig:
        self.provider_config()  # fails here (start-up) rather than on the first request
        return self

    def provider_config(self) -> OAuth2TokenConfig | CustomAuthConfig | ApiKeysOnlyConfig:
        model = {
            AuthProviderType.oauth2_token: OAuth2TokenConfig,
            AuthProviderType.custom: CustomAuthConfig,
            AuthProviderType.api_keys: ApiKeysOnlyConfig,
        }[self.provider_type]
        return model.model_validate(self.config)
