"""The inference router: resolves the model of each call and hands it to the model's provider.

It also keeps the record of OpenAI chat completions (whichever provider served them), sends every
OpenAI answer out as OpenAI shapes it (``lamina.providers.openai_wire``: only OpenAI's fields; a
stream's usage chunk only when the request asked for it), and serves the batch routes:

- Every non-streamed ``/chat/completions`` answer, and every streamed one reassembled from its
  chunks once the stream has ended normally, is handed to the inference store's background writer
  (``lamina.storage.inference_store.CompletionWriter``); the request never waits for the database.
  A stream that fails, or that the client abandons, is not stored; nor is a request with OpenAI's
  ``store: false`` (the agents engine sends its own model calls so: a turn or response is stored whole).
- A batch calls the provider's non-streamed ``completion``/``chat_completion`` once per item through
  the line executor every batch of the server uses (``lamina.routers.batch_lines.run_lines``): at most
  ``batch_concurrency`` (default ``BATCH_CONCURRENCY`` = 8) at a time, each call marked as batch work
  (provider limits serve interactive calls first); results come back in input order. The first item
  to fail fails the whole batch (the others are cancelled), with the item's index in the message and
  the item's own HTTP status.

Every provider is called through ``lamina.quotas.token_budgets.budgeted``: with token budgets
configured (``server.quota.token_budgets``), a call is refused once its caller's budget for the model
is spent, and its answer's usage is charged to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from lamina.access.owners import caller
from lamina.apis.inference import (
    BatchChatCompletionRequest,
    BatchChatCompletionResponse,
    BatchCompletionRequest,
    BatchCompletionResponse,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingsRequest,
    GetChatCompletionRequest,
    ListChatCompletionMessagesRequest,
    ListChatCompletionMessagesResponse,
    ListChatCompletionsRequest,
    ListOpenAIChatCompletionResponse,
    OpenAIChatCompletionRequest,
    OpenAICompletionRequest,
    OpenAICompletionWithInputMessages,
    OpenAIEmbeddingsRequest,
)
from lamina.errors import BadRequestError, LaminaError, NotFoundError, ServiceUnavailableError
from lamina.providers import openai_wire
from lamina.providers.openai_stream_assembly import StreamAssembler
from lamina.quotas.token_budgets import budgeted
from lamina.resources.models import ModelsRoutingTable
from lamina.routers.batch_lines import run_lines
from lamina.storage.inference_store import CompletionWriter, record_from_completion

BATCH_CONCURRENCY = 8  # provider calls in flight per batch request

T = TypeVar("T")


class InferenceRouter:
    def __init__(self, models: ModelsRoutingTable, *, batch_concurrency: int = BATCH_CONCURRENCY) -> None:
        self.models = models
        self.batch_concurrency = batch_concurrency
        # Set by the stack once the inference store is open; None: nothing is recorded.
        self.completions: CompletionWriter | None = None

    async def _resolve(self, model_id: str, kind: str) -> tuple[Any, Any]:
        """The model and its provider, the provider charging the caller's token budget for the model
        (lamina.quotas.token_budgets; itself when no budget applies)."""
        model, provider = await self.models.resolve_typed(model_id, kind)
        return model, budgeted(provider, model.identifier)

    async def chat_completion(self, request: ChatCompletionRequest) -> Any:
        model, provider = await self._resolve(request.model_id, "llm")
        return await provider.chat_completion(model, request)

    async def completion(self, request: CompletionRequest) -> Any:
        model, provider = await self._resolve(request.model_id, "llm")
        return await provider.completion(model, request)

    async def embeddings(self, request: EmbeddingsRequest) -> Any:
        model, provider = await self._resolve(request.model_id, "embedding")
        return await provider.embeddings(model, request)

    async def openai_chat_completion(self, request: OpenAIChatCompletionRequest) -> Any:
        # OpenAI's ``store``: false keeps the completion out of the inference store (Lamina stores by
        # default, as Llama Stack does). Lamina is the store, so the field is not passed upstream.
        store = request.model_extra.pop("store", None) if request.model_extra else None
        if store is not None and not isinstance(store, bool):
            raise BadRequestError(
                f"store: must be true or false, got {store!r}; false keeps this chat completion out of "
                "GET /v1/openai/v1/chat/completions",
                param="store",
            )
        model, provider = await self._resolve(request.model, "llm")
        result = await provider.openai_chat_completion(model, request)
        writer = self.completions if store is not False else None
        owner = caller() if writer is not None else None  # access control reads it from the row
        owner_json = owner.to_json() if owner is not None else None
        if hasattr(result, "__anext__"):
            if writer is None:
                return openai_wire.openai_stream(result, include_usage=openai_wire.include_usage(request))
            return _recorded_stream(result, request, writer, model.identifier, owner_json)
        if isinstance(result, dict):
            openai_wire.clean_answer(result)
        if writer is not None:
            record = record_from_completion(result, model.identifier, request.messages, owner_json)
            if record is not None:
                writer.submit(record)
        return result

    async def openai_completion(self, request: OpenAICompletionRequest) -> Any:
        model, provider = await self._resolve(request.model, "llm")
        result = await provider.openai_completion(model, request)
        if hasattr(result, "__anext__"):
            return openai_wire.openai_stream(result, include_usage=openai_wire.include_usage(request))
        if isinstance(result, dict):
            openai_wire.clean_answer(result)
        return result

    async def openai_embeddings(self, request: OpenAIEmbeddingsRequest) -> Any:
        model, provider = await self._resolve(request.model, "embedding")
        return await provider.openai_embeddings(model, request)

    # -- stored chat completions ---------------------------------------------------------------

    def _writer(self) -> CompletionWriter:
        if self.completions is None:
            raise ServiceUnavailableError(
                "the inference store is not open (the server is starting or stopping)"
            )
        return self.completions

    async def completion_owner(self, completion_id: str) -> dict[str, Any] | None:
        """The owner kept in a stored completion's row (None: no such completion, stored without one,
        or the store is not open)."""
        writer = self.completions
        if writer is None:
            return None
        pending = writer.pending.get(completion_id)
        if pending is not None:
            return pending.owner
        return await writer.store.owner_of(completion_id)

    async def list_chat_completions(
        self, request: ListChatCompletionsRequest
    ) -> ListOpenAIChatCompletionResponse:
        page = await self._writer().store.list(
            after=request.after, limit=request.limit, order=request.order, model=request.model
        )
        data = [OpenAICompletionWithInputMessages.model_validate(row) for row in page.rows]
        return ListOpenAIChatCompletionResponse(
            data=data,
            has_more=page.has_more,
            first_id=data[0].id if data else "",
            last_id=data[-1].id if data else "",
        )

    async def get_chat_completion(
        self, request: GetChatCompletionRequest
    ) -> OpenAICompletionWithInputMessages:
        writer = self._writer()
        pending = writer.pending.get(request.completion_id)
        row = pending.stored() if pending is not None else await writer.store.get(request.completion_id)
        if row is None:
            raise NotFoundError(
                f"no stored chat completion has id '{request.completion_id}'; "
                f"GET /v1/openai/v1/chat/completions lists the stored ones",
                param="completion_id",
            )
        return OpenAICompletionWithInputMessages.model_validate(row)

    async def list_chat_completion_messages(
        self, request: ListChatCompletionMessagesRequest
    ) -> ListChatCompletionMessagesResponse:
        stored = await self.get_chat_completion(GetChatCompletionRequest(completion_id=request.completion_id))
        messages = [{"id": f"{stored.id}-{n}", **m} for n, m in enumerate(stored.input_messages)]
        if request.order == "desc":
            messages.reverse()
        start = 0
        if request.after is not None:
            ids = [m["id"] for m in messages]
            if request.after not in ids:
                raise BadRequestError(
                    f"after: '{request.after}' is not a message of chat completion '{stored.id}'; use the id "
                    f"of a message this route listed ({stored.id}-0 is the first)",
                    param="after",
                )
            start = ids.index(request.after) + 1
        page = messages[start : start + request.limit]
        return ListChatCompletionMessagesResponse(
            data=page,
            has_more=start + request.limit < len(messages),
            first_id=page[0]["id"] if page else "",
            last_id=page[-1]["id"] if page else "",
        )

    # -- batches -------------------------------------------------------------------------------

    async def batch_chat_completion(self, request: BatchChatCompletionRequest) -> BatchChatCompletionResponse:
        model, provider = await self._resolve(request.model_id, "llm")
        common = _shared_fields(request, "messages_batch")

        async def one(messages: list[Any]) -> Any:
            item = ChatCompletionRequest(**common, messages=messages, stream=False)
            return await provider.chat_completion(model, item)

        results = await self._run_batch("messages_batch", request.messages_batch, one)
        return BatchChatCompletionResponse(batch=results)

    async def batch_completion(self, request: BatchCompletionRequest) -> BatchCompletionResponse:
        model, provider = await self._resolve(request.model_id, "llm")
        common = _shared_fields(request, "content_batch")

        async def one(content: Any) -> Any:
            return await provider.completion(
                model, CompletionRequest(**common, content=content, stream=False)
            )

        results = await self._run_batch("content_batch", request.content_batch, one)
        return BatchCompletionResponse(batch=results)

    async def _run_batch(self, field: str, items: list[Any], call: Callable[[Any], Awaitable[T]]) -> list[T]:
        """``call`` on every item through the line executor; results in input order.

        The first failure cancels the rest and is raised with ``field[index]`` in its message.
        """

        async def one(i: int, item: Any) -> T:
            try:
                return await call(item)
            except LaminaError as exc:
                _at_index(exc, field, i)
                raise
            except Exception as exc:
                raise LaminaError(
                    f"{field}[{i}]: internal error: {type(exc).__name__}: {exc}", param=f"{field}[{i}]"
                ) from exc

        return await run_lines(items, one, concurrency=self.batch_concurrency)


def _shared_fields(request: Any, batch_field: str) -> dict[str, Any]:
    """The fields every item's request shares: the ones the batch request set, as validated objects."""
    return {name: getattr(request, name) for name in request.model_fields_set if name != batch_field}


def _at_index(exc: LaminaError, field: str, index: int) -> LaminaError:
    """The item's error, its message prefixed with ``field[index]`` (status and type unchanged)."""
    exc.message = f"{field}[{index}]: {exc.message}"  # the setter keeps args in step
    exc.param = exc.param or f"{field}[{index}]"
    return exc


async def _recorded_stream(
    chunks: AsyncIterator[Any],
    request: OpenAIChatCompletionRequest,
    writer: CompletionWriter,
    model: str,
    owner: dict[str, Any] | None,
) -> AsyncIterator[Any]:
    """Relay the chunks as OpenAI sends them; once the upstream stream has ended, hand the completion
    (with the provider's usage, asked for or not) to the writer."""
    assembler = StreamAssembler(model)
    out = openai_wire.openai_stream(
        chunks, include_usage=openai_wire.include_usage(request), observe=assembler.add
    )
    try:
        async for chunk in out:
            yield chunk
    finally:
        await out.aclose()
    completion = assembler.completion()
    if completion is not None and (
        record := record_from_completion(completion, model, request.messages, owner)
    ):
        writer.submit(record)
