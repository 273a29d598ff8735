"""remote::ollama: inference through Ollama's native API, and the server's models as resources.

At start-up the provider lists the server's models (``GET /api/tags``) and registers each as a
Lamina model (identifier = the Ollama tag, as Llama Stack 0.2.x's ``list_models`` does), marked
``metadata.source: listed_from_provider``. With ``refresh_models: true`` it re-lists every
``refresh_interval`` seconds, registering new models and removing listed ones that are gone. Models
registered by the run config or through the API are never touched by a refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
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
from lamina.apis.models import Model, RegisterModelRequest
from lamina.errors import BadRequestError, ConfigError, LaminaError
from lamina.providers import ProviderBase, ProviderContext
from lamina.providers.http_upstream import Timeouts
from lamina.specs import Api
from lamina_ollama import models as catalog
from lamina_ollama import native
from lamina_ollama import openai_shape as oai
from lamina_ollama.client import OllamaClient
from lamina_ollama.config import OllamaImplConfig

log = structlog.get_logger(__name__)

LISTED = "listed_from_provider"  # metadata.source of the models this provider registered itself
_MAX_IMAGE_BYTES = 20 * 1024 * 1024


async def create_provider(config: OllamaImplConfig, deps: dict, context: ProviderContext) -> OllamaProvider:
    router = deps.get(Api.inference)
    return OllamaProvider(config, context, models_table=getattr(router, "models", None))


class OllamaProvider(ProviderBase):
    def __init__(self, config: OllamaImplConfig, context: ProviderContext, models_table: Any = None) -> None:
        super().__init__(context)
        self.config = config
        self.models_table = models_table
        self.client = OllamaClient(
            context.provider_id,
            config.url,
            timeouts=Timeouts(connect=config.connect_timeout, read=config.timeout),
            max_connections=config.max_connections,
        )
        self._tags: list[dict[str, Any]] = []
        self._tags_at = 0.0
        self._refresher: asyncio.Task | None = None
        self._refresh_lock = asyncio.Lock()

    # -- lifecycle -----------------------------------------------------------------------------

    async def initialize(self) -> None:
        await self.client.start()
        try:
            await self.refresh()
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
        if self.config.refresh_models:
            self._refresher = asyncio.create_task(
                self._refresh_loop(), name=f"ollama-refresh-{self.provider_id}"
            )

    async def shutdown(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        await self.client.close()

    async def health(self) -> dict[str, Any]:
        try:
            await self.client.call("GET", "api/ps")
        except LaminaError as exc:
            return {"status": "Error", "message": exc.message}
        return {"status": "OK"}

    async def should_refresh_models(self) -> bool:
        return self.config.refresh_models

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

    async def list_models(self) -> list[Model]:
        """The server's models as Lamina models (Llama Stack 0.2.x's ``list_models``)."""
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

    async def refresh(self) -> None:
        """List the server's models and make the registered set match it.

        Registers new models, re-registers listed ones whose details changed and removes listed
        ones the server no longer has. Identifiers registered otherwise (run config, API) win.
        """
        async with self._refresh_lock:
            listed = await self.list_models()
            table = self.models_table
            if table is None:
                return
            # The stack adds the provider to the table right after initialize(); registering
            # needs it there already (each registration passes through register_model below).
            table.providers.setdefault(self.provider_id, self)
            wanted = {m.identifier: m for m in listed}
            for model in listed:
                existing = await table.registry.get("model", model.identifier)
                if existing is not None:
                    mine = existing.get("provider_id") == self.provider_id
                    if not mine or (existing.get("metadata") or {}).get("source") != LISTED:
                        continue  # registered by the config or a user: theirs
                    if (existing.get("metadata"), existing.get("model_type")) == (
                        model.metadata,
                        model.model_type,
                    ):
                        continue
                request = RegisterModelRequest(
                    model_id=model.identifier,
                    provider_id=self.provider_id,
                    provider_model_id=model.provider_resource_id,
                    model_type=model.model_type,
                    metadata=model.metadata,
                )
                try:
                    await table.register_model(request, replace=True)
                except LaminaError as exc:
                    log.warning("ollama_model_not_registered", model=model.identifier, error=exc.message)
            for model in await table.list():
                if (
                    model.provider_id == self.provider_id
                    and model.metadata.get("source") == LISTED
                    and model.identifier not in wanted
                ):
                    await table.remove(model.identifier)
            log.info("ollama_models_listed", provider_id=self.provider_id, count=len(listed))

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.refresh_interval)
            try:
                await self.refresh()
            except LaminaError as exc:
                log.warning("ollama_refresh_failed", provider_id=self.provider_id, error=exc.message)
            except Exception:
                log.exception("ollama_refresh_crashed", provider_id=self.provider_id)

    async def register_model(self, model: Model) -> Model:
        """Accept a model the server has (``name`` and ``name:latest`` are one model; Llama Stack's
        Hugging Face aliases map to the first matching tag); refuse one it has not pulled."""
        wanted = model.provider_model_id
        candidates = catalog.alias_candidates(wanted)
        try:
            # A refresh registers every listed model: reuse the listing it just fetched.
            max_age = 30.0 if self._refresh_lock.locked() else 0.0
            tags = await asyncio.wait_for(self.tags(max_age=max_age), timeout=5.0)
        except (LaminaError, TimeoutError) as exc:
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
                f"provider '{self.provider_id}': the Ollama server at {self.config.url} has no model "
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
            include_usage = bool((request.stream_options or {}).get("include_usage"))
            events = self.client.stream_ndjson("api/chat", body, model=tag)
            return oai.chat_chunks(events, model.identifier, include_usage)
        docs = await asyncio.gather(
            *(self.client.call("POST", "api/chat", body, model=tag) for _ in range(request.n or 1))
        )
        return oai.chat_completion(list(docs), model.identifier, self.provider_id)

    async def openai_completion(self, model: Model, request: OpenAICompletionRequest) -> Any:
        tag = model.provider_model_id
        bodies = [self._with_keep_alive(b) for b in oai.completion_bodies(request, tag, self.provider_id)]
        if request.stream:
            include_usage = bool((request.stream_options or {}).get("include_usage"))
            events = self.client.stream_ndjson("api/generate", bodies[0], model=tag)
            return oai.text_chunks(
                events, model.identifier, bodies[0]["prompt"], bool(request.echo), include_usage
            )
        jobs = [(b, b["prompt"]) for b in bodies for _ in range(request.n or 1)]
        docs = await asyncio.gather(
            *(self.client.call("POST", "api/generate", b, model=tag) for b, _ in jobs)
        )
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
        """Ollama takes image bytes, not URLs: download the image (pooled session, size-capped)."""
        try:
            async with self.client.session.get(url) as resp:
                if resp.status >= 400:
                    raise BadRequestError(
                        f"could not fetch image {url}: HTTP {resp.status}", param="messages"
                    )
                data = await resp.content.read(_MAX_IMAGE_BYTES + 1)
        except LaminaError:
            raise
        except Exception as exc:
            raise BadRequestError(
                f"could not fetch image {url}: {type(exc).__name__}: {exc}", param="messages"
            ) from exc
        if len(data) > _MAX_IMAGE_BYTES:
            raise BadRequestError(f"image {url} is larger than 20 MB", param="messages")
        return data
