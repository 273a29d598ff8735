"""The provider wrapper that applies a provider's limits to every call the routers make into it.

``Stack.start`` puts a :class:`LimitedProvider` around each provider whose run-config entry has
``limits`` (and only those: a provider without limits is called directly). Each public async method,
and each method that returns an async iterator, first takes a slot from the provider's
:class:`lamina.limits.gate.ProviderLimiter` (waiting its turn: interactive calls first), and gives it
back when the call returns or fails; a call answered with a stream gives it back when the stream
ends, fails or is closed. The model is the call's first argument's ``identifier`` (an inference
call's model; a shield, vector DB or tool group for other APIs). Inference calls are counted in
tokens when a ``tokens_per_minute`` is set: their prompt's estimate and their ``max_tokens`` at the
start, corrected by their answer's usage.

Not limited: lifecycle and health calls, model listing and (un)registration (the stack's own work at
start-up and in the background), private and sync methods. Everything else about the provider (its
attributes, ``isinstance``) is the provider's own, as with lamina.telemetry.provider_proxy.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from lamina.limits.gate import Permit, ProviderLimiter
from lamina.providers.method_proxy import MethodProxy
from lamina.request_context import WORK_CLASS

EXEMPT = frozenset({"initialize", "shutdown", "health", "should_refresh_models", "close", "list_models"})
# Inference methods whose calls count tokens (lamina.telemetry.genai names the same ones).
INFERENCE_METHODS = frozenset(
    {
        "chat_completion",
        "openai_chat_completion",
        "completion",
        "openai_completion",
        "embeddings",
        "openai_embeddings",
    }
)
CHARS_PER_TOKEN = 4  # a rough, model-independent estimate; the answer's usage corrects it
_PROMPT_FIELDS = ("messages", "prompt", "content", "contents", "input")


def wrap(impl: Any, limiter: ProviderLimiter) -> Any:
    return LimitedProvider(impl, limiter)


def _exempt(name: str) -> bool:
    return name.startswith("_") or name in EXEMPT or name.startswith(("register_", "unregister_"))


class LimitedProvider(MethodProxy):
    def __init__(self, impl: Any, limiter: ProviderLimiter) -> None:
        super().__init__(impl)
        object.__setattr__(self, "_lamina_limiter", limiter)

    def _lamina_wrap(self, name: str, value: Any) -> Any | None:
        if _exempt(name) or not callable(value):
            return None
        function = getattr(value, "__func__", value)
        original = getattr(function, "__wrapped__", function)  # under lamina.telemetry's wrapper
        limiter = object.__getattribute__(self, "_lamina_limiter")
        counts = limiter.counts_tokens and name in INFERENCE_METHODS
        if inspect.isasyncgenfunction(original) or inspect.isasyncgenfunction(function):
            return _limit_stream_method(name, value, limiter)
        if inspect.iscoroutinefunction(function):
            return _limit_coroutine(name, value, limiter, counts)
        return None


def _limit_coroutine(
    name: str, method: Callable[..., Any], limiter: ProviderLimiter, counts: bool
) -> Callable[..., Any]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        tokens = estimate_tokens(args, kwargs) if counts else 0
        permit = await limiter.acquire(_resource_id(args, kwargs), WORK_CLASS.get() == "batch", tokens)
        try:
            result = await method(*args, **kwargs)
        except BaseException:
            permit.release()
            raise
        if hasattr(result, "__anext__"):
            return HeldStream(permit, result, counts)
        if counts:
            used = usage_tokens(result)
            if used is not None:
                permit.settle_tokens(used)
        permit.release()
        return result

    call.__name__ = name
    call.__wrapped__ = method  # type: ignore[attr-defined]
    return call


def _limit_stream_method(
    name: str, method: Callable[..., Any], limiter: ProviderLimiter
) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        batch = WORK_CLASS.get() == "batch"  # whose call it is: the caller's, wherever it is read

        # The slot is taken when the caller first asks for an item, and the provider's generator is
        # created only then: a stream nobody reads holds nothing.
        async def opened() -> tuple[Permit, Any]:
            permit = await limiter.acquire(_resource_id(args, kwargs), batch)
            return permit, method(*args, **kwargs)

        return HeldStream(None, None, False, opened)

    call.__name__ = name
    call.__wrapped__ = method  # type: ignore[attr-defined]
    return call


class HeldStream:
    """An async iterator that holds its call's slot until it ends, fails, is closed or is dropped."""

    __slots__ = ("_counts", "_inner", "_open", "_permit", "_used")

    def __init__(
        self,
        permit: Permit | None,
        inner: Any,
        counts: bool,
        open_: Callable[[], Any] | None = None,
    ) -> None:
        self._permit = permit
        self._inner = inner
        self._counts = counts
        self._open = open_
        self._used: int | None = None

    def __aiter__(self) -> HeldStream:
        return self

    async def __anext__(self) -> Any:
        if self._inner is None:
            if self._open is None:
                raise StopAsyncIteration
            opener, self._open = self._open, None
            self._permit, self._inner = await opener()
        try:
            item = await self._inner.__anext__()
        except BaseException:
            self._end()
            raise
        if self._counts:
            used = usage_tokens(item)
            if used is not None:
                self._used = used
        return item

    async def aclose(self) -> None:
        inner, self._open = self._inner, None
        try:
            aclose = getattr(inner, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            self._end()

    def _end(self) -> None:
        permit, self._permit = self._permit, None
        if permit is not None:
            if self._used is not None:
                permit.settle_tokens(self._used)
            permit.release()

    def __del__(self) -> None:
        # A stream dropped unread (the client went away before the first chunk) must not keep its slot.
        try:
            self._end()
        except Exception:  # no event loop any more (interpreter exit): nothing waits on the slot
            pass


# -- what a call counts ----------------------------------------------------------------------------


def _resource_id(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    first = args[0] if args else kwargs.get("model")
    identifier = getattr(first, "identifier", None)
    return identifier if isinstance(identifier, str) else None


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _chars(value: Any, depth: int = 0) -> int:
    """Characters of text in a prompt (strings in messages, content parts, lists), roughly."""
    if isinstance(value, str):
        return len(value)
    if depth > 6 or value is None:
        return 0
    if isinstance(value, dict):
        return sum(_chars(v, depth + 1) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_chars(v, depth + 1) for v in value)
    if isinstance(value, BaseModel):
        return sum(_chars(v, depth + 1) for v in value.__dict__.values())
    return 0


def estimate_tokens(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """An inference call's tokens before it runs: its prompt (CHARS_PER_TOKEN characters a token) and
    the completion tokens it may generate (``max_tokens``, times ``n``)."""
    request = args[1] if len(args) > 1 else kwargs.get("request")
    if request is None:
        return 1
    prompt = next((p for f in _PROMPT_FIELDS if (p := _get(request, f)) is not None), None)
    tokens = math.ceil(_chars(prompt) / CHARS_PER_TOKEN)
    sampling = _get(request, "sampling_params")
    if sampling is not None:
        most = _get(sampling, "max_tokens")
    else:
        most = _get(request, "max_completion_tokens") or _get(request, "max_tokens")
    if isinstance(most, int) and most > 0:
        n = _get(request, "n")
        tokens += most * (n if isinstance(n, int) and n > 0 else 1)
    return max(tokens, 1)


def usage_tokens(answer: Any) -> int | None:
    """The tokens an answer (or a stream chunk) says the call used, if it says: OpenAI's ``usage`` or
    Llama Stack's ``metrics``."""
    usage = _get(answer, "usage")
    if usage is not None:
        total = _get(usage, "total_tokens")
        if isinstance(total, int):
            return total
        parts = [_get(usage, k) for k in ("prompt_tokens", "completion_tokens")]
        return sum(p for p in parts if isinstance(p, int)) or None
    metrics = _get(answer, "metrics")
    if isinstance(metrics, list) and metrics:
        values = {_get(m, "metric"): _get(m, "value") for m in metrics}
        total = values.get("total_tokens")
        if isinstance(total, int | float):
            return int(total)
        parts = [values.get(k) for k in ("prompt_tokens", "completion_tokens")]
        return int(sum(p for p in parts if isinstance(p, int | float))) or None
    return None
