"""The inference router: resolves the model of each call and hands it to the model's provider."""

from __future__ import annotations

from typing import Any

from lamina.apis.inference import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingsRequest,
    OpenAIChatCompletionRequest,
    OpenAICompletionRequest,
    OpenAIEmbeddingsRequest,
)
from lamina.resources.models import ModelsRoutingTable


class InferenceRouter:
    def __init__(self, models: ModelsRoutingTable) -> None:
        self.models = models

    async def chat_completion(self, request: ChatCompletionRequest) -> Any:
        model, provider = await self.models.resolve_typed(request.model_id, "llm")
        return await provider.chat_completion(model, request)

    async def completion(self, request: CompletionRequest) -> Any:
        model, provider = await self.models.resolve_typed(request.model_id, "llm")
        return await provider.completion(model, request)

    async def embeddings(self, request: EmbeddingsRequest) -> Any:
        model, provider = await self.models.resolve_typed(request.model_id, "embedding")
        return await provider.embeddings(model, request)

    async def openai_chat_completion(self, request: OpenAIChatCompletionRequest) -> Any:
        model, provider = await self.models.resolve_typed(request.model, "llm")
        return await provider.openai_chat_completion(model, request)

    async def openai_completion(self, request: OpenAICompletionRequest) -> Any:
        model, provider = await self.models.resolve_typed(request.model, "llm")
        return await provider.openai_completion(model, request)

    async def openai_embeddings(self, request: OpenAIEmbeddingsRequest) -> Any:
        model, provider = await self.models.resolve_typed(request.model, "embedding")
        return await provider.openai_embeddings(model, request)
