"""Provider health: the start-up probe, background retries with backoff, and the readiness view.

The server starts whatever its upstreams do. At start-up every provider's ``health()`` is asked at
once, each bounded by ``STARTUP_PROBE_SECONDS``. A provider that answers ``Error`` is marked down,
and so is a remote provider that refused one of the run config's models (the registration is kept
and retried). A down provider is retried in the background (1 s, 2 s, 4 s ... up to
``RETRY_MAX_SECONDS``) until its health is OK and its pending registrations succeed; then it is
marked up again and ``on_recovered`` runs (the stack re-lists its models).

``GET /v1/health`` lists the providers that are down (it stays a 200 liveness answer);
``GET /v1/health/ready`` answers 503 while any is; ``GET /v1/providers[/{id}]`` shows each one's
health with its last error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from lamina.providers.upstream_retry import no_retries
from lamina.tasks import cancel_until_done

log = structlog.get_logger(__name__)

STARTUP_PROBE_SECONDS = 3.0  # one provider's health() at start-up (all providers are asked at once)
CHECK_SECONDS = 3.0  # one provider's health() behind GET /v1/providers
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0


async def _provider_health(impl: Any, limit: float = CHECK_SECONDS) -> dict[str, Any]:
    """``impl.health()`` bounded by ``limit`` seconds; a failure or a timeout is an ``Error``."""
    if not hasattr(impl, "health"):
        return {"status": "Not Implemented"}
    try:
        with no_retries():  # a check answers within its bound: upstream backoffs would outlast it
            async with asyncio.timeout(limit):  # not wait_for: it can lose a cancel (lamina.tasks)
                result = await impl.health()
    except TimeoutError:
        return {"status": "Error", "message": f"health check did not answer within {limit:g}s"}
    except Exception as exc:
        return {"status": "Error", "message": f"{type(exc).__name__}: {exc}"}
    return result if isinstance(result, dict) and "status" in result else {"status": "OK", "detail": result}


@dataclass
class Pending:
    """A run-config registration the provider refused or could not take yet; retried in the background."""

    where: str  # run config key, e.g. models[1]
    identifier: str
    error: str
    register: Callable[[], Awaitable[Any]]


@dataclass
class ProviderState:
    api: str
    health: dict[str, Any] = field(default_factory=lambda: {"status": "Not Implemented"})
    checked_at: float | None = None  # epoch seconds
    last_error: str | None = None
    last_error_at: float | None = None
    pending: dict[str, Pending] = field(default_factory=dict)

    @property
    def down(self) -> bool:
        return self.health.get("status") == "Error" or bool(self.pending)

    def message(self) -> str | None:
        parts = []
        if self.health.get("status") == "Error":
            parts.append(str(self.health.get("message") or "health check failed"))
        parts.extend(
            f"{p.where} '{p.identifier}' is not registered yet (retried in the background): {p.error}"
            for p in self.pending.values()
        )
        return "; ".join(parts) or None

    def view(self) -> dict[str, Any]:
        """The health as shown by GET /v1/providers: Llama Stack's status and message, plus the last
        error and its time once there was one (a provider that never failed shows the plain shape)."""
        out = dict(self.health)
        if self.down:
            out["status"] = "Error"
            out["message"] = self.message()
        if self.last_error is not None:
            out["last_error"] = self.last_error
            out["last_error_at"] = _iso(self.last_error_at)
        return out


class HealthMonitor:
    """The health of every started provider, and one retry loop per provider that is down."""

    def __init__(self, on_recovered: Callable[[str], Awaitable[None]]) -> None:
        self.states: dict[str, ProviderState] = {}
        self.impls: dict[str, Any] = {}
        self.on_recovered = on_recovered
        self.retries: dict[str, asyncio.Task] = {}

    def add(self, provider_id: str, api: str, impl: Any) -> None:
        self.states[provider_id] = ProviderState(api=api)
        self.impls[provider_id] = impl

    async def probe_all(self, limit: float = STARTUP_PROBE_SECONDS) -> None:
        """Ask every provider at once; the slowest bounds the wait (``limit``), not their number."""
        ids = list(self.impls)
        results = await asyncio.gather(*(_provider_health(self.impls[pid], limit) for pid in ids))
        for provider_id, health in zip(ids, results, strict=True):
            self.observe(provider_id, health)

    async def check(self, provider_id: str) -> dict[str, Any]:
        """Ask the provider now (``GET /v1/providers``), bounded by ``CHECK_SECONDS``, and record the
        answer; returns the provider's view."""
        return self.observe(provider_id, await _provider_health(self.impls[provider_id], CHECK_SECONDS))

    def observe(self, provider_id: str, health: dict[str, Any]) -> dict[str, Any]:
        """Record a health answer; start retrying a provider that is down. Returns the provider's view."""
        state = self.states[provider_id]
        state.health = health
        state.checked_at = time.time()
        if health.get("status") == "Error":
            state.last_error = str(health.get("message") or "health check failed")
            state.last_error_at = state.checked_at
        if state.down:
            self._start_retry(provider_id)
        return state.view()

    def defer(self, provider_id: str, pending: Pending) -> None:
        """A run-config registration failed at start-up: keep it, mark the provider down, retry."""
        state = self.states[provider_id]
        state.pending[pending.where] = pending
        state.last_error = f"{pending.where} '{pending.identifier}': {pending.error}"
        state.last_error_at = time.time()
        log.warning(
            "provider_down",
            provider_id=provider_id,
            registration=pending.where,
            identifier=pending.identifier,
            error=pending.error,
        )
        self._start_retry(provider_id)

    def down(self) -> list[dict[str, Any]]:
        """The providers that are down, with why, for the health and readiness views."""
        return [
            {"provider_id": pid, "api": state.api, "message": state.message()}
            for pid, state in sorted(self.states.items())
            if state.down
        ]

    def pending(self, kind: str, identifier: str) -> tuple[str, Pending] | None:
        """(provider_id, registration) of a run-config ``kind`` entry (e.g. models) still waiting."""
        for provider_id, state in sorted(self.states.items()):
            for pending in state.pending.values():
                if pending.where.startswith(f"{kind}[") and pending.identifier == identifier:
                    return provider_id, pending
        return None

    def failing(self) -> set[str]:
        """The providers whose last health check failed (not those only waiting on a registration)."""
        return {pid for pid, state in self.states.items() if state.health.get("status") == "Error"}

    def view(self, provider_id: str) -> dict[str, Any]:
        return self.states[provider_id].view()

    async def stop(self) -> None:
        tasks, self.retries = list(self.retries.values()), {}
        await cancel_until_done(tasks)

    # -- the retry loop ------------------------------------------------------------------------

    def _start_retry(self, provider_id: str) -> None:
        task = self.retries.get(provider_id)
        if task is None or task.done():
            self.retries[provider_id] = asyncio.create_task(
                self._retry(provider_id), name=f"lamina-health-retry-{provider_id}"
            )

    async def _retry(self, provider_id: str) -> None:
        state = self.states[provider_id]
        delay = RETRY_FIRST_SECONDS
        log.info("provider_retry_started", provider_id=provider_id, message=state.message())
        while state.down:
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)
            health = await _provider_health(self.impls[provider_id], CHECK_SECONDS)
            state.health, state.checked_at = health, time.time()
            if health.get("status") == "Error":
                state.last_error = str(health.get("message") or "health check failed")
                state.last_error_at = state.checked_at
                continue
            for where, pending in list(state.pending.items()):
                try:
                    await pending.register()
                except Exception as exc:
                    pending.error = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                    state.last_error, state.last_error_at = f"{where}: {pending.error}", time.time()
                else:
                    del state.pending[where]
                    log.info("registered_after_retry", provider_id=provider_id, registration=where)
        log.info("provider_recovered", provider_id=provider_id)
        try:
            await self.on_recovered(provider_id)
        except Exception as exc:  # a failed re-listing must not kill the monitor
            log.warning("provider_recovery_hook_failed", provider_id=provider_id, error=str(exc))


def _iso(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat() if epoch is not None else None
