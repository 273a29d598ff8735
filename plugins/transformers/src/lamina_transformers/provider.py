"""The inline::transformers inference provider: a registered model's ``provider_model_id`` is a checkpoint
directory, loaded on first use (at most ``max_loaded_models`` kept) and run in a thread. An ``llm`` model
generates (a full checkpoint or a LoRA adapter on its local base); an ``embedding`` model (a full
checkpoint: an encoder such as BERT or MiniLM, or any base model) embeds: its last hidden states,
mean-pooled and scaled to unit length (``engine.EmbeddingEngine``).

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
from lamina.errors import BadRequestError
from lamina.providers import ProviderBase, ProviderContext
from lamina.providers import openai_bridge as bridge
from lamina_transformers.config import TransformersInferenceConfig
from lamina_transformers.engine import (
    CheckpointError,
    EmbeddingEngine,
    Engine,
    Generated,
    checkpoint_width,
    describe_checkpoint,
)

log = structlog.get_logger(__name__)

DIALECT = bridge.Dialect(top_k=False, repetition_penalty=False)
MAX_INPUTS = 256  # texts one embeddings request may carry


async def create_provider(
    config: TransformersInferenceConfig, deps: dict[Any, Any], context: ProviderContext
) -> TransformersProvider:
    return TransformersProvider(config, context)


class TransformersProvider(ProviderBase):
    def __init__(self, config: TransformersInferenceConfig, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        self.engines: OrderedDict[tuple[str, str], Any] = OrderedDict()  # (model type, path) -> engine
        self._loading: dict[tuple[str, str], asyncio.Future[Any]] = {}

    async def initialize(self) -> None:
        if self.config.torch_threads:
            import torch

            torch.set_num_threads(self.config.torch_threads)

    async def register_model(self, model: Model) -> Model:
        if model.model_type not in ("llm", "embedding"):
            raise BadRequestError(
                f"inline::transformers serves llm and embedding models, not {model.model_type}",
                param="model_type",
            )
        try:
            info = await asyncio.to_thread(describe_checkpoint, model.provider_model_id)
        except CheckpointError as exc:
            raise BadRequestError(f"provider_model_id: {exc}", param="provider_model_id") from None
        if model.model_type == "llm":
            return model
        if info["kind"] != "full":
            raise BadRequestError(
                "provider_model_id: a LoRA adapter generates; an embedding model is a full checkpoint",
                param="provider_model_id",
            )
        width = await asyncio.to_thread(checkpoint_width, model.provider_model_id)
        declared = model.metadata.get("embedding_dimension")
        if width is not None and declared is not None and int(declared) != width:
            raise BadRequestError(
                f"metadata.embedding_dimension: {declared}, but the checkpoint's hidden size (its vectors' "
                f"length) is {width}; set {width} or leave it out",
                param="metadata.embedding_dimension",
            )
        return model

    async def unregister_model(self, model: Model) -> None:
        self.engines.pop((model.model_type, model.provider_model_id), None)

    async def _engine(self, model: Model) -> Any:
        key = (model.model_type, model.provider_model_id)
        if key in self.engines:
            self.engines.move_to_end(key)
            return self.engines[key]
        if key not in self._loading:
            kind = EmbeddingEngine if model.model_type == "embedding" else Engine
            load = asyncio.to_thread(kind, key[1], self.config.device, self.config.trust_remote_code)
            self._loading[key] = asyncio.ensure_future(load)
        try:
            engine = await asyncio.shield(self._loading[key])
        except CheckpointError as exc:
            raise BadRequestError(f"model {model.identifier}: {exc}", param="model") from None
        finally:
            self._loading.pop(key, None)
        self.engines[key] = engine
        while len(self.engines) > self.config.max_loaded_models:
            dropped, _ = self.engines.popitem(last=False)
            log.info("transformers_model_dropped", path=dropped[1], model_type=dropped[0])
        return engine

    async def _generator(self, model: Model) -> Engine:
        if model.model_type != "llm":
            raise BadRequestError(
                f"model {model.identifier} is an embedding model; it embeds, it does not generate",
                param="model",
            )
        return await self._engine(model)

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
        engine = await self._generator(model)
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
        engine = await self._generator(model)
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
        raw = request.input
        texts = [raw] if isinstance(raw, str) else raw
        if not all(isinstance(t, str) for t in texts):
            raise BadRequestError(
                f"{model.identifier} takes text input (a string or a list of strings), not token ids",
                param="input",
            )
        vectors, tokens = await self._embed(model, texts, request.dimensions, "input", "dimensions")
        as_base64 = request.encoding_format == "base64"
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": _base64(vector) if as_base64 else vector,
            }
            for i, vector in enumerate(vectors)
        ]
        return {
            "object": "list",
            "data": data,
            "model": model.identifier,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    async def _embed(
        self, model: Model, texts: list[str], dimension: int | None, field: str, dimension_field: str
    ) -> tuple[list[list[float]], int]:
        if model.model_type != "embedding":
            raise BadRequestError(
                f"model {model.identifier} is an llm; register the checkpoint with model_type embedding to "
                "embed with it",
                param="model",
            )
        if len(texts) > MAX_INPUTS:
            raise BadRequestError(
                f"{field} has {len(texts)} texts; send at most {MAX_INPUTS} per request", param=field
            )
        engine = await self._engine(model)
        if dimension is not None and dimension != engine.dimension:
            raise BadRequestError(
                f"{dimension_field} {dimension}: {model.identifier} makes {engine.dimension}-dimensional "
                f"vectors only; omit {dimension_field} or set it to {engine.dimension}",
                param=dimension_field,
            )
        return await asyncio.to_thread(engine.embed, texts)

    # -- native routes ---------------------------------------------------------------------------

    async def chat_completion(self, model: Model, request: ChatCompletionRequest) -> Any:
        return await bridge.native_chat_via_openai(self, model, request, DIALECT)

    async def completion(self, model: Model, request: CompletionRequest) -> Any:
        return await bridge.native_completion_via_openai(self, model, request, DIALECT)

    async def embeddings(self, model: Model, request: EmbeddingsRequest) -> EmbeddingsResponse:
        texts = []
        for i, item in enumerate(request.contents):
            if not isinstance(item, str) and getattr(item, "type", None) != "text":
                raise BadRequestError(
                    f"{model.identifier} embeds text only; contents[{i}] is not text", param="contents"
                )
            texts.append(item if isinstance(item, str) else item.text)
        vectors, _ = await self._embed(model, texts, request.output_dimension, "contents", "output_dimension")
        return EmbeddingsResponse(embeddings=vectors)


def _base64(vector: list[float]) -> str:
    """OpenAI's base64 encoding: the vector's little-endian float32 bytes."""
    import base64
    import struct

    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _usage(result: Generated) -> dict[str, int]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
    }
