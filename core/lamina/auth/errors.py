"""The answers of a failed authentication: 401 with ``WWW-Authenticate`` (RFC 6750), 503 when the
server that vouches for tokens cannot be reached (fail closed: never let the request through)."""

from __future__ import annotations

import re

from lamina.errors import ServiceUnavailableError, UnauthorizedError

REALM = "lamina"
_UNSAFE = re.compile(r"[^\x20-\x7e]")


def unauthorized(description: str, *, error: str | None = "invalid_token") -> UnauthorizedError:
    """A 401 saying what is wrong with the credentials (never echoing them)."""
    exc = UnauthorizedError(description, param="Authorization")
    challenge = f'Bearer realm="{REALM}"'
    if error:  # RFC 6750 3.1: no error code when the request carried no credentials at all
        # A header value: printable ASCII only, no quote (the description may quote a token's kid or alg).
        safe = _UNSAFE.sub("?", description).replace('"', "'")
        challenge += f', error="{error}", error_description="{safe}"'
    exc.headers["WWW-Authenticate"] = challenge
    return exc


def verifier_down(what: str) -> ServiceUnavailableError:
    """A 503: the token could not be checked, so the request is refused (the log says why)."""
    return ServiceUnavailableError(
        f"the token could not be verified: {what} is unavailable; retry later", retry_after=5
    )
