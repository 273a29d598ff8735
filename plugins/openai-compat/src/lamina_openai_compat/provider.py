"""Inference through an OpenAI-compatible upstream: OpenAI routes passed through, native ones translated."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog
from pydantic import BaseModel

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
from lamina.errors import BadRequestError, LaminaError, UpstreamError
from lamina.providers import ProviderBase, ProviderContext
from lamina.providers import openai_bridge as bridge
from lamina.providers import openai_shapes as shapes
from lamina.providers.http_upstream import Timeouts, UpstreamClient
from lamina.providers.upstream_probe import UpstreamProbe
from lamina.providers.upstream_retry import RetryPolicy
from lamina.request_context import request_provider_data
from lamina_openai_compat import config as cfg
from lamina_openai_compat.config import _NetworkConfig

log = structlog.get_logger(__name__)

ChunkCheck = Callable[[Any, str], dict[str, Any]]

# What each upstream accepts beyond standard OpenAI fields, and which provider-data key holds its key.
DIALECTS: dict[str, bridge.Dialect] = {
    "remote::vllm": bridge.Dialect(grammar_field="guided_grammar"),
    "remote::tgi": bridge.Dialect(repetition_penalty=False),
    "remote::together": bridge.Dialect(),
    "remote::fireworks": bridge.Dialect(repetition_penalty=False),
    "remote::groq": bridge.OPENAI_STRICT,
    "remote::openai": bridge.OPENAI_STRICT,
    "remote::nvidia": bridge.OPENAI_STRICT,
}
# provider type -> (its X-LlamaStack-Provider-Data validator, the field holding a caller's key)
PROVIDER_DATA: dict[str, tuple[type[BaseModel], str]] = {
    "remote::openai": (cfg.OpenAIProviderDataValidator, "openai_api_key"),
    "remote::together": (cfg.TogetherProviderDataValidator, "together_api_key"),
    "remote::fireworks": (cfg.FireworksProviderDataValidator, "fireworks_api_key"),
    "remote::groq": (cfg.GroqProviderDataValidator, "groq_api_key"),
    "remote::nvidia": (cfg.NVIDIAProviderDataValidator, "nvidia_api_key"),
    "remote::vllm": (cfg.VLLMProviderDataValidator, "vllm_api_token"),
    "remote::tgi": (cfg.TGIProviderDataValidator, "tgi_api_token"),
}


async def create_provider(
    config: _NetworkConfig, deps: dict, context: ProviderContext
) -> OpenAICompatProvider:
    return OpenAICompatProvider(config, context)


class OpenAICompatProvider(ProviderBase):
    def __init__(self, config: _NetworkConfig, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        self.dialect = DIALECTS.get(context.provider_type, bridge.OPENAI_STRICT)
        self.provider_data = PROVIDER_DATA.get(context.provider_type)
        headers = {}
        if config.secret():
            headers["Authorization"] = f"Bearer {config.secret()}"
        verify = getattr(config, "tls_verify", True)
        self.client = UpstreamClient(
            context.provider_id,
            config.base_url(),
            headers=headers,
            timeouts=Timeouts(connect=config.connect_timeout, read=config.timeout),
            max_connections=config.max_connections,
            verify_tls=verify,
            retries=RetryPolicy(max_retries=config.max_retries, max_seconds=config.retry_max_seconds),
        )
        self.upstream = UpstreamProbe(context.provider_id, self.list_upstream_models, "GET models")

    async def initialize(self) -> None:
        await self.client.start()

    async def shutdown(self) -> None:
        await self.client.close()

    async def health(self) -> dict[str, Any]:
        return await self.upstream.health()

    def _headers(self) -> dict[str, str] | None:
        """A caller's own key (X-LlamaStack-Provider-Data, validated by the server) overrides the
        configured one."""
        if self.provider_data is None:
            return None
        validator, field = self.provider_data
        data = request_provider_data(validator)
        key = getattr(data, field, None) if data is not None else None
        return {"Authorization": f"Bearer {key}"} if key else None

    # -- models --------------------------------------------------------------------------------

    async def list_upstream_models(self) -> list[str]:
        doc = await self.client.request_json("GET", "models", headers=self._headers())
        return [m.get("id") for m in (doc.get("data") or []) if isinstance(m, dict)]

    async def register_model(self, model: Model) -> Model:
        """Refuse a model the upstream says it does not serve; accept it unchecked if the upstream is
        down (known from a recent probe, else probed now, bounded: lamina.providers.upstream_probe)."""
        try:
            if (down := self.upstream.recently_down()) is not None:
                raise down
            served = await self.upstream.probe()
        except LaminaError as exc:
            log.warning(
                "model_not_checked", provider_id=self.provider_id, model=model.identifier, reason=exc.message
            )
            return model
        if served and model.provider_model_id not in served:
            shown = ", ".join(served[:20]) + (" ..." if len(served) > 20 else "")
            raise BadRequestError(
                f"provider '{self.provider_id}' does not serve model '{model.provider_model_id}'; it serves: "
                f"{shown}. Set provider_model_id to one of these.",
                param="provider_model_id",
            )
        return model

    async def unregister_model(self, model: Model) -> None:
        return None

    # -- OpenAI routes: pass through ------------------------------------------------------------

    async def openai_chat_completion(self, model: Model, request: OpenAIChatCompletionRequest) -> Any:
        body = request.upstream_body(model.provider_model_id)
        if request.stream:
            return self._relay_stream("chat/completions", body, model.identifier, shapes.check_chat_chunk)
        doc = shapes.check_chat_completion(await self._post("chat/completions", body), self.provider_id)
        return self._relabel(doc, model.identifier)

    async def openai_completion(self, model: Model, request: OpenAICompletionRequest) -> Any:
        body = request.upstream_body(model.provider_model_id)
        if request.stream:
            return self._relay_stream("completions", body, model.identifier, shapes.check_completion_chunk)
        doc = shapes.check_completion(await self._post("completions", body), self.provider_id)
        return self._relabel(doc, model.identifier)

    async def openai_embeddings(self, model: Model, request: OpenAIEmbeddingsRequest) -> dict[str, Any]:
        doc = await self._post("embeddings", request.upstream_body(model.provider_model_id))
        return self._relabel(shapes.check_embeddings(doc, self.provider_id), model.identifier)

    # -- native routes: translate ---------------------------------------------------------------

    async def chat_completion(self, model: Model, request: ChatCompletionRequest) -> Any:
        body = bridge.chat_request_to_openai(request, model.provider_model_id, self.dialect)
        self._default_max_tokens(body)
        if request.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
            return bridge.chat_stream_from_openai(
                self._stream("chat/completions", body, shapes.check_chat_chunk)
            )
        doc = shapes.check_chat_completion(await self._post("chat/completions", body), self.provider_id)
        return bridge.chat_response_from_openai(doc, self.provider_id)

    async def completion(self, model: Model, request: CompletionRequest) -> Any:
        body = bridge.completion_request_to_openai(request, model.provider_model_id, self.dialect)
        self._default_max_tokens(body)
        if request.stream:
            body["stream"] = True
            return bridge.completion_stream_from_openai(
                self._stream("completions", body, shapes.check_completion_chunk)
            )
        doc = shapes.check_completion(await self._post("completions", body), self.provider_id)
        return bridge.completion_response_from_openai(doc, self.provider_id)

    async def embeddings(self, model: Model, request: EmbeddingsRequest) -> EmbeddingsResponse:
        body = bridge.embeddings_request_to_openai(request, model.provider_model_id, self.provider_id)
        doc = shapes.check_embeddings(await self._post("embeddings", body), self.provider_id)
        data = doc["data"]
        if len(data) != len(request.contents):
            raise UpstreamError(
                self.provider_id,
                f"expected {len(request.contents)} embeddings, got {len(data)}",
            )
        data = sorted(data, key=lambda d: d.get("index", 0))
        return EmbeddingsResponse(embeddings=[d["embedding"] for d in data])

    # -- plumbing -------------------------------------------------------------------------------

    def _default_max_tokens(self, body: dict[str, Any]) -> None:
        default = getattr(self.config, "max_tokens", None)
        if default and "max_tokens" not in body:
            body["max_tokens"] = default

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        await self.upstream.ensure_up()
        doc = await self.client.request_json("POST", path, body, headers=self._headers())
        if not isinstance(doc, dict):
            raise UpstreamError(
                self.provider_id, f"expected a JSON object from {path}, got {type(doc).__name__}"
            )
        return doc

    async def _stream(
        self, path: str, body: dict[str, Any], check: ChunkCheck
    ) -> AsyncIterator[dict[str, Any]]:
        """The upstream's stream events, each checked for the shape clients rely on (else a 502)."""
        await self.upstream.ensure_up()
        async for chunk in self.client.stream_sse(path, body, headers=self._headers()):
            yield check(chunk, self.provider_id)

    async def _relay_stream(
        self, path: str, body: dict[str, Any], model_id: str, check: ChunkCheck
    ) -> AsyncIterator[dict[str, Any]]:
        async for chunk in self._stream(path, body, check):
            if "model" in chunk:
                chunk["model"] = model_id
            yield chunk

    @staticmethod
    def _relabel(doc: dict[str, Any], model_id: str) -> dict[str, Any]:
        if "model" in doc:
            doc["model"] = model_id
        return doc
