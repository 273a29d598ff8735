"""Token budgets (``server.quota.token_budgets``, a Lamina addition): the inference tokens one client
may spend per period on one model, counted in the quota kvstore from each answer's usage.

The quota middleware puts the caller and the budgets in ``BUDGET_CONTEXT``; the inference router
passes each provider it calls through :func:`budgeted`, which (for a model with a budget) refuses the
call with 429 once the client's tokens for the period reach the budget, and otherwise charges what the
answer's ``usage`` says (a stream: its last usage, when it ends, fails or is closed, the upstream asked
for it whether or not the client did; an answer without usage: the estimate lamina.limits uses, its
prompt and ``max_tokens``). The check is made before a call,
so calls in flight together may overshoot a budget by what they spend; the next call is refused.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from typing import Any

import structlog

from lamina.limits.proxy import INFERENCE_METHODS, estimate_tokens, usage_tokens
from lamina.providers.method_proxy import MethodProxy
from lamina.quotas.counting import Client, QuotaCounter, QuotaExceeded, current_window

log = structlog.get_logger("lamina.quotas")


class TokenBudgets:
    def __init__(self, counter: QuotaCounter) -> None:
        self.counter = counter
        self.budgets = counter.config.token_budgets

    def budget_for(self, model_id: str) -> int | None:
        return self.budgets.get(model_id, self.budgets.get("*"))

    async def check(self, client: Client, model_id: str, budget: int) -> None:
        config = self.counter.config
        window = current_window(config)
        used = await self.counter.get(f"tokens:{model_id}", client, window)
        if used >= budget:
            key = model_id if model_id in self.budgets else "*"
            retry_after = window.retry_after(time.time())
            raise QuotaExceeded(
                f"token budget spent: {used} of {budget} tokens per {config.period.value} on model "
                f"{model_id!r} (server.quota.token_budgets[{key!r}]); the budget refills in "
                f"{retry_after} s (Retry-After)",
                quota=f"token_budgets.{key}",
                retry_after=retry_after,
                model=model_id,
                limit=budget,
                used=used,
                period=config.period.value,
            )

    async def charge(self, client: Client, model_id: str, tokens: int) -> None:
        if tokens > 0:
            await self.counter.add(f"tokens:{model_id}", client, tokens, current_window(self.counter.config))


# (the budgets, the caller) for the current request; None: no token budgets configured.
BUDGET_CONTEXT: ContextVar[tuple[TokenBudgets, Client] | None] = ContextVar(
    "lamina_token_budget", default=None
)


def budgeted(provider: Any, model_id: str) -> Any:
    """``provider``, charging its inference calls to the caller's budget for ``model_id`` (itself when
    no budget applies: no cost)."""
    context = BUDGET_CONTEXT.get()
    if context is None:
        return provider
    budgets, client = context
    budget = budgets.budget_for(model_id)
    if budget is None:
        return provider
    return _BudgetedProvider(provider, budgets, client, model_id, budget)


class _BudgetedProvider(MethodProxy):
    def __init__(self, impl: Any, budgets: TokenBudgets, client: Client, model_id: str, budget: int) -> None:
        super().__init__(impl)
        object.__setattr__(self, "_lamina_budget", (budgets, client, model_id, budget))

    def _lamina_wrap(self, name: str, value: Any) -> Any | None:
        if name not in INFERENCE_METHODS or not callable(value):
            return None
        budgets, client, model_id, budget = object.__getattribute__(self, "_lamina_budget")

        async def call(*args: Any, **kwargs: Any) -> Any:
            await budgets.check(client, model_id, budget)
            if name in _OPENAI_STREAMING and len(args) > 1 and getattr(args[1], "stream", False):
                args = (args[0], _asking_usage(args[1]), *args[2:])
            result = value(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            estimate = estimate_tokens(args, kwargs)
            if hasattr(result, "__anext__"):
                return _charged_stream(result, lambda used: budgets.charge(client, model_id, used), estimate)
            used = usage_tokens(result)
            await budgets.charge(client, model_id, used if used is not None else estimate)
            return result

        call.__name__ = name
        return call


_OPENAI_STREAMING = frozenset({"openai_chat_completion", "openai_completion"})


def _asking_usage(request: Any) -> Any:
    """An OpenAI streaming request that asks the upstream for its usage chunk, so that the stream is
    charged what it used. A copy: the router still reads the client's own ``stream_options`` to decide
    whether the client gets the usage chunk."""
    options = request.stream_options or {}
    if options.get("include_usage"):
        return request
    return request.model_copy(update={"stream_options": {**options, "include_usage": True}})


async def _charged_stream(
    chunks: AsyncIterator[Any], charge: Callable[[int], Any], estimate: int
) -> AsyncIterator[Any]:
    used: int | None = None
    try:
        async for chunk in chunks:
            tokens = usage_tokens(chunk)
            if tokens is not None:
                used = tokens
            yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        try:
            await charge(used if used is not None else estimate)
        except Exception as exc:  # the answer has gone out; a store failure must not turn it into an error
            log.warning("token_budget_charge_failed", error=f"{type(exc).__name__}: {exc}")
