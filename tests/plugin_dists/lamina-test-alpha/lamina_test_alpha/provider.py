"""Providers of lamina-test-alpha.

``AlphaProvider`` serves ``remote::test-alpha``: it answers every chat with its configured greeting.
``GenericProvider`` (with ``GenericConfig``) is a provider for any API that only records how it was
created; the hook tests point ProviderSpecs of every API at it.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict

from lamina.apis.inference import ChatCompletionResponse, CompletionMessage
from lamina.apis.models import Model
from lamina.providers.base import ProviderBase, ProviderContext

CREATED: list[GenericProvider] = []


class AlphaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    greeting: str = "hello"


class AlphaProvider(ProviderBase):
    def __init__(self, config: AlphaConfig, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        self.registered: dict[str, Model] = {}

    async def health(self) -> dict[str, Any]:
        return {"status": "OK"}

    async def register_model(self, model: Model) -> Model:
        self.registered[model.identifier] = model
        return model

    async def unregister_model(self, model: Model) -> None:
        self.registered.pop(model.identifier, None)

    def _answer(self, model: Model) -> str:
        return f"{self.config.greeting} from {model.provider_model_id}"

    async def chat_completion(self, model: Model, request: Any) -> ChatCompletionResponse:
        return ChatCompletionResponse(completion_message=CompletionMessage(content=self._answer(model)))

    async def openai_chat_completion(self, model: Model, request: Any) -> dict[str, Any]:
        return {
            "id": "chatcmpl-alpha",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model.identifier,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": self._answer(model)},
                }
            ],
        }


async def create_provider(config: AlphaConfig, deps: dict, context: ProviderContext) -> AlphaProvider:
    return AlphaProvider(config, context)


class GenericConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str


class GenericProvider(ProviderBase):
    def __init__(self, config: GenericConfig, deps: dict, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        self.deps = deps
        self.initialized = False

    async def initialize(self) -> None:
        self.initialized = True


async def create_generic_provider(
    config: GenericConfig, deps: dict, context: ProviderContext
) -> GenericProvider:
    provider = GenericProvider(config, deps, context)
    CREATED.append(provider)
    return provider
