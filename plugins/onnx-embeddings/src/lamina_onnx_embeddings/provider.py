"""inline::sentence-transformers: all-MiniLM-L6-v2 embeddings on ONNX Runtime, in this process.

Native ``/v1/inference/embeddings`` and OpenAI ``/v1/embeddings``. Chat and text completion are not
served (the model type check of the router stops them before they get here).

``output_dimension`` / ``dimensions``: only 384 (or unset) is accepted. all-MiniLM-L6-v2 is not
trained with a Matryoshka loss, so the first k coordinates of its vectors are not an embedding of
their own: truncating and renormalising would answer quietly worse vectors. OpenAI answers 400 to
``dimensions`` on its models that cannot shorten (text-embedding-ada-002); so does this provider.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import numpy as np
import structlog

from lamina.apis.common import ImageContentItem
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
from lamina.errors import BadRequestError, NotImplementedByProviderError, ServiceUnavailableError
from lamina.providers import ProviderBase, ProviderContext
from lamina_onnx_embeddings.batcher import Batcher
from lamina_onnx_embeddings.config import SentenceTransformersInferenceConfig
from lamina_onnx_embeddings.engine import (
    MODEL_NAME,
    SERVED_MODEL_IDS,
    MiniLMEngine,
    TextTooLongError,
    Truncation,
)

log = structlog.get_logger(__name__)


async def create_provider(
    config: SentenceTransformersInferenceConfig, deps: dict, context: ProviderContext
) -> OnnxEmbeddingsProvider:
    return OnnxEmbeddingsProvider(config, context)


def encode_base64(vector: np.ndarray) -> str:
    """OpenAI's base64 encoding: the little-endian float32 bytes of the vector."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_base64(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4")


