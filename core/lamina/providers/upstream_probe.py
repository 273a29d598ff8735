"""Whether a remote provider's upstream is up, known from short, bounded probes.

A remote provider asks its upstream one cheap question (OpenAI's ``GET models``, Ollama's
``GET /api/tags``), bounded by ``PROBE_SECONDS``, at start-up, from ``health()`` and before a
model is checked. An upstream that is unreachable, accepts connections and stays silent, or
answers 5xx is *down*; one that answers 4xx (401, 429) is up, so a per-request key is not refused
early. While it is known down, requests fail at once with the probe's reason, re-probing at most
every ``RECHECK_SECONDS`` (concurrent requests share one re-probe), instead of each waiting out the
read timeout. Messages name the provider, never the upstream's address.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from lamina.errors import LaminaError, UpstreamError
from lamina.providers.upstream_retry import no_retries

T = TypeVar("T")

PROBE_SECONDS = 2.0  # one probe: start-up, health and model checks never wait longer on a silent upstream
RECHECK_SECONDS = 1.0  # while down, a request re-probes at most this often (else it fails at once)


class UpstreamProbe(Generic[T]):
    """The last probe of one provider's upstream: ``down`` holds why it failed (None: it answered)."""

    def __init__(
        self,
        provider_id: str,
        ask: Callable[[], Awaitable[T]],
        question: str,
        *,
        timeout: float = PROBE_SECONDS,
        recheck: float = RECHECK_SECONDS,
    ) -> None:
        self.provider_id = provider_id
        self.ask = ask
        self.question = question  # e.g. "GET models", shown in the timeout message
        self.timeout = timeout
        self.recheck = recheck
        self.down: LaminaError | None = None
        self.probed_at = 0.0
        self._lock = asyncio.Lock()

    async def probe(self) -> T:
        """Ask the upstream, bounded by ``timeout``; record whether it is down and raise if it failed."""
        try:
            with no_retries():  # a probe says "down" within its bound; backoffs would outlast it
                async with asyncio.timeout(self.timeout):  # not wait_for: it can lose a cancel (lamina.tasks)
                    answer = await self.ask()
        except TimeoutError:
            self.down = UpstreamError(
                self.provider_id,
                f"the upstream accepts connections but did not answer {self.question} within "
                f"{self.timeout:g} s; requests are refused until it answers",
            )
            raise self.down from None
        except LaminaError as exc:
            status = getattr(exc, "upstream_status", None)
            answered = not isinstance(exc, UpstreamError) or (status is not None and status < 500)
            self.down = None if answered else exc
            raise
        finally:
            self.probed_at = time.monotonic()  # when the answer (or its absence) was known
        self.down = None
        return answer

    def recently_down(self) -> LaminaError | None:
        """Why the upstream is down, if a probe under ``recheck`` seconds old said so."""
        if self.down is not None and time.monotonic() - self.probed_at < self.recheck:
            return self.down
        return None

    async def ensure_up(self) -> None:
        """Before a request: return at once when up; while down, fail fast or re-probe (shared)."""
        if self.down is None:
            return
        async with self._lock:
            if (down := self.recently_down()) is not None:
                raise down
            if self.down is not None:
                await self.probe()

    async def health(self) -> dict[str, Any]:
        """A provider's ``health()`` answer from a fresh probe."""
        try:
            await self.probe()
        except LaminaError as exc:
            return {"status": "Error", "message": exc.message}
        return {"status": "OK"}
