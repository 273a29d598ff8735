"""Authentication (``server.auth``): the config models, the providers (``oauth2_token``, ``custom``,
``api_keys``), the middleware, and the principal every handler can read (``current_principal()``).
docs/security.md is the user's guide."""

from lamina.auth.principal import Principal
from lamina.request_context import PRINCIPAL, current_principal

__all__ = ["PRINCIPAL", "Principal", "current_principal"]
