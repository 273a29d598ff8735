"""remote::ollama: inference through Ollama's native API, and the server's models as resources.

``list_models`` lists the server's models (``GET /api/tags``), each as a Lamina model whose
identifier is its Ollama tag, as Llama Stack 0.2.x's does; the core registers them at start-up
(marked ``metadata.source: listed_from_provider``) and, with ``refresh_models: true``, re-lists
every ``refresh_interval`` seconds (``should_refresh_models``), registering new models and removing
listed ones that are gone. Models registered by the run config or through the API are never
touched by a listing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
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
from lamina.errors import BadRequestError, ConfigError, LaminaError
from lamina.providers import ProviderBase, ProviderContext
from lamina.providers.http_upstream import Timeouts
from lamina.providers.upstream_probe import UpstreamProbe
from lamina.providers.upstream_retry import RetryPolicy
from lamina.providers.url_fetch import GuardedFetcher
from lamina.resources.models import LISTED
from lamina_ollama import models as catalog
from lamina_ollama import native
from lamina_ollama import openai_shape as oai
from lamina_ollama.client import OllamaClient
from lamina_ollama.config import OllamaImplConfig

log = structlog.get_logger(__name__)


# A model the core registers from a listing is checked against the tags that listing just fetched.
_LISTING_MAX_AGE = 30.0


async def create_provider(config: OllamaImplConfig, deps: dict, context: ProviderContext) -> OllamaProvider:
    return OllamaProvider(config, context)


async def _all_or_none(calls: list[Coroutine[Any, Any, dict]]) -> list[dict]:
    """The upstream calls of one request (n choices, several prompts): the first to fail cancels
    the others, rather than leaving them to run on for an answer nobody will read."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call) for call in calls]
    except BaseExceptionGroup as eg:
        first = eg.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return [task.result() for task in tasks]


