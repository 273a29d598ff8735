"""What an inference call's span and metrics carry, after OpenTelemetry's GenAI semantic conventions.

The provider wrapper (lamina.telemetry.provider_proxy) calls these for the inference methods of every
inference provider: the span is named ``{operation} {model}`` (``chat smollm2``), carries the request's
model, the provider's model id, sampling parameters and whether it streams; then, from the answer or
the stream's chunks, the response model and id, finish reasons, token usage and the time to the first
token. Each fact is computed once and serves both the span and
:func:`lamina.telemetry.metrics.record_inference`.

Prompt and completion text (``gen_ai.input.messages``/``gen_ai.output.messages``, JSON) go on the
span only when the telemetry provider's ``capture_content`` is on.

Answers come in two families, read here without importing either: OpenAI's (dicts or models with
``choices``/``usage``; chunks with ``choices[].delta``) and Llama Stack's (``completion_message`` or
``content`` with ``metrics``; chunks with ``event.delta``).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from opentelemetry.trace import Span

from lamina.telemetry import metrics
from lamina.telemetry.derived import derive

# Inference provider methods -> gen_ai.operation.name.
OPERATIONS = {
    "chat_completion": "chat",
    "openai_chat_completion": "chat",
    "completion": "text_completion",
    "openai_completion": "text_completion",
    "embeddings": "embeddings",
    "openai_embeddings": "embeddings",
}
_TOKEN_METRICS = {"prompt_tokens": "input", "completion_tokens": "output"}
_NOT_A_MODEL = object()
# A provider method's fixed span attributes: (key, value) pairs (a dict is taken too).
Fixed = tuple[tuple[str, Any], ...] | dict[str, Any] | None


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(key)
    # A pydantic model keeps its fields in __dict__ and its extras (extra="allow") apart; getattr on a name
    # a model lacks raises AttributeError inside pydantic (~2 µs a miss: most of what a request's
    # attributes cost), and isinstance(obj, BaseModel) is a Python-level check (pydantic's metaclass).
    fields = getattr(obj, "__dict__", None)
    if fields is not None and key in fields:
        return fields[key]
    extra = getattr(obj, "__pydantic_extra__", _NOT_A_MODEL)
    if extra is not _NOT_A_MODEL:
        return extra.get(key) if extra else None
    return getattr(obj, key, None)


def _dump(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


def _fields(obj: Any) -> dict[str, Any]:
    """``obj``'s fields as one dict (a dict itself; a pydantic model's fields and extras; an object's
    __dict__): a request's dozen reads are then C-level ``dict.get`` calls, not a Python call each."""
    if isinstance(obj, dict):
        return obj
    fields = getattr(obj, "__dict__", None)
    if fields is None:
        return {}
    extra = getattr(obj, "__pydantic_extra__", None)
    return {**fields, **extra} if extra else fields


def request_facts(model: Any, request: Any) -> tuple[Any, ...]:
    """What the span says of a request before the call, as plain values (the arguments of
    :func:`request_facts_attributes` after the operation): the model's id and the provider's id for it,
    whether it streams, max tokens, temperature, top_p."""
    if type(model) is dict:
        identifier, provider_model = model.get("identifier"), model.get("provider_resource_id")
    else:  # a Model: two plain attribute reads (its fields are always there)
        identifier = getattr(model, "identifier", None)
        provider_model = getattr(model, "provider_resource_id", None)
    fields = _fields(request)
    sampling = fields.get("sampling_params")
    if sampling is not None:  # Llama Stack's request
        strategy = _get(sampling, "strategy")
        max_tokens = _get(sampling, "max_tokens") or None
        temperature, top_p = _get(strategy, "temperature"), _get(strategy, "top_p")
    else:
        max_tokens = fields.get("max_completion_tokens") or fields.get("max_tokens")
        temperature, top_p = fields.get("temperature"), fields.get("top_p")
    return identifier, provider_model, bool(fields.get("stream")), max_tokens, temperature, top_p


