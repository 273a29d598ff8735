"""Per-request context (contextvars): request id, the caller (principal), its provider data, the work's class.

Provider data is Llama Stack's ``X-LlamaStack-Provider-Data`` header: a JSON object of per-request
provider settings (``{"openai_api_key": "..."}``). The server middleware parses it and validates it
with the model every configured provider declares (``ProviderSpec.provider_data_validator``) before
the request reaches a handler, so a malformed header is a 400; a provider then reads its settings with
``request_provider_data(ItsValidator)``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel

if TYPE_CHECKING:  # lamina.auth imports this module: no import cycle at run time
    from lamina.auth.principal import Principal

M = TypeVar("M", bound=BaseModel)

PROVIDER_DATA_HEADER = "X-LlamaStack-Provider-Data"
REQUEST_ID: ContextVar[str | None] = ContextVar("lamina_request_id", default=None)
PROVIDER_DATA: ContextVar[dict[str, Any] | None] = ContextVar("lamina_provider_data", default=None)
# Validator class -> the header validated by it (filled by the middleware for configured providers).
VALIDATED_PROVIDER_DATA: ContextVar[dict[type, BaseModel] | None] = ContextVar(
    "lamina_validated_provider_data", default=None
)

# Who is calling (lamina.auth.middleware sets it); None when server.auth is off or on an open path.
PRINCIPAL: ContextVar[Principal | None] = ContextVar("lamina_principal", default=None)


def current_principal() -> Principal | None:
    """The authenticated caller of the current request (None when auth is off or the path is open)."""
    return PRINCIPAL.get()


# The principal whose traces a telemetry query may answer with (None: every trace). Access control sets
# it for a caller the policy does not let read all traces (telemetry::traces): such a caller sees the
# traces of its own requests, those with a span whose ``enduser.id`` is its id (the auth middleware puts
# it on each request's SERVER span). A telemetry provider's trace queries honour it.
TRACES_OF: ContextVar[str | None] = ContextVar("lamina_traces_of", default=None)
TRACE_OWNER_ATTRIBUTE = "enduser.id"


# Whose work a provider call is: "interactive" (a client waits on it: every HTTP request) or "batch"
# (background work: a batch's lines, batch agents, eval rows). Provider limits serve interactive calls
# first, so a batch never starves the clients waiting on the same provider or model.
WorkClass = Literal["interactive", "batch"]
WORK_CLASS: ContextVar[WorkClass] = ContextVar("lamina_work_class", default="interactive")


class InteractiveLoad:
    """How many client requests this server is answering now (the core middleware counts every HTTP
    request). Batch work narrows to one line at a time while any is in flight (lamina.routers.batch_lines):
    on one event loop, a batch's many lines in flight would otherwise delay every interactive answer by
    their CPU (measured: p50 2.5 -> 17 ms with 16 lines in flight, docs/benchmarks.md "Batches"). That
    one line starts in a lull between client requests (:meth:`lull`), or after LONGEST_WAIT_SECONDS
    of waiting for one, so a batch neither competes with every request nor stops under constant traffic."""

    # A client sending requests one after another leaves gaps of a fraction of a millisecond between
    # them: the batch widens again only after this long without any client request in flight.
    GRACE_SECONDS = 0.1
    # The one line still running under client traffic starts when no client request has been in flight
    # for LULL_SECONDS, or at the latest after LONGEST_WAIT_SECONDS (a batch still makes progress while
    # clients never pause: one line per such wait at least).
    LULL_SECONDS = 0.002
    LONGEST_WAIT_SECONDS = 0.05

    def __init__(self) -> None:
        self.in_flight = 0
        self.last_ended = 0.0  # time.monotonic() when the last client request ended
        self._idle_waiters: list[asyncio.Future[None]] = []

    def started(self) -> None:
        self.in_flight += 1

    def ended(self) -> None:
        self.in_flight -= 1
        self.last_ended = time.monotonic()
        if self.in_flight <= 0 and self._idle_waiters:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def busy(self) -> bool:
        """A client request is in flight, or ended less than GRACE_SECONDS ago."""
        return self.in_flight > 0 or time.monotonic() - self.last_ended < self.GRACE_SECONDS

    async def lull(self) -> None:
        """Return once no client request has been in flight for LULL_SECONDS, or after
        LONGEST_WAIT_SECONDS, whichever comes first."""
        deadline = time.monotonic() + self.LONGEST_WAIT_SECONDS
        while (now := time.monotonic()) < deadline:
            if self.in_flight <= 0:
                quiet_for = now - self.last_ended
                if quiet_for >= self.LULL_SECONDS:
                    return
                await asyncio.sleep(min(self.LULL_SECONDS - quiet_for, deadline - now))
                continue
            waiter = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(waiter)
            try:
                async with asyncio.timeout(deadline - now):
                    await waiter
            except TimeoutError:
                return
            finally:
                if waiter in self._idle_waiters:
                    self._idle_waiters.remove(waiter)


INTERACTIVE = InteractiveLoad()


@contextmanager
def batch_work() -> Iterator[None]:
    """Provider calls made inside the block are background work (``WORK_CLASS`` "batch")."""
    token = WORK_CLASS.set("batch")
    try:
        yield
    finally:
        WORK_CLASS.reset(token)


def provider_data() -> dict[str, Any]:
    """The ``X-LlamaStack-Provider-Data`` JSON of the current request, unvalidated (empty outside one)."""
    return PROVIDER_DATA.get() or {}


def request_provider_data(validator: type[M]) -> M | None:
    """The current request's provider data as ``validator`` reads it; None without the header.

    ``validator`` is the class a provider's ``ProviderSpec.provider_data_validator`` names: the
    middleware validated the header with it already (a malformed header never gets here). A class no
    configured provider declares is validated now (a ``pydantic.ValidationError`` if it fails).
    """
    raw = PROVIDER_DATA.get()
    if raw is None:
        return None
    validated = VALIDATED_PROVIDER_DATA.get()
    found = validated.get(validator) if validated is not None else None
    return found if found is not None else validator.model_validate(raw)
