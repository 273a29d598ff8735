"""``provider_type: oauth2_token``: JWTs verified with PyJWT against the issuer's JWKS, or opaque tokens
checked by RFC 7662 introspection. Both map claims to attributes with ``claims_mapping``."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import time
from typing import Any

import aiohttp
import jwt
import structlog

from lamina.auth.config import IntrospectionConfig, JWKSConfig, OAuth2TokenConfig
from lamina.auth.errors import unauthorized, verifier_down
from lamina.auth.http_client import AuthHttpClient
from lamina.auth.principal import Principal, attributes_from_claims

log = structlog.get_logger("lamina.auth")


class JWKSCache:
    """The issuer's keys by ``kid``: fetched on first use, again every ``key_recheck_period`` seconds, and
    at once for an unknown ``kid`` (at most every ``unknown_kid_refetch_seconds``: a flood of made-up kids
    cannot turn into a flood of fetches)."""

    def __init__(self, config: JWKSConfig, client: AuthHttpClient, clock=time.monotonic) -> None:
        self.config = config
        self.client = client
        self.clock = clock
        self.keys: dict[str | None, jwt.PyJWK] = {}
        self.fetched_at: float | None = None
        self.fetches = 0
        self._lock = asyncio.Lock()

    def fresh(self) -> bool:
        """Keys are held and younger than ``key_recheck_period``."""
        return self.fetched_at is not None and self.clock() - self.fetched_at < self.config.key_recheck_period

    async def key(self, kid: str | None) -> jwt.PyJWK:
        now = self.clock()
        if self.fetched_at is None or now - self.fetched_at >= self.config.key_recheck_period:
            await self._refresh(stale_at=self.fetched_at)
        if (
            kid not in self.keys
            and self.clock() - (self.fetched_at or 0) >= self.config.unknown_kid_refetch_seconds
        ):
            await self._refresh(stale_at=self.fetched_at)
        found = self.keys.get(kid)
        if found is None:
            raise unauthorized(
                f"the token's signing key (kid {str(kid)[:64]!r}) is not one of the issuer's keys"
            )
        return found

    async def _refresh(self, stale_at: float | None) -> None:
        async with self._lock:
            if self.fetched_at != stale_at:  # another request refreshed while this one waited
                return
            uri = str(self.config.uri)
            try:
                timeout = aiohttp.ClientTimeout(total=self.config.timeout_seconds)
                headers = {"Authorization": f"Bearer {self.config.token}"} if self.config.token else None
                async with self.client.session().get(uri, timeout=timeout, headers=headers) as resp:
                    if resp.status != 200:
                        raise ValueError(f"HTTP {resp.status}")
                    document = await resp.json(content_type=None)
                keys = jwt.PyJWKSet.from_dict(document)
            except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWKSetError, jwt.PyJWKError) as exc:
                # Fail closed: stale keys are dropped too (a key the issuer withdrew must stop working).
                self.keys = {}
                self.fetched_at = None
                log.warning("jwks_fetch_failed", uri=uri, error=f"{type(exc).__name__}: {exc}"[:300])
                raise verifier_down("the issuer's key set (JWKS)") from None
            self.keys = {k.key_id: k for k in keys.keys}
            self.fetched_at = self.clock()
            self.fetches += 1
            log.info("jwks_fetched", uri=uri, keys=len(self.keys))


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, for its ``alg`` and ``kid`` (PyJWT's own parser checks every character in Python:
    ~250 µs); ``jwt.decode`` then checks the whole token strictly."""
    head, dot, _rest = token.partition(".")
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))) if dot else None
    except (ValueError, binascii.Error):
        header = None
    if not isinstance(header, dict):
        raise unauthorized("the bearer token is not a well-formed JWT")
    return header