class OnnxEmbeddingsProvider(ProviderBase):
    def __init__(self, config: SentenceTransformersInferenceConfig, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        self.engine: MiniLMEngine | None = None
        self.batcher: Batcher | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def initialize(self) -> None:
        started = time.perf_counter()
        self.engine = await asyncio.to_thread(
            MiniLMEngine,
            self.config.model_path,
            self.config.tokenizer_path,
            threads=self.config.intra_op_threads(),
            max_length=self.config.max_length,
        )
        self.batcher = Batcher(
            self.engine.run,
            dimension=self.engine.dimension,
            max_batch_size=self.config.max_batch_size,
            workers=self.config.workers,
        )
        self.batcher.start()
        log.info(
            "embedding_model_loaded",
            provider_id=self.provider_id,
            model=str(self.engine.model_path),
            dimension=self.engine.dimension,
            threads=self.engine.threads,
            max_batch_size=self.config.max_batch_size,
            seconds=round(time.perf_counter() - started, 3),
        )

    async def shutdown(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()
            self.batcher = None

    async def health(self) -> dict[str, Any]:
        if self.engine is None or self.batcher is None:
            return {"status": "Error", "message": "the model is not loaded"}
        return {"status": "OK"}

    def _ready(self) -> tuple[MiniLMEngine, Batcher]:
        if self.engine is None or self.batcher is None:
            raise ServiceUnavailableError(f"provider '{self.provider_id}': the embedding model is not loaded")
        return self.engine, self.batcher

    # -- models --------------------------------------------------------------------------------

    async def register_model(self, model: Model) -> Model:
        if model.provider_model_id not in SERVED_MODEL_IDS:
            raise BadRequestError(
                f"provider '{self.provider_id}' (inline::sentence-transformers) serves only {MODEL_NAME}, "
                f"not '{model.provider_model_id}'. Set provider_model_id to '{MODEL_NAME}'.",
                param="provider_model_id",
            )
        if model.model_type != "embedding":
            raise BadRequestError(
                f"{MODEL_NAME} is an embedding model; register it with model_type 'embedding' "
                f"(got '{model.model_type}')",
                param="model_type",
            )
        dimension = self.engine.dimension if self.engine else None
        if dimension is not None and model.embedding_dimension != dimension:
            raise BadRequestError(
                f"{MODEL_NAME} makes {dimension}-dimensional vectors; set metadata.embedding_dimension to "
                f"{dimension} (got {model.embedding_dimension})",
                param="metadata.embedding_dimension",
            )
        return model

    async def unregister_model(self, model: Model) -> None:
        return None

    # -- embeddings ----------------------------------------------------------------------------

    async def embeddings(self, model: Model, request: EmbeddingsRequest) -> EmbeddingsResponse:
        texts = []
        for i, item in enumerate(request.contents):
            if isinstance(item, ImageContentItem):
                raise BadRequestError(
                    f"{model.identifier} embeds text only; contents[{i}] is an image", param="contents"
                )
            texts.append(item if isinstance(item, str) else item.text)
        self._check_dimension(model, request.output_dimension, "output_dimension")
        vectors, _tokens = await self._embed(model, texts, request.text_truncation or "none", "contents")
        # float32 rows made into Python floats here: nothing for validation to check (it took ~20 us
        # per vector on the c=1 path).
        return EmbeddingsResponse.model_construct(embeddings=vectors.tolist())

    async def openai_embeddings(self, model: Model, request: OpenAIEmbeddingsRequest) -> dict[str, Any]:
        raw = request.input
        texts = [raw] if isinstance(raw, str) else raw
        if not all(isinstance(t, str) for t in texts):
            raise BadRequestError(
                f"{model.identifier} takes text input (a string or a list of strings), not token ids: "
                f"token ids from another tokenizer (for example tiktoken's) mean nothing to it. If a "
                f"client library sends them (LangChain's OpenAIEmbeddings does), set "
                f"check_embedding_ctx_length=False.",
                param="input",
            )
        self._check_dimension(model, request.dimensions, "dimensions")
        truncation = self.config.openai_text_truncation
        vectors, tokens = await self._embed(model, texts, truncation, "input")
        as_base64 = request.encoding_format == "base64"
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": encode_base64(vector) if as_base64 else vector.tolist(),
            }
            for i, vector in enumerate(vectors)
        ]
        return {
            "object": "list",
            "data": data,
            "model": model.identifier,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _check_dimension(self, model: Model, value: int | None, field: str) -> None:
        dimension = self.engine.dimension if self.engine else model.embedding_dimension
        if value is None or value == dimension:
            return
        raise BadRequestError(
            f"{field} {value} is not supported by {model.identifier}: it makes {dimension}-dimensional "
            f"vectors only. all-MiniLM-L6-v2 is not trained for shortened (Matryoshka) vectors, so "
            f"truncating them would quietly lose quality; omit {field} or set it to {dimension}.",
            param=field,
        )

    async def _embed(
        self, model: Model, texts: list[str], truncation: Truncation, field: str
    ) -> tuple[np.ndarray, int]:
        """Unit vectors of ``texts`` and the tokens read (special tokens included)."""
        engine, batcher = self._ready()
        if len(texts) > self.config.max_inputs:
            raise BadRequestError(
                f"{field} has {len(texts)} texts; {model.identifier} takes at most {self.config.max_inputs} "
                f"per request (max_inputs). Send them in several requests.",
                param=field,
            )
        # Tokenizing a large request takes milliseconds: not on the event loop.
        tokenize = engine.tokenize
        try:
            seqs = (
                await asyncio.to_thread(tokenize, texts, truncation)
                if _large(texts)
                else tokenize(texts, truncation)
            )
        except TextTooLongError as exc:
            fix = (
                "set text_truncation to 'end' or 'start' to cut it, or split the text"
                if field == "contents"
                else "split the text (this provider's openai_text_truncation is 'none')"
            )
            raise BadRequestError(
                f"{field}[{exc.index}] is {exc.tokens} tokens long; {model.identifier} reads at most "
                f"{exc.limit} (max_length) and text_truncation is 'none': {fix}.",
                param=field,
            ) from None
        vectors = await batcher.embed(seqs)
        return vectors, sum(len(s) for s in seqs)

    # -- not served ----------------------------------------------------------------------------

    def _no_generation(self, model: Model) -> NotImplementedByProviderError:
        return NotImplementedByProviderError(
            f"provider '{self.provider_id}' (inline::sentence-transformers) serves embeddings only; "
            f"{model.identifier} cannot generate text",
            param="model",
        )

    async def chat_completion(self, model: Model, request: ChatCompletionRequest) -> Any:
        raise self._no_generation(model)

    async def completion(self, model: Model, request: CompletionRequest) -> Any:
        raise self._no_generation(model)

    async def openai_chat_completion(self, model: Model, request: OpenAIChatCompletionRequest) -> Any:
        raise self._no_generation(model)

    async def openai_completion(self, model: Model, request: OpenAICompletionRequest) -> Any:
        raise self._no_generation(model)


def _large(texts: list[str]) -> bool:
    return len(texts) > 8 or sum(map(len, texts)) > 8192
