"""Admission of provider calls under a provider's limits: interactive calls first, then batch calls.

A :class:`ProviderLimiter` holds one :class:`Gate` for the provider and one per model named under
``limits.models``. A call waits in its class's queue (``lamina.request_context.WORK_CLASS``) until
its model's gate and the provider's gate both let it in. Each time a slot frees or a rate window
moves, the queues are scanned: interactive calls first, each model's calls in arrival order, the
oldest head first. A call held back by its own model's limit lets calls for other models pass; a
call held back by the provider's limit holds back everything behind it, so a batch call never
takes a slot a waiting interactive call could have had. A batch call held back by ``batch_max_share``
holds back only batch calls. A call that waits longer than ``max_queue_seconds`` fails with a 429
whose ``Retry-After`` estimates when a slot frees and whose message names the provider, the model
and the limit.

Rate limits count calls (and inference tokens) that started in the last 60 seconds (a sliding
window). The scans are O(models) per admitted call, whatever the queue's length.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from lamina.errors import RateLimitError
from lamina.limits.settings import Limit, ProviderLimits

log = structlog.get_logger(__name__)

WINDOW_SECONDS = 60.0
INTERACTIVE, BATCH = "interactive", "batch"


@dataclass(frozen=True)
class Block:
    """Why a call cannot start now: the setting, its value, and when it may (None: when a call ends)."""

    setting: str
    value: int
    scope: str
    wait: float | None
    batch_share: bool = False  # held back only because batch work has its share


class Window:
    """Amounts (calls, tokens) started in the last WINDOW_SECONDS, the batch ones apart."""

    __slots__ = ("batch_cap", "batch_total", "entries", "limit", "total")

    def __init__(self, limit: int, batch_share: float | None) -> None:
        self.limit = limit
        self.batch_cap = max(1, math.floor(limit * batch_share)) if batch_share else limit
        self.entries: deque[list] = deque()  # [started, amount, batch]
        self.total = 0
        self.batch_total = 0

    def _prune(self, now: float) -> None:
        horizon = now - WINDOW_SECONDS
        entries = self.entries
        while entries and entries[0][0] <= horizon:
            _, amount, batch = entries.popleft()
            self.total -= amount
            if batch:
                self.batch_total -= amount

    def wait(self, now: float, amount: int, batch: bool) -> tuple[float | None, bool]:
        """(None, _) if ``amount`` fits now; else (seconds until it may, whether only the batch cap holds
        it). A call larger than the whole limit goes when nothing else is in the window."""
        self._prune(now)
        need = self.total + amount - self.limit if self.total else 0
        need_batch = self.batch_total + amount - self.batch_cap if batch and self.batch_total else 0
        if need <= 0 and need_batch <= 0:
            return None, False
        freed = freed_batch = 0
        for started, entry_amount, entry_batch in self.entries:
            freed += entry_amount
            if entry_batch:
                freed_batch += entry_amount
            if freed >= need and freed_batch >= need_batch:
                return max(started + WINDOW_SECONDS - now, 0.001), need <= 0
        return WINDOW_SECONDS, need <= 0

    def add(self, now: float, amount: int, batch: bool) -> list:
        entry = [now, amount, batch]
        self.entries.append(entry)
        self.total += amount
        if batch:
            self.batch_total += amount
        return entry

    def adjust(self, entry: list, amount: int) -> None:
        """Correct an entry still in the window (a call's tokens, once its answer says them)."""
        if not self.entries or entry[0] < self.entries[0][0]:
            return  # already out of the window
        delta = amount - entry[1]
        entry[1] = amount
        self.total += delta
        if entry[2]:
            self.batch_total += delta


class Gate:
    """The limits of one scope (a provider, or one of its models) and what is in use of them."""

    def __init__(self, scope: str, where: str, limit: Limit, batch_share: float | None) -> None:
        self.scope = scope  # "provider 'vllm'" or "model 'm' of provider 'vllm'"
        self.where = where  # the run config key of these limits, for messages
        self.max_concurrent = limit.max_concurrent
        self.batch_concurrent = (
            max(1, math.floor(limit.max_concurrent * batch_share))
            if limit.max_concurrent and batch_share
            else limit.max_concurrent
        )
        self.requests = Window(limit.requests_per_minute, batch_share) if limit.requests_per_minute else None
        self.tokens = Window(limit.tokens_per_minute, batch_share) if limit.tokens_per_minute else None
        self.in_flight = 0
        self.batch_in_flight = 0
        self.held_seconds = 1.0  # moving average of how long a call holds a slot: the Retry-After estimate

    def blocked(self, now: float, batch: bool, tokens: int) -> Block | None:
        if self.max_concurrent is not None:
            if self.in_flight >= self.max_concurrent:
                return Block("max_concurrent", self.max_concurrent, self.scope, None)
            if batch and self.batch_in_flight >= self.batch_concurrent:
                return Block("max_concurrent", self.max_concurrent, self.scope, None, batch_share=True)
        for setting, window, amount in (
            ("requests_per_minute", self.requests, 1),
            ("tokens_per_minute", self.tokens, tokens),
        ):
            if window is not None:
                wait, batch_only = window.wait(now, amount, batch)
                if wait is not None:
                    return Block(setting, window.limit, self.scope, wait, batch_share=batch_only)
        return None

    def take(self, now: float, batch: bool, tokens: int) -> list | None:
        """Count a call in; the token window's entry (to correct later) if tokens are counted."""
        self.in_flight += 1
        if batch:
            self.batch_in_flight += 1
        if self.requests is not None:
            self.requests.add(now, 1, batch)
        return self.tokens.add(now, tokens, batch) if self.tokens is not None else None

    def release(self, batch: bool, held: float) -> None:
        self.in_flight -= 1
        if batch:
            self.batch_in_flight -= 1
        self.held_seconds = 0.8 * self.held_seconds + 0.2 * held


class Waiter:
    __slots__ = ("batch", "future", "gone", "key", "model_gate", "model_id", "seq", "timer", "tokens")

    def __init__(
        self, seq: int, model_id: str | None, model_gate: Gate | None, batch: bool, tokens: int
    ) -> None:
        self.seq = seq
        self.model_id = model_id
        self.key = model_id if model_gate is not None else None  # its queue: one per model with limits
        self.model_gate = model_gate
        self.batch = batch
        self.tokens = tokens
        self.future: asyncio.Future[Permit] = asyncio.get_running_loop().create_future()
        self.gone = False  # timed out or cancelled: skipped by the scan
        self.timer: asyncio.TimerHandle | None = None


class Permit:
    """One admitted call: release it when the call (or its stream) ends; ``settle_tokens`` when the
    answer says how many tokens it used."""

    __slots__ = ("batch", "gates", "limiter", "released", "started", "token_entries")

    def __init__(self, limiter: ProviderLimiter, gates: list[Gate], batch: bool, entries: list) -> None:
        self.limiter = limiter
        self.gates = gates
        self.batch = batch
        self.token_entries = entries  # (gate, entry) of each token window counted
        self.started = limiter.clock()
        self.released = False

    def settle_tokens(self, tokens: int) -> None:
        for gate, entry in self.token_entries:
            gate.tokens.adjust(entry, tokens)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        held = self.limiter.clock() - self.started
        for gate in self.gates:
            gate.release(self.batch, held)
        self.limiter.dispatch()


class ProviderLimiter:
    """The limits of one provider (``providers.<api>[i].limits``) and the calls waiting on them."""

    def __init__(
        self,
        api: str,
        provider_id: str,
        settings: ProviderLimits,
        where: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.provider_id = provider_id
        self.settings = settings
        self.clock = clock
        share = settings.batch_max_share
        scope = f"provider '{provider_id}'"
        self.gate = Gate(scope, where, settings, share) if settings.is_set() else None
        self.models = {
            model_id: Gate(
                f"model '{model_id}' of {scope}",
                f"{where}.models.{model_id}",
                limit,
                limit.batch_max_share if limit.batch_max_share is not None else share,
            )
            for model_id, limit in settings.models.items()
            if limit.is_set()
        }
        self.counts_tokens = settings.counts_tokens()
        # Work class -> model key (None: a model without limits of its own) -> waiters, oldest first.
        self.queues: dict[str, dict[str | None, deque[Waiter]]] = {INTERACTIVE: {}, BATCH: {}}
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._dispatching = False
        self._again = False

    async def acquire(self, model_id: str | None, batch: bool, tokens: int = 0) -> Permit:
        """Wait for a slot for a call on ``model_id``; a RateLimitError (429) after the queue's time."""
        model_gate = self.models.get(model_id) if model_id is not None else None
        waiter = Waiter(next(self._seq), model_id, model_gate, batch, tokens)
        self.queues[BATCH if batch else INTERACTIVE].setdefault(waiter.key, deque()).append(waiter)
        self.dispatch()
        if waiter.future.done():
            return waiter.future.result()
        patience = self.settings.batch_max_queue_seconds if batch else self.settings.max_queue_seconds
        if patience is not None:
            waiter.timer = asyncio.get_running_loop().call_later(patience, self._expire, waiter, patience)
        try:
            return await waiter.future
        except asyncio.CancelledError:
            # The caller went away: a slot granted meanwhile goes to the next call.
            future = waiter.future
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().release()
            self._forget(waiter)
            raise

    def dispatch(self) -> None:
        """Admit every waiting call that may start now, interactive first."""
        if self._dispatching:  # a release during a scan (a stream collected mid-scan): scan again after it
            self._again = True
            return
        self._dispatching = True
        try:
            self._again = True
            while self._again:
                self._again = False
                self._scan()
        finally:
            self._dispatching = False

    def _scan(self) -> None:
        now = self.clock()
        next_check = math.inf
        for work in (INTERACTIVE, BATCH):
            queues = self.queues[work]
            held: set[str | None] = set()  # model queues whose head waits on its model's limit
            while True:
                head = self._oldest_head(queues, held)
                if head is None:
                    break
                block = head.model_gate.blocked(now, head.batch, head.tokens) if head.model_gate else None
                if block is not None:
                    held.add(head.key)
                    next_check = min(next_check, block.wait if block.wait is not None else math.inf)
                    continue
                block = self.gate.blocked(now, head.batch, head.tokens) if self.gate is not None else None
                if block is not None:
                    next_check = min(next_check, block.wait if block.wait is not None else math.inf)
                    if block.batch_share:
                        break  # batch work has its share: interactive calls were served above
                    self._check_at(now, next_check)
                    return  # the provider is full: nothing behind this call goes first
                self._admit(queues, head, now)
        self._check_at(now, next_check)

    # -- internals -------------------------------------------------------------------------------

    @staticmethod
    def _oldest_head(queues: dict[str | None, deque[Waiter]], held: set[str | None]) -> Waiter | None:
        best: Waiter | None = None
        for key in list(queues):
            queue = queues[key]
            while queue and queue[0].gone:
                queue.popleft()
            if not queue:
                del queues[key]
                continue
            if key not in held and (best is None or queue[0].seq < best.seq):
                best = queue[0]
        return best

    def _admit(self, queues: dict[str | None, deque[Waiter]], waiter: Waiter, now: float) -> None:
        queues[waiter.key].popleft()
        gates = [g for g in (waiter.model_gate, self.gate) if g is not None]
        entries = []
        for gate in gates:
            entry = gate.take(now, waiter.batch, waiter.tokens)
            if entry is not None:
                entries.append((gate, entry))
        if waiter.timer is not None:
            waiter.timer.cancel()
        waiter.gone = True
        waiter.future.set_result(Permit(self, gates, waiter.batch, entries))

    def _check_at(self, now: float, wait: float) -> None:
        """Scan again in ``wait`` seconds (a rate window moves on), unless a scan is due sooner."""
        if wait == math.inf:
            return
        at = now + wait
        if self._timer is not None and self._timer_at <= at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = asyncio.get_running_loop().call_later(wait, self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, math.inf
        self.dispatch()

    def _forget(self, waiter: Waiter) -> None:
        if waiter.timer is not None:
            waiter.timer.cancel()
        if not waiter.gone:
            waiter.gone = True
            self.dispatch()  # it may have held back the calls behind it

    def _expire(self, waiter: Waiter, patience: float) -> None:
        if waiter.gone or waiter.future.done():
            return
        error = self._queue_timeout(waiter, patience)
        waiter.gone = True
        waiter.future.set_exception(error)
        log.warning(
            "provider_queue_timeout",
            api=self.api,
            provider_id=self.provider_id,
            model=waiter.model_id,
            work_class=BATCH if waiter.batch else INTERACTIVE,
            waited_seconds=patience,
        )
        self.dispatch()

    def _queue_timeout(self, waiter: Waiter, patience: float) -> RateLimitError:
        now = self.clock()
        block = waiter.model_gate.blocked(now, waiter.batch, waiter.tokens) if waiter.model_gate else None
        gate = waiter.model_gate
        if block is None and self.gate is not None:
            block = self.gate.blocked(now, waiter.batch, waiter.tokens)
            gate = self.gate
        setting = "max_queue_seconds" if not waiter.batch else "batch_max_queue_seconds"
        model = f" for model '{waiter.model_id}'" if waiter.model_id else ""
        if block is not None and gate is not None:
            share = " (the share batch work may use: batch_max_share)" if block.batch_share else ""
            key = f"{gate.where}.{block.setting}"
            why = f"{block.scope} is at its {block.setting} of {block.value}{share} ({key})"
            wait = block.wait if block.wait is not None else gate.held_seconds
        else:
            ahead = sum(
                1
                for work, queues in self.queues.items()
                for queue in queues.values()
                for other in queue
                if not other.gone and _goes_first(work, other, waiter)
            )
            why = f"{ahead} calls were waiting ahead of it (interactive calls go first)"
            wait = self.gate.held_seconds if self.gate is not None else 1.0
        retry_after = max(1, math.ceil(wait))
        error = RateLimitError(
            f"{self.api} provider '{self.provider_id}' is busy: a call{model} waited {patience:g} s "
            f"({setting}) for a slot: {why}. Retry after {retry_after} s, or raise the limit in the run "
            f"config.",
            provider_id=self.provider_id,
            model=waiter.model_id,
            limit=block.setting if block is not None else setting,
        )
        error.headers["Retry-After"] = str(retry_after)
        return error


def _goes_first(work: str, other: Waiter, waiter: Waiter) -> bool:
    """Whether ``other`` (waiting in ``work``'s queue) is served before ``waiter``."""
    if other is waiter:
        return False
    if (work == BATCH) != waiter.batch:
        return work == INTERACTIVE
    return other.seq < waiter.seq