class OAuth2TokenAuth:
    def __init__(self, config: OAuth2TokenConfig) -> None:
        self.config = config
        self.client = AuthHttpClient(verify_tls=config.verify_tls, cafile=config.tls_cafile)
        self.jwks = JWKSCache(config.jwks, self.client) if config.jwks else None
        # token -> (principal, its exp, the JWKS fetch it was verified with)
        self._verified: dict[str, tuple[Principal, float, int]] = {}
        # sha256(token) -> (principal, expires at monotonic time)
        self._introspected: dict[str, tuple[Principal, float]] = {}

    async def close(self) -> None:
        await self.client.close()

    async def authenticate(self, token: str, request: Any) -> Principal:
        if self.jwks is not None:
            return await self._verify_jwt(token)
        return await self._introspect(token)

    # -- JWT ---------------------------------------------------------------------------------------

    async def _verify_jwt(self, token: str) -> Principal:
        # A token verified with the current key set, and not expired since, verifies again: skip the
        # parsing and the signature check (PyJWT spends ~700 µs of CPU on them). Refetched keys, or keys
        # past their recheck period, empty the cache in effect (the fetch count differs, or fresh() fails).
        hit = self._verified.get(token)
        if hit is not None and hit[2] == self.jwks.fetches and self.jwks.fresh() and time.time() < hit[1]:
            return hit[0]
        header = _unverified_header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.config.algorithms:
            raise unauthorized(
                f"the token's algorithm {str(alg)[:16]!r} is not accepted (accepted: "
                f"{', '.join(self.config.algorithms)})"
            )
        kid = header.get("kid")
        key = await self.jwks.key(kid if isinstance(kid, str) else None)
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_seconds,
                options={"require": ["exp", "sub"], "verify_iss": self.config.issuer is not None},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("the token has expired; get a new one") from None
        except jwt.ImmatureSignatureError:
            raise unauthorized("the token is not valid yet (nbf/iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise unauthorized(f"the token's audience is not {self.config.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise unauthorized(f"the token's issuer is not {self.config.issuer!r}") from None
        except jwt.MissingRequiredClaimError as exc:
            raise unauthorized(f"the token has no {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise unauthorized("the token's signature does not verify") from None
        except jwt.PyJWTError as exc:  # InvalidTokenError, and InvalidKeyError (alg and key types differ)
            raise unauthorized(f"the token is invalid ({type(exc).__name__})") from None
        principal = Principal(
            id=str(claims["sub"]),
            attributes=attributes_from_claims(claims, self.config.claims_mapping),
            via="jwt",
        )
        if len(self._verified) >= 10_000:
            self._verified.clear()
        self._verified[token] = (principal, float(claims["exp"]), self.jwks.fetches)
        return principal

    # -- introspection (RFC 7662) ------------------------------------------------------------------

    async def _introspect(self, token: str) -> Principal:
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        cached = self._introspected.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        cfg: IntrospectionConfig = self.config.introspection
        form = {"token": token, "token_type_hint": "access_token"}
        auth = None
        if cfg.send_secret_in_body:
            form.update(client_id=cfg.client_id, client_secret=cfg.client_secret)
        else:
            auth = aiohttp.BasicAuth(cfg.client_id, cfg.client_secret)
        try:
            timeout = aiohttp.ClientTimeout(total=cfg.timeout_seconds)
            async with self.client.session().post(
                str(cfg.url), data=form, auth=auth, timeout=timeout
            ) as resp:
                if resp.status != 200:
                    raise ValueError(f"HTTP {resp.status}")
                answer = await resp.json(content_type=None)
            if not isinstance(answer, dict):
                raise ValueError("the answer is not a JSON object")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("introspection_failed", url=str(cfg.url), error=f"{type(exc).__name__}: {exc}"[:300])
            raise verifier_down("the token introspection endpoint") from None
        if answer.get("active") is not True:
            raise unauthorized("the token is not active (expired, revoked or unknown to the issuer)")
        wall = time.time()
        exp = answer.get("exp")
        if isinstance(exp, (int, float)) and exp <= wall - self.config.leeway_seconds:
            raise unauthorized("the token has expired; get a new one")
        if self.config.audience and "aud" in answer:
            aud = answer["aud"] if isinstance(answer["aud"], list) else [answer["aud"]]
            if self.config.audience not in aud:
                raise unauthorized(f"the token's audience is not {self.config.audience!r}")
        if self.config.issuer and answer.get("iss") not in (None, self.config.issuer):
            raise unauthorized(f"the token's issuer is not {self.config.issuer!r}")
        subject = answer.get("sub") or answer.get("username")
        if not subject:
            raise unauthorized("the introspected token names no subject (sub or username)")
        principal = Principal(
            id=str(subject),
            attributes=attributes_from_claims(answer, self.config.claims_mapping),
            via="introspection",
        )
        ttl = cfg.cache_ttl_seconds
        if isinstance(exp, (int, float)):
            ttl = min(ttl, exp - wall)
        if ttl > 0:
            if len(self._introspected) > 10_000:
                self._introspected.clear()
            self._introspected[digest] = (principal, now + ttl)
        return principal
