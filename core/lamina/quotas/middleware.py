"""The quota middleware: requests in flight per client (this process) and requests per period per
client (counted in the quota kvstore, shared by the replicas that share it). It runs after the auth
middleware, so an authenticated request counts against its principal, an anonymous one against its
address (Llama Stack's keys). A refused request is a 429 with ``Retry-After`` naming the quota."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import structlog
from aiohttp import web

from lamina.quotas.config import QuotaConfig
from lamina.quotas.counting import (
    Client,
    QuotaCounter,
    QuotaExceeded,
    anonymous_client,
    client_of,
    current_window,
)
from lamina.quotas.token_budgets import BUDGET_CONTEXT, TokenBudgets
from lamina.storage import open_kvstore

log = structlog.get_logger("lamina.quotas")

QUOTA_COUNTER: web.AppKey[QuotaCounter] = web.AppKey("quota_counter")
TOKEN_BUDGETS: web.AppKey[TokenBudgets] = web.AppKey("token_budgets")


class InFlight:
    """Requests in flight per client in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts: dict[str, int] = {}

    def enter(self, client: Client) -> None:
        held = self.counts.get(client.key, 0)
        if held >= self.limit:
            raise QuotaExceeded(
                f"too many requests in flight: this client already has {held} (the limit, "
                f"server.quota.max_concurrent_requests); wait for one to finish, then retry",
                quota="max_concurrent_requests",
                retry_after=1,
                limit=self.limit,
            )
        self.counts[client.key] = held + 1

    def leave(self, client: Client) -> None:
        held = self.counts[client.key] - 1
        if held:
            self.counts[client.key] = held
        else:
            del self.counts[client.key]


def quota_middleware(config: QuotaConfig):
    exempt = frozenset(config.exempt_paths)
    in_flight = InFlight(config.max_concurrent_requests) if config.max_concurrent_requests else None

    @web.middleware
    async def middleware(request: web.Request, handler):
        if request.path in exempt:
            return await handler(request)
        client = client_of(request)
        if in_flight is not None:
            in_flight.enter(client)
        try:
            await _count_request(request.app[QUOTA_COUNTER], client)
            if config.token_budgets:
                BUDGET_CONTEXT.set((request.app[TOKEN_BUDGETS], client))
            return await handler(request)
        finally:
            if in_flight is not None:
                in_flight.leave(client)

    return middleware


async def _count_request(counter: QuotaCounter, client: Client) -> None:
    setting = "authenticated_max_requests" if client.authenticated else "anonymous_max_requests"
    who = "this principal" if client.authenticated else "this client address (no credentials sent)"
    await _count(
        counter,
        "requests",
        client,
        setting,
        "quota_exceeded",
        lambda limit, period, retry_after: (
            f"request quota exceeded: {limit} requests per {period} for {who} "
            f"(server.quota.{setting}); the quota refills in {retry_after} s (Retry-After)"
        ),
    )


async def count_failed_authentication(request: web.Request) -> None:
    """Count a request that failed authentication against its address, when the server has a quota:
    past ``anonymous_max_requests`` failures in a period the client gets 429s instead of 401s (guessing
    credentials, or making a ``custom`` auth endpoint answer one call per bad token, stays bounded).
    Failures have a count of their own, apart from the address's anonymous requests."""
    counter = request.app.get(QUOTA_COUNTER)
    if counter is None:
        return
    await _count(
        counter,
        "failed_auth",
        anonymous_client(request),
        "anonymous_max_requests",
        "failed_authentications_exceeded",
        lambda limit, period, retry_after: (
            f"too many failed authentications from this client address: {limit} per {period} "
            f"(server.quota.anonymous_max_requests); send valid credentials after {retry_after} s "
            "(Retry-After)"
        ),
    )


async def _count(
    counter: QuotaCounter,
    what: str,
    client: Client,
    setting: str,
    event: str,
    message: Callable[[int, str, int], str],
) -> None:
    """One more ``what`` for ``client`` in the current window; past ``server.quota.<setting>`` a 429 whose
    text is ``message(limit, period, retry_after)``."""
    config, now = counter.config, time.time()
    window = current_window(config, now)
    count = await counter.add(what, client, 1, window)
    limit = getattr(config, setting)
    if count > limit:
        retry_after = window.retry_after(now)
        log.warning(event, quota=setting, client=client.key, count=count, limit=limit)
        raise QuotaExceeded(
            message(limit, config.period.value, retry_after),
            quota=setting,
            retry_after=retry_after,
            limit=limit,
            period=config.period.value,
        )


def quota_lifecycle(config: QuotaConfig):
    """The app's cleanup context: the quota kvstore opens before requests are served and closes after."""

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        kv = await open_kvstore(config.kvstore)
        app[QUOTA_COUNTER] = counter = QuotaCounter(config, kv)
        app[TOKEN_BUDGETS] = TokenBudgets(counter)
        try:
            yield
        finally:
            await kv.close()

    return lifecycle