class OllamaProvider(ProviderBase):
    def __init__(self, config: OllamaImplConfig, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        self.client = OllamaClient(
            context.provider_id,
            config.url,
            timeouts=Timeouts(connect=config.connect_timeout, read=config.timeout),
            max_connections=config.max_connections,
            retries=RetryPolicy(max_retries=config.max_retries, max_seconds=config.retry_max_seconds),
        )
        self._tags: list[dict[str, Any]] = []
        self._tags_at = 0.0
        self.upstream = UpstreamProbe(context.provider_id, self.tags, "GET /api/tags")

    # -- lifecycle -----------------------------------------------------------------------------

    async def initialize(self) -> None:
        await self.client.start()
        try:
            await self.probe()
        except LaminaError as exc:
            if self.config.raise_on_connect_error:
                await self.client.close()
                raise ConfigError(
                    f"{exc.message.rstrip('.')}. Start Ollama (`ollama serve`) or fix the provider's "
                    f"url; set raise_on_connect_error: false to start without it."
                ) from None
            log.warning(
                "ollama_unreachable", provider_id=self.provider_id, url=self.config.url, error=exc.message
            )

    async def shutdown(self) -> None:
        await self.client.close()

    async def health(self) -> dict[str, Any]:
        return await self.upstream.health()

    async def probe(self) -> list[dict[str, Any]]:
        """The server's tags, asked with a short bound (``lamina.providers.upstream_probe``)."""
        return await self.upstream.probe()

    # -- the server's models -------------------------------------------------------------------

    async def tags(self, max_age: float = 0.0) -> list[dict[str, Any]]:
        """``GET /api/tags``'s models (cached for ``max_age`` seconds)."""
        if max_age and self._tags_at and time.monotonic() - self._tags_at < max_age:
            return self._tags
        doc = await self.client.call("GET", "api/tags")
        tags = [
            t for t in doc.get("models") or [] if isinstance(t, dict) and (t.get("model") or t.get("name"))
        ]
        self._tags, self._tags_at = tags, time.monotonic()
        return tags

    async def should_refresh_models(self) -> bool:
        """``refresh_models``: the core re-lists the server's models every ``refresh_interval`` s."""
        return self.config.refresh_models

    @property
    def refresh_interval(self) -> float:
        return self.config.refresh_interval

    async def list_models(self) -> list[Model]:
        """The server's models as Lamina models (Llama Stack 0.2.x's ``list_models``); the core
        registers them. Raises (``UpstreamError``) when the server cannot be reached."""
        out = []
        for tag in await self.tags():
            name = str(tag.get("model") or tag.get("name"))
            metadata: dict[str, Any] = {"source": LISTED}
            model_type = "llm"
            if catalog.embedding_metadata(tag) or catalog.looks_like_embedder(tag):
                dims = await self._embedding_metadata(name, tag)
                if dims is None:
                    log.info("ollama_embedder_skipped", model=name, reason="unknown embedding dimension")
                    continue
                metadata.update(dims)
                model_type = "embedding"
            details = tag.get("details") or {}
            for key in ("family", "parameter_size", "quantization_level"):
                if details.get(key):
                    metadata[key] = details[key]
            out.append(
                Model(
                    identifier=name,
                    provider_resource_id=name,
                    provider_id=self.provider_id,
                    model_type=model_type,
                    metadata=metadata,
                )
            )
        return out

    async def _embedding_metadata(self, name: str, tag: dict[str, Any]) -> dict[str, int] | None:
        """The dimension from ``/api/show`` (``<arch>.embedding_length``), else the static table."""
        try:
            info = (await self.client.call("POST", "api/show", {"model": name}, model=name)).get("model_info")
        except LaminaError:
            info = None
        if isinstance(info, dict):
            dim = next((v for k, v in info.items() if k.endswith(".embedding_length")), None)
            ctx = next((v for k, v in info.items() if k.endswith(".context_length")), None)
            if isinstance(dim, int) and dim > 0:
                return {
                    "embedding_dimension": dim,
                    **({"context_length": ctx} if isinstance(ctx, int) else {}),
                }
        return catalog.embedding_metadata(tag)

    async def register_model(self, model: Model) -> Model:
        """Accept a model the server has (``name`` and ``name:latest`` are one model; Llama Stack's
        Hugging Face aliases map to the first matching tag); refuse one it has not pulled."""
        wanted = model.provider_model_id
        candidates = catalog.alias_candidates(wanted)
        try:
            # The core registers every model list_models listed: reuse the listing it just fetched.
            max_age = _LISTING_MAX_AGE if model.metadata.get("source") == LISTED else 0.0
            if (down := self.upstream.recently_down()) is not None:
                raise down
            fresh = max_age and self._tags_at and time.monotonic() - self._tags_at < max_age
            tags = self._tags if fresh else await self.probe()
        except LaminaError as exc:
            log.warning(
                "model_not_checked",
                provider_id=self.provider_id,
                model=model.identifier,
                reason=getattr(exc, "message", "timed out"),
            )
            return model.model_copy(update={"provider_resource_id": candidates[0]}) if candidates else model
        served = [str(t.get("model") or t.get("name")) for t in tags]
        found = catalog.find_served(wanted, served)
        if found is None:
            pull = candidates[0] if candidates else wanted
            shown = ", ".join(served[:20]) + (" ..." if len(served) > 20 else "")
            raise BadRequestError(
                f"provider '{self.provider_id}': its Ollama server has no model "
                f"'{wanted}'. Pull it there with `ollama pull {pull}`, or set provider_model_id to one it "
                f"has: {shown or 'none (the server has no models)'}.",
                param="provider_model_id",
            )
        return model.model_copy(update={"provider_resource_id": found}) if found != wanted else model

    async def unregister_model(self, model: Model) -> None:
        return None

    # -- native routes -------------------------------------------------------------------------

    async def chat_completion(self, model: Model, request: ChatCompletionRequest) -> Any:
        tag = model.provider_model_id
        body = self._with_keep_alive(
            await native.chat_body(request, tag, self.provider_id, self._fetch_image)
        )
        if request.stream:
            return native.chat_stream(
                self.client.stream_ndjson("api/chat", body, model=tag), self.provider_id
            )
        return native.chat_response(
            await self.client.call("POST", "api/chat", body, model=tag), self.provider_id
        )

    async def completion(self, model: Model, request: CompletionRequest) -> Any:
        tag = model.provider_model_id
        body = self._with_keep_alive(native.completion_body(request, tag, self.provider_id))
        if request.stream:
            return native.completion_stream(self.client.stream_ndjson("api/generate", body, model=tag))
        return native.completion_response(await self.client.call("POST", "api/generate", body, model=tag))

    async def embeddings(self, model: Model, request: EmbeddingsRequest) -> EmbeddingsResponse:
        tag = model.provider_model_id
        body = self._with_keep_alive(native.embed_body(request, tag, self.provider_id))
        doc = await self.client.call("POST", "api/embed", body, model=tag)
        return EmbeddingsResponse(
            embeddings=native.embeddings_from_ollama(doc, len(request.contents), self.provider_id)
        )

    # -- OpenAI routes -------------------------------------------------------------------------

    async def openai_chat_completion(self, model: Model, request: OpenAIChatCompletionRequest) -> Any:
        tag = model.provider_model_id
        body = self._with_keep_alive(await oai.chat_body(request, tag, self.provider_id, self._fetch_image))
        if request.stream:
            events = self.client.stream_ndjson("api/chat", body, model=tag)
            return oai.chat_chunks(events, model.identifier)
        docs = await _all_or_none(
            [self.client.call("POST", "api/chat", body, model=tag) for _ in range(request.n or 1)]
        )
        return oai.chat_completion(list(docs), model.identifier, self.provider_id)

    async def openai_completion(self, model: Model, request: OpenAICompletionRequest) -> Any:
        tag = model.provider_model_id
        bodies = [self._with_keep_alive(b) for b in oai.completion_bodies(request, tag, self.provider_id)]
        if request.stream:
            events = self.client.stream_ndjson("api/generate", bodies[0], model=tag)
            return oai.text_chunks(events, model.identifier, bodies[0]["prompt"], bool(request.echo))
        jobs = [(b, b["prompt"]) for b in bodies for _ in range(request.n or 1)]
        docs = await _all_or_none([self.client.call("POST", "api/generate", b, model=tag) for b, _ in jobs])
        return oai.text_completion(list(docs), [p for _, p in jobs], bool(request.echo), model.identifier)

    async def openai_embeddings(self, model: Model, request: OpenAIEmbeddingsRequest) -> dict[str, Any]:
        tag = model.provider_model_id
        body = self._with_keep_alive(oai.embed_body(request, tag, self.provider_id))
        doc = await self.client.call("POST", "api/embed", body, model=tag)
        return oai.embeddings(
            doc, len(body["input"]), request.encoding_format, model.identifier, self.provider_id
        )

    # -- plumbing ------------------------------------------------------------------------------

    def _with_keep_alive(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.config.keep_alive is not None and "keep_alive" not in body:
            body["keep_alive"] = self.config.keep_alive
        return body

    async def _fetch_image(self, url: str) -> bytes:
        """Ollama takes image bytes, not URLs: download the image with the guarded fetcher.

        A client names the URL, so it is fetched only as ``image_fetch`` allows (by default not at
        all): see ``lamina.providers.url_fetch``.
        """
        return (await GuardedFetcher(self.config.image_fetch).fetch(url, param="messages")).body
