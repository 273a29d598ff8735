"""The inline::transformers inference provider: a registered model's ``provider_model_id`` is a checkpoint
directory, loaded on first use (at most ``max_loaded_models`` kept) and run in a thread.

The OpenAI routes are implemented here; the native ones go through ``lamina.providers.openai_bridge``.
Streams: the generation thread hands each finished piece of text to the event loop, which yields it as
a chunk; a client that goes away stops the generation at its next token.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import structlog

from lamina.apis.common import content_to_text
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
from lamina.errors import BadRequestError, NotImplementedByProviderError
from lamina.providers import ProviderBase, ProviderContext
from lamina.providers import openai_bridge as bridge
from lamina_transformers.config import TransformersInferenceConfig
from lamina_transformers.engine import CheckpointError, Engine, Generated, describe_checkpoint

log = structlog.get_logger(__name__)

DIALECT = bridge.Dialect(top_k=False, repetition_penalty=False)
_NO_EMBEDDINGS = (
    "inline::transformers serves chat and completion models only; embed with an embedding provider"
)


async def create_provider(
    config: TransformersInferenceConfig, deps: dict[Any, Any], context: ProviderContext
) -> TransformersProvider:
    return TransformersProvider(config, context)


class TransformersProvider(ProviderBase):
    def __init__(self, config: TransformersInferenceConfig, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        self.engines: OrderedDict[str, Engine] = OrderedDict()
        self._loading: dict[str, asyncio.Future[Engine]] = {}

    async def initialize(self) -> None:
        if self.config.torch_threads:
            import torch

            torch.set_num_threads(self.config.torch_threads)

    async def register_model(self, model: Model) -> Model:
        if model.model_type != "llm":
            raise BadRequestError(_NO_EMBEDDINGS, param="model_type")
        try:
            await asyncio.to_thread(describe_checkpoint, model.provider_model_id)
        except CheckpointError as exc:
            raise BadRequestError(f"provider_model_id: {exc}", param="provider_model_id") from None
        return model

    async def unregister_model(self, model: Model) -> None:
        self.engines.pop(model.provider_model_id, None)

    async def _engine(self, model: Model) -> Engine:
        path = model.provider_model_id
        if path in self.engines:
            self.engines.move_to_end(path)
            return self.engines[path]
        if path not in self._loading:
            load = asyncio.to_thread(Engine, path, self.config.device, self.config.trust_remote_code)
            self._loading[path] = asyncio.ensure_future(load)
        try:
            engine = await asyncio.shield(self._loading[path])
        except CheckpointError as exc:
            raise BadRequestError(f"model {model.identifier}: {exc}", param="model") from None
        finally:
            self._loading.pop(path, None)
        self.engines[path] = engine
        while len(self.engines) > self.config.max_loaded_models:
            dropped, _ = self.engines.popitem(last=False)
            log.info("transformers_model_dropped", path=dropped)
        return engine

    # -- checks ----------------------------------------------------------------------------------

    @staticmethod
    def _refuse(body: dict[str, Any]) -> None:
        for field in ("tools", "response_format", "logprobs", "top_logprobs", "suffix", "echo"):
            value = body.get(field)
            if value and value != {"type": "text"}:
                raise BadRequestError(
                    f"inline::transformers does not support {field}; leave it out", param=field
                )
        if (body.get("n") or 1) > 1 or (body.get("best_of") or 1) > 1:
            raise BadRequestError("inline::transformers answers one choice; send n=1", param="n")
        if body.get("stream") and body.get("stop"):
            raise BadRequestError(
                "inline::transformers cannot hold back a stop string while streaming; send stop without "
                "stream, or stream without stop",
                param="stop",
            )

    def _options(self, body: dict[str, Any]) -> dict[str, Any]:
        stop = body.get("stop")
        return {
            "max_tokens": body.get("max_completion_tokens")
            or body.get("max_tokens")
            or self.config.default_max_tokens,
            "temperature": body.get("temperature"),
            "top_p": body.get("top_p"),
            "stop": [stop] if isinstance(stop, str) else stop,
            "seed": body.get("seed"),
        }

    # -- generation ------------------------------------------------------------------------------

    async def _run(self, engine: Engine, prompt: str, options: dict[str, Any]) -> Generated:
        cancelled = threading.Event()
        work = asyncio.ensure_future(
            asyncio.to_thread(engine.generate, prompt, cancelled=cancelled, **options)
        )
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def _stream(
        self, engine: Engine, prompt: str, options: dict[str, Any], chunk: Any
    ) -> AsyncIterator[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        cancelled = threading.Event()

        def on_text(text: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, text)

        def run() -> Generated:
            try:
                return engine.generate(prompt, on_text=on_text, cancelled=cancelled, **options)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        work = asyncio.ensure_future(asyncio.to_thread(run))
        try:
            yield chunk(None, None, None)  # the role first, before any text
            while (piece := await queue.get()) is not None:
                yield chunk(piece, None, None)
            result = await work
            yield chunk(None, result.finish_reason, None)
            yield chunk(None, None, result)
        finally:
            cancelled.set()

    # -- OpenAI routes ---------------------------------------------------------------------------

    async def openai_chat_completion(self, model: Model, request: OpenAIChatCompletionRequest) -> Any:
        body = request.upstream_body(model.provider_model_id)
        self._refuse(body)
        engine = await self._engine(model)
        messages = [
            {"role": m["role"], "content": content_to_text(m.get("content"), separator="")}
            for m in body["messages"]
        ]
        try:
            prompt = engine.chat_prompt(messages)
        except CheckpointError as exc:
            raise BadRequestError(str(exc), param="model") from None
        options = self._options(body)
        ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if request.stream:

            def chunk(text: str | None, finish: str | None, usage: Generated | None) -> dict[str, Any]:
                doc: dict[str, Any] = {"id": ident, "object": "chat.completion.chunk", "created": created}
                doc["model"] = model.identifier
                if usage is not None:
                    doc["choices"] = []
                    doc["usage"] = _usage(usage)
                    return doc
                delta = {"role": "assistant", "content": ""} if text is None and finish is None else {}
                if text is not None:
                    delta["content"] = text
                doc["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
                return doc

            return self._stream(engine, prompt, options, chunk)
        result = await self._run(engine, prompt, options)
        return {
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": model.identifier,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.text},
                    "finish_reason": result.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": _usage(result),
        }

    async def openai_completion(self, model: Model, request: OpenAICompletionRequest) -> Any:
        body = request.upstream_body(model.provider_model_id)
        self._refuse(body)
        prompt = body["prompt"]
        if not isinstance(prompt, str):
            raise BadRequestError(
                "inline::transformers completes one text prompt; send prompt as a string", param="prompt"
            )
        engine = await self._engine(model)
        options = self._options(body)
        ident, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        if request.stream:

            def chunk(text: str | None, finish: str | None, usage: Generated | None) -> dict[str, Any]:
                doc: dict[str, Any] = {"id": ident, "object": "text_completion", "created": created}
                doc["model"] = model.identifier
                if usage is not None:
                    doc["choices"] = []
                    doc["usage"] = _usage(usage)
                    return doc
                doc["choices"] = [{"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}]
                return doc

            return self._stream(engine, prompt, options, chunk)
        result = await self._run(engine, prompt, options)
        return {
            "id": ident,
            "object": "text_completion",
            "created": created,
            "model": model.identifier,
            "choices": [
                {"index": 0, "text": result.text, "finish_reason": result.finish_reason, "logprobs": None}
            ],
            "usage": _usage(result),
        }

    async def openai_embeddings(self, model: Model, request: OpenAIEmbeddingsRequest) -> dict[str, Any]:
        raise NotImplementedByProviderError(_NO_EMBEDDINGS)

    # -- native routes ---------------------------------------------------------------------------

    async def chat_completion(self, model: Model, request: ChatCompletionRequest) -> Any:
        body = bridge.chat_request_to_openai(request, model.provider_model_id, DIALECT)
        body["stream"] = bool(request.stream)
        oai = OpenAIChatCompletionRequest.model_validate({**body, "model": model.identifier})
        result = await self.openai_chat_completion(model, oai)
        if request.stream:
            return bridge.chat_stream_from_openai(result)
        return bridge.chat_response_from_openai(result, self.provider_id)

    async def completion(self, model: Model, request: CompletionRequest) -> Any:
        body = bridge.completion_request_to_openai(request, model.provider_model_id, DIALECT)
        body["stream"] = bool(request.stream)
        oai = OpenAICompletionRequest.model_validate({**body, "model": model.identifier})
        result = await self.openai_completion(model, oai)
        if request.stream:
            return bridge.completion_stream_from_openai(result)
        return bridge.completion_response_from_openai(result, self.provider_id)

    async def embeddings(self, model: Model, request: EmbeddingsRequest) -> EmbeddingsResponse:
        raise NotImplementedByProviderError(_NO_EMBEDDINGS)


def _usage(result: Generated) -> dict[str, int]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
    }