def request_facts_attributes(
    fixed: Fixed,
    operation: str,
    identifier: Any,
    provider_model: Any,
    stream: bool,
    max_tokens: Any,
    temperature: Any,
    top_p: Any,
) -> dict[str, Any]:
    """The span's attributes known before the call, from :func:`request_facts`, after ``fixed`` (the
    provider's, the same for every call of a method: ``(key, value)`` pairs, so that a record holding them
    is only tuples) (lamina.telemetry.derived: maybe built in the export worker)."""
    return {
        **dict(fixed or ()),
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": identifier,
        # The provider's id for the model, when it is not the same (each attribute costs per span).
        "lamina.provider.model": provider_model if provider_model != identifier else None,
        "lamina.stream": stream,
        "gen_ai.request.max_tokens": max_tokens,
        "gen_ai.request.temperature": temperature,
        "gen_ai.request.top_p": top_p,
    }


def input_messages(request: Any) -> str | None:
    """The request's prompt as JSON (``gen_ai.input.messages``: only with capture_content on)."""
    messages = _get(request, "messages")
    if messages is None:
        messages = _get(request, "prompt") or _get(request, "content") or _get(request, "input")
        messages = _get(request, "contents") if messages is None else messages
    return json.dumps(_dump(messages), default=str) if messages is not None else None


def answer_attributes(
    response_model: Any,
    response_id: Any,
    input_tokens: Any,
    output_tokens: Any,
    finish_reasons: list[str] | tuple[str, ...],
    ttft: float | None,
    output: str | None,
) -> dict[str, Any]:
    """The span's attributes from an answer's facts (lamina.telemetry.derived: maybe in the export worker)."""
    attrs: dict[str, Any] = {
        "gen_ai.response.model": response_model,
        "gen_ai.response.id": response_id,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
    }
    if finish_reasons:
        attrs["gen_ai.response.finish_reasons"] = list(finish_reasons)
    if ttft is not None:
        attrs["lamina.time_to_first_token"] = ttft
    if output is not None:
        attrs["gen_ai.output.messages"] = output
    return attrs


def call_attributes(
    fixed: Fixed, operation: str, request: tuple[Any, ...], answer: tuple[Any, ...]
) -> dict[str, Any]:
    """An inference span's attributes: the request's (:func:`request_facts_attributes`) and the answer's
    (:func:`answer_attributes`), built together at the call's end (lamina.telemetry.derived)."""
    return {**request_facts_attributes(fixed, operation, *request), **answer_attributes(*answer)}


