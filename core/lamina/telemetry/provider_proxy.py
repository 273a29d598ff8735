"""The provider wrapper: every call into every provider of every API is a span, with no telemetry code
in the provider.

While telemetry is active the stack hands its routers a :class:`TracedProvider` around each provider
(``Stack.start``; ``wrap`` below). Each public async method, and each async generator method, of the
provider runs in a span ``{api}.{method}`` (``tool_runtime.list_runtime_tools``) carrying
``lamina.api``, ``lamina.method``, ``lamina.provider.id`` and ``lamina.provider.type``; a failure
marks it ERROR with ``error.type`` and counts in ``lamina.provider.errors``
(lamina.telemetry.metrics.record_provider_error). A call that answers with an async iterator (a
stream) keeps its span open until the iterator ends, fails or is closed.

Some calls say more, after OpenTelemetry's GenAI conventions where they exist:

- inference (chat, completion, embeddings): ``{operation} {model}``, see lamina.telemetry.genai;
- ``tool_runtime.invoke_tool``: ``execute_tool {tool}`` with gen_ai.tool.name, lamina.tool_group.id
  and the tool's own error (``error_message`` of its result);
- ``safety.run_shield``: ``run_shield {shield}`` with lamina.shield.id and lamina.shield.verdict;
- ``vector_io.query_chunks``: ``query_chunks {vector db}`` with lamina.vector_db.id, lamina.vector.k,
  lamina.vector.mode and lamina.vector.hits.

Everything else is the provider object's own: attribute reads and writes, ``hasattr``/``getattr``
probes (a method the provider lacks is still missing), ``isinstance`` (``__class__`` is the
provider's), sync methods and private names. When telemetry is off the stack does not wrap at all;
if it goes off while wrapped, each call costs one check.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

from opentelemetry.trace import Span, Status, StatusCode

from lamina.providers.method_proxy import MethodProxy
from lamina.telemetry import genai, metrics, spans
from lamina.telemetry import state as _state
from lamina.telemetry.context import attach_span, current_span, detach

# Lifecycle and health calls: not a request's work (the health monitor calls the raw provider anyway).
UNTRACED = frozenset({"initialize", "shutdown", "health", "should_refresh_models", "close"})
# Calls the stack also makes in the background (the model refresh, every minute per provider): traced only
# inside a request's trace, never as a root trace of their own that would fill a store with maintenance.
IN_REQUEST_ONLY = frozenset({"list_models"})


def wrap(impl: Any, api: str, provider_id: str, provider_type: str) -> Any:
    """``impl`` in a TracedProvider (itself if already wrapped)."""
    if isinstance(impl, TracedProvider) or type(impl) is TracedProvider:
        return impl
    return TracedProvider(impl, api, provider_id, provider_type)


def unwrap(impl: Any) -> Any:
    return object.__getattribute__(impl, "_lamina_impl") if type(impl) is TracedProvider else impl


class TracedProvider(MethodProxy):
    def __init__(self, impl: Any, api: str, provider_id: str, provider_type: str) -> None:
        super().__init__(impl)
        object.__setattr__(
            self,
            "_lamina_where",
            {
                "lamina.api": api,
                "lamina.provider.id": provider_id,
                "lamina.provider.type": provider_type,
            },
        )

    def _lamina_wrap(self, name: str, value: Any) -> Any | None:
        if name.startswith("_") or name in UNTRACED or not callable(value):
            return None
        function = getattr(value, "__func__", value)
        where = object.__getattribute__(self, "_lamina_where")
        if inspect.isasyncgenfunction(function):
            return _wrap_generator(name, value, where)
        if inspect.iscoroutinefunction(function):
            return _wrap_coroutine(name, value, where)
        return None


# -- what a call's span is named and carries --------------------------------------------------------


def _tool_start(args: tuple[Any, ...], kwargs: dict[str, Any], capture: bool) -> tuple[str, dict[str, Any]]:
    group = args[0] if args else kwargs.get("tool_group")
    tool = args[1] if len(args) > 1 else kwargs.get("tool_name")
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool,
        "lamina.tool_group.id": getattr(group, "identifier", None),
    }
    if capture:
        arguments = args[2] if len(args) > 2 else kwargs.get("kwargs")
        attrs["gen_ai.tool.call.arguments"] = json.dumps(arguments, default=str)
    return f"execute_tool {tool}", attrs


def _tool_end(span: Span, result: Any, capture: bool) -> None:
    error = getattr(result, "error_message", None)
    if error:
        span.set_attribute("error.type", "tool_error")
        span.set_status(Status(StatusCode.ERROR, str(error)[:500]))
    if capture and getattr(result, "content", None) is not None:
        span.set_attribute("gen_ai.tool.call.result", json.dumps(genai._dump(result.content), default=str))


def _shield_start(args: tuple[Any, ...], kwargs: dict[str, Any], capture: bool) -> tuple[str, dict[str, Any]]:
    shield = args[0] if args else kwargs.get("shield")
    shield_id = getattr(shield, "identifier", None)
    return f"run_shield {shield_id}", {"lamina.shield.id": shield_id}


def _shield_end(span: Span, result: Any, capture: bool) -> None:
    violation = getattr(result, "violation", None)
    span.set_attribute("lamina.shield.verdict", "violation" if violation is not None else "safe")
    level = getattr(violation, "violation_level", None)
    if level is not None:
        span.set_attribute("lamina.shield.violation_level", str(getattr(level, "value", level)))


def _query_start(args: tuple[Any, ...], kwargs: dict[str, Any], capture: bool) -> tuple[str, dict[str, Any]]:
    db = args[0] if args else kwargs.get("vector_db")
    query = args[1] if len(args) > 1 else kwargs.get("query")
    db_id = getattr(db, "identifier", None)
    attrs = {"lamina.vector_db.id": db_id, "lamina.vector.k": getattr(query, "k", None)}
    attrs["lamina.vector.mode"] = getattr(query, "mode", None)
    return f"query_chunks {db_id}", attrs


def _query_end(span: Span, result: Any, capture: bool) -> None:
    chunks = getattr(result, "chunks", None)
    if chunks is not None:
        span.set_attribute("lamina.vector.hits", len(chunks))


Start = Callable[[tuple[Any, ...], dict[str, Any], bool], tuple[str, dict[str, Any]]]
End = Callable[[Span, Any, bool], None]
SPECIAL: dict[tuple[str, str], tuple[Start, End]] = {
    ("tool_runtime", "invoke_tool"): (_tool_start, _tool_end),
    ("safety", "run_shield"): (_shield_start, _shield_end),
    ("vector_io", "query_chunks"): (_query_start, _query_end),
}


# -- the wrappers ----------------------------------------------------------------------------------


def _failed(where: dict[str, str], exc: BaseException) -> None:
    if isinstance(exc, GeneratorExit) or type(exc).__name__ == "CancelledError":
        return
    status = getattr(exc, "status", None)
    metrics.record_provider_error(
        provider_id=where["lamina.provider.id"],
        provider_type=where["lamina.provider.type"],
        api=where["lamina.api"],
        status=status if isinstance(status, int) else 500,
    )


def _wrap_coroutine(name: str, method: Callable[..., Any], where: dict[str, str]) -> Callable[..., Any]:
    api = where["lamina.api"]
    operation = genai.OPERATIONS.get(name) if api == "inference" else None
    special = SPECIAL.get((api, name))
    default_name = f"{api}.{name}"
    base: dict[str, Any] = {**where, "lamina.method": name}  # fixed per method: built once
    # as pairs: a span's export record holds them (lamina.telemetry.genai.request_facts_attributes)
    inference_base = tuple({**base, "gen_ai.system": where["lamina.provider.type"]}.items())

    in_request_only = name in IN_REQUEST_ONLY
    provider_id = where["lamina.provider.id"]

    async def call(*args: Any, **kwargs: Any) -> Any:
        tr = spans.tracer()
        if tr is None or (in_request_only and not current_span().get_span_context().is_valid):
            return await method(*args, **kwargs)
        settings = _state._active
        capture = settings is not None and settings.capture_content
        inference: genai.InferenceCall | None = None
        if operation is not None and len(args) >= 2:
            facts = genai.request_facts(args[0], args[1])
            span = tr.start_span(f"{operation} {facts[0]}")
            if capture:
                spans.set_attributes(span, {"gen_ai.input.messages": genai.input_messages(args[1])})
            # its request's attributes are given with the answer's, when it ends (one derive a call)
            inference = genai.InferenceCall(span, operation, facts, inference_base, provider_id, capture)
        elif special is not None:
            span_name, extra = special[0](args, kwargs, capture)
            span = tr.start_span(span_name, attributes={**base, **spans.clean(extra)})
        else:
            span = tr.start_span(default_name, attributes=base)
        token = attach_span(span)
        try:
            result = await method(*args, **kwargs)
        except BaseException as exc:
            try:
                _failed(where, exc)
                if inference is not None:
                    inference.finish(exc)
            except Exception:  # telemetry never replaces the call's own error
                pass
            spans.end(span, exc)
            raise
        finally:
            detach(token)
        if hasattr(result, "__anext__"):

            def ended(failure: BaseException | None) -> None:
                if failure is not None:
                    _failed(where, failure)
                if inference is not None:
                    inference.finish(failure)

            return spans.traced_iterator(
                span, result, on_item=inference.chunk if inference is not None else None, on_end=ended
            )
        try:
            if inference is not None:
                inference.answer(result)
                inference.finish(None)
            elif special is not None and span.is_recording():
                special[1](span, result, capture)
        except Exception:  # an answer of an unexpected shape: the span says less, the call succeeds
            pass
        span.end()
        return result

    call.__name__ = name
    call.__wrapped__ = method  # type: ignore[attr-defined]
    return call


def _wrap_generator(name: str, method: Callable[..., Any], where: dict[str, str]) -> Callable[..., Any]:
    span_name = f"{where['lamina.api']}.{name}"
    base = {**where, "lamina.method": name}

    def call(*args: Any, **kwargs: Any) -> Any:
        tr = spans.tracer()
        span = tr.start_span(span_name, attributes=base) if tr is not None else None
        if span is None:
            return method(*args, **kwargs)
        with spans.current(span):
            iterator = method(*args, **kwargs)

        def ended(failure: BaseException | None) -> None:
            if failure is not None:
                _failed(where, failure)

        return spans.traced_iterator(span, iterator, on_end=ended)

    call.__name__ = name
    call.__wrapped__ = method  # type: ignore[attr-defined]
    return call
