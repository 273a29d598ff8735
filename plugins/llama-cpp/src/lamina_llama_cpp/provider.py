"""``inline::llama-cpp``: the Inference API on GGUF models loaded in-process.

Requests are OpenAI-shaped inside (that is what llama.cpp's engine takes); the native Llama Stack
routes are translated by the shared bridge, exactly as for a remote OpenAI-compatible server.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from lamina.apis.inference import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingsRequest,
    EmbeddingsResponse,
    OpenAIChatCompletionRequest,
    OpenAICompletionRequest,
    OpenAIEmbeddingsRequest,
)
from lamina.apis.models import Model
from lamina.errors import BadRequestError
from lamina.providers import ProviderBase, ProviderContext
from lamina.providers import openai_bridge as bridge
from lamina_llama_cpp import smollm2_tools, tools
from lamina_llama_cpp.config import TOOL_FORMATS, LlamaCppConfig
from lamina_llama_cpp.embeddings import embed, openai_embeddings_doc
from lamina_llama_cpp.runtime import Runtime, Slot, resolve_gguf

log = structlog.get_logger(__name__)

# How each non-native tool format rewrites a chat body (``tool_format`` in the config).
PREPARE: dict[str, Callable[[dict[str, Any]], tools.Prepared]] = {
    "lamina": tools.prepare_lamina,
    "smollm2": smollm2_tools.prepare,
}

# Completions go through OpenAICompletionRequest (openai_completion), so OpenAI's logprobs limit applies.
DIALECT = bridge.Dialect(
    top_k=True,
    repetition_penalty=True,
    grammar_field="grammar",
    completion_logprobs=bridge.OPENAI_COMPLETION_LOGPROBS,
)


async def create_provider(config: LlamaCppConfig, deps: dict, context: ProviderContext) -> LlamaCppProvider:
    return LlamaCppProvider(config, context)


def _llama_body(body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI (and Llama Stack) sampling names as llama.cpp spells them."""
    # null is unset: an explicit `"max_tokens": null` must not dodge default_max_tokens.
    body = {key: value for key, value in body.items() if value is not None}
    if "repetition_penalty" in body:
        body["repeat_penalty"] = body.pop("repetition_penalty")
    if "max_completion_tokens" in body:
        body.setdefault("max_tokens", body.pop("max_completion_tokens"))
    if body.get("stream"):
        # Always: the inference store records the usage; the router sends the usage chunk on only
        # when the request asked for it (lamina.providers.openai_wire).
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return body