class InferenceCall:
    """One inference call in flight: collects what its answer or chunks say, then ends its span and
    records its metrics."""

    __slots__ = (
        "capture",
        "finish_reasons",
        "input_tokens",
        "model",
        "operation",
        "output_tokens",
        "provider_id",
        "request",
        "request_fixed",
        "response_id",
        "response_model",
        "span",
        "started",
        "stream",
        "text",
        "ttft",
    )

    def __init__(
        self,
        span: Span,
        operation: str,
        request: tuple[Any, ...],
        fixed: tuple[tuple[str, Any], ...] | None,
        provider_id: str,
        capture: bool,
    ) -> None:
        # request: request_facts(); fixed: the provider's attributes, the same for every call
        self.span = span
        self.operation = operation
        self.request = request
        self.request_fixed = fixed
        self.model = str(request[0] or "")  # the model's identifier
        self.provider_id = provider_id
        self.stream = request[2]
        self.started = time.perf_counter()
        self.ttft: float | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.finish_reasons: list[str] = []
        self.response_model: str | None = None
        self.response_id: str | None = None
        self.capture = capture
        self.text: list[str] = []

    # -- non-streamed answers -------------------------------------------------------------------
    def answer(self, result: Any) -> None:
        fields = result if type(result) is dict else _fields(result)  # a relayed OpenAI answer: a dict
        usage = fields.get("usage")
        if type(usage) is dict:  # OpenAI's counts, read here (_usage's first case, without its calls)
            if self.input_tokens is None:
                self.input_tokens = usage.get("prompt_tokens")
            self.output_tokens = usage.get("completion_tokens")
        else:
            self._usage(fields)
        self.response_model = fields.get("model")
        self.response_id = fields.get("id")
        choices = fields.get("choices")
        if isinstance(choices, list):  # OpenAI's
            outputs = []
            for choice in choices:
                is_dict = type(choice) is dict
                reason = choice.get("finish_reason") if is_dict else _get(choice, "finish_reason")
                if reason:
                    self.finish_reasons.append(str(reason))
                if self.capture:
                    outputs.append(_dump(_get(choice, "message") or _get(choice, "text")))
            if self.capture:
                self.text = [json.dumps(outputs, default=str)]
            return
        message = fields.get("completion_message")  # Llama Stack's chat answer
        reason = _get(message, "stop_reason") if message is not None else fields.get("stop_reason")
        if reason:
            self.finish_reasons.append(str(reason))
        if self.capture:
            out = _dump(message) if message is not None else fields.get("content")
            if out is not None and self.operation != "embeddings":
                self.text = [json.dumps(out, default=str)]

    def _usage(self, result: Any) -> None:
        usage = _get(result, "usage")
        if usage is not None:  # OpenAI's: its counts read from one dict
            counts = _fields(usage)
            if self.input_tokens is None:
                self.input_tokens = counts.get("prompt_tokens")
            self.output_tokens = counts.get("completion_tokens")
            return
        for metric in _get(result, "metrics") or ():  # Llama Stack's [{metric: prompt_tokens, value}]
            kind = _TOKEN_METRICS.get(_get(metric, "metric"))
            if kind == "input":
                self.input_tokens = int(_get(metric, "value"))
            elif kind == "output":
                self.output_tokens = int(_get(metric, "value"))

    # -- streams --------------------------------------------------------------------------------
    def chunk(self, chunk: Any) -> None:
        """One streamed chunk: the first that carries output sets the time to first token."""
        fields = _fields(chunk)  # a dict (relayed JSON, the usual case) or a model's fields: read as one dict
        event = fields.get("event")
        if event is not None:  # Llama Stack's chunk
            self._llama_stack_chunk(chunk, event)
            return
        if self.response_id is None:  # OpenAI's
            self.response_id = fields.get("id")
            self.response_model = fields.get("model")
        if fields.get("usage"):
            self._usage(fields)
        text = None
        for choice in fields.get("choices") or ():
            picked = _fields(choice)
            delta = picked.get("delta")
            if delta is None:
                piece, tool_call = picked.get("text"), False
            else:
                said = _fields(delta)
                piece = said.get("content")
                tool_call = not piece and bool(said.get("tool_calls"))
            if piece or tool_call:
                text = piece if piece else ""
            reason = picked.get("finish_reason")
            if reason:
                self.finish_reasons.append(str(reason))
        self._output(text)

    def _llama_stack_chunk(self, chunk: Any, event: Any) -> None:
        delta = _get(event, "delta")
        text = _get(delta, "text") if delta is not None else None
        if text is None:
            text = _get(delta, "tool_call") if delta is not None else None
        reason = _get(event, "stop_reason")
        if reason:
            self.finish_reasons.append(str(reason))
        if _get(chunk, "metrics"):
            self._usage(chunk)
        self._output(text)

    def _output(self, text: Any) -> None:
        if text is not None:
            if self.ttft is None:
                self.ttft = time.perf_counter() - self.started
            if self.capture and isinstance(text, str):
                self.text.append(text)

    # -- the end --------------------------------------------------------------------------------
    def finish(self, error: BaseException | None) -> None:
        """Set the response attributes on the span (ended by the caller) and record the metrics."""
        seconds = time.perf_counter() - self.started
        error_type = None
        if isinstance(error, (asyncio.CancelledError, GeneratorExit)):
            error_type = "cancelled"  # the client went away: not a failure of the call
        elif error is not None:
            from lamina.telemetry.spans import error_type as type_of

            error_type = type_of(error)
        output = None
        if self.capture and self.text:
            output = "".join(self.text) if self.stream else self.text[0]
        derive(  # nothing when the span does not record (a trace not sampled)
            self.span,
            "genai.call",
            self.request_fixed,
            self.operation,
            self.request,
            (
                self.response_model,
                self.response_id,
                self.input_tokens,
                self.output_tokens,
                tuple(self.finish_reasons),
                self.ttft,
                output,
            ),
        )
        metrics.record_inference(
            model=self.model,
            provider_id=self.provider_id,
            operation=self.operation,
            stream=self.stream,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            seconds=seconds,
            ttft_seconds=self.ttft,
            error=error_type,
        )
