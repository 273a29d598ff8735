"""What a client is (its principal, or its address when anonymous) and its counts per window in the
quota kvstore, shared by the request quota and the token budgets."""

from __future__ import annotations

import asyncio
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
    return anonymous_client(request)


def anonymous_client(request: web.Request) -> Client:
    """A caller without credentials, counted by its address. As Llama Stack: the peer's address (a proxy
    in front should authenticate, or every client behind it shares one count: X-Forwarded-For is not
    trusted, any client could send it)."""
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


@dataclass
class _Batch:
    """The additions to one key waiting for the next increment of it."""

    expiration: datetime
    amount: int = 0
    done: asyncio.Future[int] | None = None  # the key's value once this batch is in the store


class QuotaCounter:
    """Counts in the quota's kvstore, one key per client, count kind and window (expiring with it).

    Additions to one key are coalesced: while an increment of a key is in the store's hands, the
    additions that arrive join one batch, written by the next increment (a client at 16 requests in
    flight costs a few writes, not 16). Each addition still sees its own count, as if the increments
    had been made one by one: the batch's result less what was added after it in the batch.
    """

    def __init__(self, config: QuotaConfig, kv: KVStore) -> None:
        self.config = config
        self.kv = kv
        self._batches: dict[str, _Batch] = {}  # key -> additions not yet handed to the store
        self._writers: dict[str, asyncio.Task[None]] = {}

    async def add(self, kind: str, client: Client, amount: int, window: Window) -> int:
        key = f"quota:{kind}:{window.index}:{client.key}"
        batch = self._batches.get(key)
        if batch is None:
            batch = self._batches[key] = _Batch(window.expiration)
            batch.done = asyncio.get_running_loop().create_future()
        assert batch.done is not None
        batch.amount += amount
        after_me = batch.amount  # this addition's count is the batch's result less what joins later
        if key not in self._writers:
            self._writers[key] = asyncio.ensure_future(self._write(key))
        total = await asyncio.shield(batch.done)
        return total - (batch.amount - after_me)

    async def _write(self, key: str) -> None:
        try:
            while (batch := self._batches.pop(key, None)) is not None:
                assert batch.done is not None
                try:
                    value = await self.kv.increment(key, batch.amount, batch.expiration)
                except asyncio.CancelledError:  # shutting down: its requests end with it
                    batch.done.cancel()
                    raise
                except Exception as exc:  # every addition of the batch fails with it (a 500 naming the store)
                    batch.done.set_exception(exc)
                    batch.done.exception()  # retrieved: its requests may have gone
                else:
                    batch.done.set_result(value)
        finally:
            del self._writers[key]

    async def get(self, kind: str, client: Client, window: Window) -> int:
        value = await self.kv.get(f"quota:{kind}:{window.index}:{client.key}")
        return int(value) if value else 0


class QuotaExceeded(RateLimitError):
    """A client's quota is spent: ``quota`` names the setting, ``Retry-After`` says when it refills."""

    error_type = "rate_limit_error"

    def __init__(self, message: str, *, quota: str, retry_after: int, **extra: object) -> None:
        super().__init__(message, param=None, quota=quota, **extra)
        self.headers["Retry-After"] = str(retry_after)