class LlamaCppProvider(ProviderBase):
    def __init__(self, config: LlamaCppConfig, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        self.runtimes: dict[tuple[Path, bool], Runtime] = {}
        self.model_files: dict[str, tuple[Path, bool]] = {}
        self._warmups: set[asyncio.Task[None]] = set()

    # -- lifecycle -----------------------------------------------------------------------------

    async def shutdown(self) -> None:
        for task in self._warmups:
            task.cancel()
        for runtime in list(self.runtimes.values()):
            await runtime.close()
        self.runtimes.clear()

    async def health(self) -> dict[str, Any]:
        loaded = sorted(
            str(path.name) for (path, _), rt in self.runtimes.items() if rt.load_seconds is not None
        )
        # inflight: admitted generations whose llama.cpp thread has not returned yet (0 when idle).
        inflight = sum(rt.inflight for rt in self.runtimes.values())
        return {"status": "OK", "loaded": loaded, "inflight": inflight}

    # -- models --------------------------------------------------------------------------------

    async def register_model(self, model: Model) -> Model:
        embedding = model.model_type == "embedding"
        fmt = model.metadata.get("tool_format")
        if fmt is not None and fmt not in TOOL_FORMATS:
            raise BadRequestError(
                f"metadata.tool_format={fmt!r} is not one of {', '.join(TOOL_FORMATS)}; "
                f"send one of them or leave it out (provider '{self.provider_id}' then uses its config's)",
                param="metadata.tool_format",
            )
        path = await asyncio.to_thread(resolve_gguf, model.provider_model_id, self.config.model_dirs)
        runtime = self._runtime_for(path, embedding)
        self.model_files[model.identifier] = (path, embedding)
        if self.config.warmup and runtime.load_seconds is None:
            task = asyncio.create_task(self._warm(runtime))
            self._warmups.add(task)
            task.add_done_callback(self._warmups.discard)
        return model

    async def unregister_model(self, model: Model) -> None:
        key = self.model_files.pop(model.identifier, None)
        if key is not None and key not in self.model_files.values():
            runtime = self.runtimes.pop(key, None)
            if runtime is not None:
                await runtime.close()

    async def _warm(self, runtime: Runtime) -> None:
        try:
            await runtime.ensure_loaded()
        except Exception as exc:  # the first request reports it to its caller
            log.warning("gguf_warmup_failed", path=str(runtime.path), error=str(exc))

    def _runtime_for(self, path: Path, embedding: bool) -> Runtime:
        key = (path, embedding)
        if key not in self.runtimes:
            self.runtimes[key] = Runtime(path, self.config, self.provider_id, embedding=embedding)
        return self.runtimes[key]

    async def _runtime(self, model: Model) -> Runtime:
        key = self.model_files.get(model.identifier)
        if key is None:  # registered in an earlier run: the registry remembers it, we do not
            await self.register_model(model)
            key = self.model_files[model.identifier]
        runtime = self._runtime_for(*key)
        await runtime.ensure_loaded()
        return runtime

    def _tool_format(self, model: Model, runtime: Runtime) -> str:
        """The model's metadata.tool_format, else the config's; ``auto`` resolved from the GGUF."""
        fmt = model.metadata.get("tool_format") or self.config.tool_format
        if fmt != "auto":
            return fmt
        if runtime.info.template_knows_tools:
            return "native"
        return "smollm2" if smollm2_tools.matches(runtime.info) else "lamina"

    # -- OpenAI routes -------------------------------------------------------------------------

    async def openai_chat_completion(self, model: Model, request: OpenAIChatCompletionRequest) -> Any:
        runtime = await self._runtime(model)
        body = _llama_body(request.upstream_body(model.provider_model_id))
        n = self._bound(runtime, body)
        fmt = self._tool_format(model, runtime)
        prepared = PREPARE[fmt](body) if fmt in PREPARE else None
        if prepared is not None:
            body = prepared.body
        if request.stream:
            if n > 1:
                raise BadRequestError(
                    "inline::llama-cpp streams one choice; send n=1 or stream=false", param="n"
                )
            return self._chat_stream(runtime, body, prepared, model.identifier)
        doc = self._merge(
            await _all_or_none(
                runtime, n, lambda i, slot: self._chat_once(runtime, _seeded(body, i), prepared, i, slot)
            )
        )
        doc["model"] = model.identifier
        return doc

    async def openai_completion(self, model: Model, request: OpenAICompletionRequest) -> Any:
        runtime = await self._runtime(model)
        body = _llama_body(request.upstream_body(model.provider_model_id))
        n = self._bound(runtime, body)
        prompt = body.get("prompt")
        # llama.cpp starts one task per prompt of a list (a list of token ids is one prompt)
        prompts = len(prompt) if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int) else 1
        if isinstance(body.get("logprobs"), int) and body["logprobs"] > 0:
            body["n_probs"] = body["logprobs"]
        if request.stream:
            if n > 1:
                raise BadRequestError(
                    "inline::llama-cpp streams one choice; send n=1 or stream=false", param="n"
                )
            chunks = runtime.stream("handle_completions", body, weight=prompts)
            return self._relabel_stream(chunks, model.identifier)
        docs = await _all_or_none(
            runtime,
            n,
            lambda i, slot: runtime.call("handle_completions", _seeded(body, i), slot),
            weight=prompts,
        )
        doc = self._merge(docs)
        doc["model"] = model.identifier
        return doc

    async def openai_embeddings(self, model: Model, request: OpenAIEmbeddingsRequest) -> dict[str, Any]:
        runtime = await self._runtime(model)
        inputs = request.input if isinstance(request.input, list) else [request.input]
        if inputs and not all(isinstance(i, str) for i in inputs):
            raise BadRequestError("inline::llama-cpp embeds text; send input as strings", param="input")
        vectors, tokens = await embed(runtime, list(inputs), dimensions=request.dimensions)
        return openai_embeddings_doc(vectors, tokens, model.identifier, request.encoding_format or "float")

    # -- native routes ---------------------------------------------------------------------------

    async def chat_completion(self, model: Model, request: ChatCompletionRequest) -> Any:
        return await bridge.native_chat_via_openai(self, model, request, DIALECT)

    async def completion(self, model: Model, request: CompletionRequest) -> Any:
        return await bridge.native_completion_via_openai(self, model, request, DIALECT)

    async def embeddings(self, model: Model, request: EmbeddingsRequest) -> EmbeddingsResponse:
        runtime = await self._runtime(model)
        texts = []
        for i, item in enumerate(request.contents):
            text = item if isinstance(item, str) else getattr(item, "text", None)
            if text is None:
                raise BadRequestError(
                    f"contents[{i}] is not text; this model embeds text", param=f"contents[{i}]"
                )
            texts.append(text)
        vectors, _tokens = await embed(
            runtime, texts, dimensions=request.output_dimension, truncation=request.text_truncation or "none"
        )
        return EmbeddingsResponse(embeddings=vectors)

    # -- chat plumbing ---------------------------------------------------------------------------

    def _bound(self, runtime: Runtime, body: dict[str, Any]) -> int:
        """The request's n (popped) and max_tokens within this provider's limits.

        A request that sets no max_tokens gets ``default_max_tokens``; none may exceed the context
        of a slot, so one request cannot hold a slot for a whole context's worth of tokens unasked.
        """
        n = body.pop("n", None) or 1
        if n > self.config.max_n:
            raise BadRequestError(
                f"n={n} is more than provider '{self.provider_id}' allows ({self.config.max_n}); "
                f"send a smaller n or raise max_n in its config",
                param="n",
            )
        context = runtime.context_length
        unset = body.get("max_tokens") is None and body.get("n_predict") is None
        if unset and self.config.default_max_tokens:
            body["max_tokens"] = min(self.config.default_max_tokens, context)
        for key in ("max_tokens", "n_predict"):
            value = body.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= context:
                raise BadRequestError(
                    f"{key}={value!r} is outside 1..{context}, the tokens of context a request has on "
                    f"provider '{self.provider_id}'; send a smaller {key} or raise context_length in "
                    f"its config",
                    param=key,
                )
        return n

    async def _chat_once(
        self, runtime: Runtime, body: dict[str, Any], prepared: tools.Prepared | None, i: int, slot: Slot
    ) -> dict[str, Any]:
        doc = await runtime.call("handle_chat_completions", body, slot)
        if prepared is None:
            return doc
        plan, echo = prepared.plan, prepared.text_filter()
        for choice in doc.get("choices") or []:
            message = choice.get("message") or {}
            text = message.get("content") or ""
            if plan is None:
                if echo is not None and text:
                    message["content"] = echo.whole(text)
                continue
            if prepared.constrained:
                calls = tools.parse_forced(text, plan)
                content = None if calls else text
                if not calls and prepared.fallback is not None:
                    # The model declined to call (or no whole call could be read): answer in text.
                    await self._answer_instead(runtime, doc, choice, _seeded(prepared.fallback, i), echo)
                    continue
            else:
                content, calls = tools.parse_answer(text, plan)
                if echo is not None and content:
                    content = echo.whole(content)
            if calls:
                choice["message"] = {"role": "assistant", "content": content or None, "tool_calls": calls}
                if choice.get("finish_reason") == "stop":
                    choice["finish_reason"] = "tool_calls"
            elif echo is not None:
                message["content"] = content
        return doc

    @staticmethod
    async def _answer_instead(
        runtime: Runtime,
        doc: dict[str, Any],
        choice: dict[str, Any],
        body: dict[str, Any],
        echo: tools.EchoFilter | None,
    ) -> None:
        """Replace ``choice`` by the text answer ``body`` generates; the usage counts both generations."""
        text_doc = await runtime.call("handle_chat_completions", body)
        [answer] = text_doc.get("choices") or [{"message": {"role": "assistant", "content": ""}}]
        message = answer.get("message") or {"role": "assistant", "content": ""}
        if echo is not None and message.get("content"):
            message["content"] = echo.whole(message["content"])
        choice["message"] = message
        choice["finish_reason"] = answer.get("finish_reason")
        doc["usage"] = _add_usage(doc.get("usage"), text_doc.get("usage"))

    def _chat_stream(
        self, runtime: Runtime, body: dict[str, Any], prepared: tools.Prepared | None, model_id: str
    ) -> AsyncIterator[dict[str, Any]]:
        chunks = runtime.stream("handle_chat_completions", body)
        if prepared is None or (prepared.plan is None and not prepared.echo_tags):
            return self._relabel_stream(chunks, model_id)
        return self._tool_stream(runtime, chunks, prepared, model_id)

    async def _tool_stream(
        self,
        runtime: Runtime,
        chunks: AsyncIterator[dict[str, Any]],
        prepared: tools.Prepared,
        model_id: str,
    ) -> AsyncIterator[dict[str, Any]]:
        plan = prepared.plan
        splitter = tools.StreamSplitter(plan) if plan is not None and not prepared.constrained else None
        echo = prepared.text_filter()
        forced: list[str] = []
        calls = 0
        meta = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time())}

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
            return {
                **meta,
                "object": "chat.completion.chunk",
                "model": model_id,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, **extra}],
            }

        def events(items: list[tuple[str, Any]]) -> list[dict[str, Any]]:
            nonlocal calls
            out = []
            for kind, value in items:
                if kind == "text":
                    value = echo.feed(value) if echo is not None else value
                    if value:
                        out.append(chunk({"content": value}))
                else:
                    out.append(chunk({"tool_calls": [{"index": calls, **value}]}))
                    calls += 1
            return out

        finish = "stop"
        usage = None

        async def texts(source: AsyncIterator[dict[str, Any]]) -> AsyncIterator[tuple[bool, str]]:
            """(role announced, text) per chunk of ``source``; its finish_reason and usage noted."""
            nonlocal finish, usage
            try:
                async for raw in source:
                    meta["id"] = raw.get("id", meta["id"])
                    usage = _add_usage(usage, raw.get("usage")) if raw.get("usage") else usage
                    for choice in raw.get("choices") or []:
                        delta = choice.get("delta") or {}
                        finish = choice.get("finish_reason") or finish
                        yield bool(delta.get("role")), delta.get("content") or ""
            finally:
                await source.aclose()

        async for role, text in texts(chunks):
            if role:
                yield chunk({"role": "assistant", "content": ""})
            if not text:
                continue
            if prepared.constrained:
                forced.append(text)
            elif splitter is not None:
                for out in events(splitter.feed(text)):
                    yield out
            else:
                for out in events([("text", text)]):
                    yield out
        tail: list[tuple[str, Any]] = []
        if prepared.constrained and plan is not None:
            found = tools.parse_forced("".join(forced), plan)
            if found:
                tail = [("call", c) for c in found]
            elif prepared.fallback is not None:
                # The model declined to call (or no whole call could be read): stream a text answer.
                first_usage, usage, finish = usage, None, "stop"
                async for _role, text in texts(runtime.stream("handle_chat_completions", prepared.fallback)):
                    for out in events([("text", text)] if text else []):
                        yield out
                usage = _add_usage(first_usage, usage)
            else:
                tail = [("text", "".join(forced))]
        elif splitter is not None:
            tail = splitter.finish()
        for out in events(tail):
            yield out
        if echo is not None and (rest := echo.finish()):
            yield chunk({"content": rest})
        yield chunk({}, "tool_calls" if calls and finish == "stop" else finish)
        if usage:
            yield {
                **meta,
                "object": "chat.completion.chunk",
                "model": model_id,
                "choices": [],
                "usage": usage,
            }

    @staticmethod
    async def _relabel_stream(
        chunks: AsyncIterator[dict[str, Any]], model_id: str
    ) -> AsyncIterator[dict[str, Any]]:
        try:
            async for chunk in chunks:
                chunk["model"] = model_id
                yield chunk
        finally:
            await chunks.aclose()

    @staticmethod
    def _merge(docs: list[dict[str, Any]]) -> dict[str, Any]:
        """n answers as one, with choices indexed 0..n-1 and usage summed."""
        doc = docs[0]
        if len(docs) == 1:
            return doc
        choices = []
        usage: dict[str, int] = {}
        for i, other in enumerate(docs):
            for choice in other.get("choices") or []:
                choices.append({**choice, "index": i})
            for key, value in (other.get("usage") or {}).items():
                if isinstance(value, int):
                    usage[key] = usage.get(key, 0) + value
        doc["choices"] = choices
        if usage:
            doc["usage"] = usage
        return doc


async def _all_or_none(
    runtime: Runtime, n: int, one: Callable[[int, Slot], Awaitable[dict[str, Any]]], *, weight: int = 1
) -> list[dict[str, Any]]:
    """n generations that run together or not at all.

    Their n slots are reserved at once (or the request is refused at once); the first to fail,
    or the caller being cancelled, stops the others, whose slots come back as their threads end.
    """
    slots = await runtime.acquire(n, weight)
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(i, slot)) for i, slot in enumerate(slots)]
    except BaseExceptionGroup as eg:
        first = eg.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    finally:
        for slot in slots:
            slot.release_unused()
    return [task.result() for task in tasks]


def _seeded(body: dict[str, Any], i: int) -> dict[str, Any]:
    """The i-th of n samples: its own seed, so n choices differ yet stay reproducible."""
    if i == 0:
        return body
    out = dict(body)
    if out.get("seed") is not None:
        out["seed"] = int(out["seed"]) + i
    return out


def _add_usage(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    """Token counts of two generations that made one answer."""
    if not a or not b:
        return a or b
    counts = ("completion_tokens", "prompt_tokens", "total_tokens")
    return {**a, **{key: a.get(key, 0) + b.get(key, 0) for key in counts}}
