"""What a client is (its principal, or its address when anonymous) and its counts per window in the
quota kvstore, shared by the request quota and the token budgets."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from lamina.errors import RateLimitError
from lamina.quotas.config import QuotaConfig
from lamina.request_context import current_principal
from lamina.storage import KVStore


@dataclass(frozen=True)
class Client:
    """Who a quota counts: ``key`` is ``user:<principal id>`` or ``anon:<client address>``."""

    key: str
    authenticated: bool


def client_of(request: web.Request) -> Client:
    principal = current_principal()
    if principal is not None:
        return Client(f"user:{principal.id}", True)
    # As Llama Stack: the peer's address (a proxy in front should authenticate, or every client behind
    # it shares one count: X-Forwarded-For is not trusted, any client could send it).
    return Client(f"anon:{request.remote or 'unknown'}", False)


@dataclass(frozen=True)
class Window:
    index: int
    ends_at: float

    def retry_after(self, now: float) -> int:
        return max(1, math.ceil(self.ends_at - now))

    @property
    def expiration(self) -> datetime:
        return datetime.fromtimestamp(self.ends_at, UTC)


def current_window(config: QuotaConfig, now: float | None = None) -> Window:
    seconds = config.period.seconds
    now = time.time() if now is None else now
    index = int(now // seconds)
    return Window(index, (index + 1) * seconds)


class QuotaCounter:
    """Counts in the quota's kvstore, one key per client, count kind and window (expiring with it)."""

    def __init__(self, config: QuotaConfig, kv: KVStore) -> None:
        self.config = config
        self.kv = kv

    async def add(self, kind: str, client: Client, amount: int, window: Window) -> int:
        return await self.kv.increment(f"quota:{kind}:{window.index}:{client.key}", amount, window.expiration)

    async def get(self, kind: str, client: Client, window: Window) -> int:
        value = await self.kv.get(f"quota:{kind}:{window.index}:{client.key}")
        return int(value) if value else 0


class QuotaExceeded(RateLimitError):
    """A client's quota is spent: ``quota`` names the setting, ``Retry-After`` says when it refills."""

    error_type = "rate_limit_error"

    def __init__(self, message: str, *, quota: str, retry_after: int, **extra: object) -> None:
        super().__init__(message, param=None, quota=quota, **extra)
        self.headers["Retry-After"] = str(retry_after)
