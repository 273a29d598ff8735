"""Inference: chat and text completion, embeddings, in the Llama Stack and OpenAI shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lamina.access.declarations import creates, lists, reads, uses
from lamina.apis.common import InterleavedContent, InterleavedContentItem
from lamina.apis.models import Model
from lamina.apis.webmethod import webmethod

StopReason = Literal["end_of_turn", "end_of_message", "out_of_tokens"]

# -- messages ----------------------------------------------------------------------------------


class ToolCall(BaseModel):
    call_id: str
    tool_name: str
    arguments: str | dict[str, Any]
    arguments_json: str | None = None


class UserMessage(BaseModel):
    role: Literal["user"] = "user"
    content: InterleavedContent
    context: InterleavedContent | None = None


class SystemMessage(BaseModel):
    role: Literal["system"] = "system"
    content: InterleavedContent


class ToolResponseMessage(BaseModel):
    role: Literal["tool"] = "tool"
    call_id: str
    content: InterleavedContent


class CompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: InterleavedContent
    stop_reason: StopReason = "end_of_turn"
    tool_calls: list[ToolCall] | None = Field(default_factory=list)


Message = Annotated[
    UserMessage | SystemMessage | ToolResponseMessage | CompletionMessage, Field(discriminator="role")
]

# -- sampling, tools, formats ------------------------------------------------------------------


class GreedySamplingStrategy(BaseModel):
    type: Literal["greedy"] = "greedy"


class TopPSamplingStrategy(BaseModel):
    type: Literal["top_p"] = "top_p"
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=0.95, gt=0.0, le=1.0)


class TopKSamplingStrategy(BaseModel):
    type: Literal["top_k"] = "top_k"
    top_k: int = Field(ge=1)


SamplingStrategy = Annotated[
    GreedySamplingStrategy | TopPSamplingStrategy | TopKSamplingStrategy, Field(discriminator="type")
]


class SamplingParams(BaseModel):
    strategy: SamplingStrategy = Field(default_factory=GreedySamplingStrategy)
    max_tokens: int | None = Field(default=0, ge=0, description="0 or null: the provider's default.")
    repetition_penalty: float | None = Field(default=1.0, gt=0.0)
    stop: list[str] | None = None


class ToolParamDefinition(BaseModel):
    param_type: str
    description: str | None = None
    required: bool | None = True
    default: Any = None


class ToolDefinition(BaseModel):
    tool_name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, ToolParamDefinition] | None = None


ToolPromptFormat = Literal["json", "function_tag", "python_list"]


class ToolConfig(BaseModel):
    tool_choice: str | None = Field(default="auto", description="auto | required | none | a tool name")
    tool_prompt_format: ToolPromptFormat | None = None
    system_message_behavior: Literal["append", "replace"] | None = "append"


class JsonSchemaResponseFormat(BaseModel):
    type: Literal["json_schema"] = "json_schema"
    json_schema: dict[str, Any]


class GrammarResponseFormat(BaseModel):
    type: Literal["grammar"] = "grammar"
    bnf: dict[str, Any]


ResponseFormat = Annotated[JsonSchemaResponseFormat | GrammarResponseFormat, Field(discriminator="type")]


class LogProbConfig(BaseModel):
    top_k: int | None = Field(default=0, ge=0, le=20)


class TokenLogProbs(BaseModel):
    logprobs_by_token: dict[str, float]


class Metric(BaseModel):
    metric: str
    value: float
    unit: str | None = None


# -- native requests and responses -------------------------------------------------------------


class ChatCompletionRequest(BaseModel):
    model_id: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    sampling_params: SamplingParams | None = None
    tools: list[ToolDefinition] | None = None
    tool_choice: Literal["auto", "required", "none"] | None = None
    tool_prompt_format: ToolPromptFormat | None = None
    response_format: ResponseFormat | None = None
    stream: bool | None = False
    logprobs: LogProbConfig | None = None
    tool_config: ToolConfig | None = None

    def effective_tool_config(self) -> ToolConfig:
        """tool_config, with the deprecated top-level tool_choice/tool_prompt_format folded in."""
        cfg = self.tool_config or ToolConfig()
        if self.tool_config is None or self.tool_config.tool_choice is None:
            cfg = cfg.model_copy(update={"tool_choice": self.tool_choice or "auto"})
        if cfg.tool_prompt_format is None and self.tool_prompt_format is not None:
            cfg = cfg.model_copy(update={"tool_prompt_format": self.tool_prompt_format})
        return cfg


class ChatCompletionResponse(BaseModel):
    completion_message: CompletionMessage
    logprobs: list[TokenLogProbs] | None = None
    metrics: list[Metric] | None = None


class TextDelta(BaseModel):
    type: Literal["text"] = "text"
    text: str


class ImageDelta(BaseModel):
    type: Literal["image"] = "image"
    image: str


class ToolCallDelta(BaseModel):
    type: Literal["tool_call"] = "tool_call"
    tool_call: ToolCall | str
    parse_status: Literal["started", "in_progress", "failed", "succeeded"]


ContentDelta = Annotated[TextDelta | ImageDelta | ToolCallDelta, Field(discriminator="type")]


class ChatCompletionResponseEvent(BaseModel):
    event_type: Literal["start", "complete", "progress"]
    delta: ContentDelta
    logprobs: list[TokenLogProbs] | None = None
    stop_reason: StopReason | None = None


class ChatCompletionResponseStreamChunk(BaseModel):
    event: ChatCompletionResponseEvent
    metrics: list[Metric] | None = None


class CompletionRequest(BaseModel):
    model_id: str = Field(min_length=1)
    content: InterleavedContent
    sampling_params: SamplingParams | None = None
    response_format: ResponseFormat | None = None
    stream: bool | None = False
    logprobs: LogProbConfig | None = None


class CompletionResponse(BaseModel):
    content: str
    stop_reason: StopReason
    logprobs: list[TokenLogProbs] | None = None
    metrics: list[Metric] | None = None


class CompletionResponseStreamChunk(BaseModel):
    delta: str
    stop_reason: StopReason | None = None
    logprobs: list[TokenLogProbs] | None = None
    metrics: list[Metric] | None = None


class EmbeddingsRequest(BaseModel):
    model_id: str = Field(min_length=1)
    contents: list[str] | list[InterleavedContentItem] = Field(min_length=1)
    text_truncation: Literal["none", "start", "end"] | None = "none"
    output_dimension: int | None = Field(default=None, ge=1)
    task_type: Literal["query", "document"] | None = None


class EmbeddingsResponse(BaseModel):
    embeddings: list[list[float]]


# -- OpenAI requests (validated where it matters, everything else passed through) --------------


class OpenAIMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class _OpenAIRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    n: int | None = Field(default=None, ge=1, le=128)
    seed: int | None = None
    stop: str | list[str] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    user: str | None = None

    def upstream_body(self, provider_model_id: str) -> dict[str, Any]:
        """The request as the upstream should see it: the provider's model id, nothing unset."""
        body = self.model_dump(exclude_unset=True)
        body["model"] = provider_model_id
        return body


class OpenAIChatCompletionRequest(_OpenAIRequest):
    messages: list[OpenAIMessage] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    @field_validator("response_format")
    @classmethod
    def _known_format(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and value.get("type") not in ("text", "json_object", "json_schema"):
            raise ValueError("response_format.type must be 'text', 'json_object' or 'json_schema'")
        if value is not None and value.get("type") == "json_schema" and "json_schema" not in value:
            raise ValueError(
                "response_format of type 'json_schema' needs a 'json_schema' object "
                '({"name": ..., "schema": {...}})'
            )
        return value


class OpenAICompletionRequest(_OpenAIRequest):
    prompt: str | list[str] | list[int] | list[list[int]]
    logprobs: int | None = Field(default=None, ge=0, le=5)
    echo: bool | None = None
    best_of: int | None = Field(default=None, ge=1)
    suffix: str | None = None


class OpenAIEmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if value == "" or value == []:
            raise ValueError("input must be a non-empty string or a non-empty list")
        return value

    def upstream_body(self, provider_model_id: str) -> dict[str, Any]:
        body = self.model_dump(exclude_unset=True)
        body["model"] = provider_model_id
        return body


class OpenAIResponse(BaseModel):
    """An OpenAI response object, passed through as the upstream produced it."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    object: str | None = None
    created: int | None = None
    model: str | None = None


# -- stored chat completions (Llama Stack 0.2.12 shapes) ----------------------------------------

MAX_LIST_LIMIT = 100


class ListChatCompletionsRequest(BaseModel):
    """Query parameters of GET /v1/openai/v1/chat/completions."""

    after: str | None = Field(default=None, description="A completion id: list the ones after it.")
    limit: int = Field(default=20, ge=1, le=MAX_LIST_LIMIT, description="Page size.")
    order: Literal["asc", "desc"] = Field(default="desc", description="By creation time.")
    model: str | None = Field(default=None, description="Only this model's completions.")

    @field_validator("after", "model", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value


class GetChatCompletionRequest(BaseModel):
    completion_id: str = Field(min_length=1)


class OpenAICompletionWithInputMessages(BaseModel):
    """A stored chat completion: the chat.completion object plus the messages that produced it."""

    model_config = ConfigDict(extra="allow")

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[dict[str, Any]]
    input_messages: list[dict[str, Any]]


class ListOpenAIChatCompletionResponse(BaseModel):
    data: list[OpenAICompletionWithInputMessages]
    has_more: bool
    first_id: str
    last_id: str
    object: Literal["list"] = "list"


class ListChatCompletionMessagesRequest(BaseModel):
    """GET /v1/openai/v1/chat/completions/{completion_id}/messages: a stored completion's input messages."""

    completion_id: str = Field(min_length=1)
    after: str | None = Field(default=None, description="A message id: list the ones after it.")
    limit: int = Field(default=20, ge=1, le=MAX_LIST_LIMIT, description="Page size.")
    order: Literal["asc", "desc"] = Field(default="asc", description="By position in the conversation.")

    @field_validator("after", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value


class ListChatCompletionMessagesResponse(BaseModel):
    """OpenAI's list of a stored chat completion's messages (each with an ``id``: ``<completion id>-<n>``)."""

    data: list[dict[str, Any]]
    has_more: bool
    first_id: str
    last_id: str
    object: Literal["list"] = "list"


# -- batch inference (Llama Stack 0.2.12, experimental there) -----------------------------------

MAX_BATCH_SIZE = 256


class BatchCompletionRequest(BaseModel):
    model_id: str = Field(min_length=1)
    content_batch: list[InterleavedContent] = Field(min_length=1, max_length=MAX_BATCH_SIZE)
    sampling_params: SamplingParams | None = None
    response_format: ResponseFormat | None = None
    logprobs: LogProbConfig | None = None


class BatchCompletionResponse(BaseModel):
    batch: list[CompletionResponse]


class BatchChatCompletionRequest(BaseModel):
    model_id: str = Field(min_length=1)
    messages_batch: list[Annotated[list[Message], Field(min_length=1)]] = Field(
        min_length=1, max_length=MAX_BATCH_SIZE
    )
    sampling_params: SamplingParams | None = None
    tools: list[ToolDefinition] | None = None
    tool_config: ToolConfig | None = None
    response_format: ResponseFormat | None = None
    logprobs: LogProbConfig | None = None


class BatchChatCompletionResponse(BaseModel):
    batch: list[ChatCompletionResponse]


# -- the API -----------------------------------------------------------------------------------


class Inference(Protocol):
    """What the server routes to (the inference router implements it)."""

    @webmethod(
        "POST",
        "/v1/inference/chat-completion",
        cancel_on_disconnect=True,
        request=ChatCompletionRequest,
        response=ChatCompletionResponse,
        stream_item=ChatCompletionResponseStreamChunk,
        access=uses(("model", "model_id")),
    )
    async def chat_completion(
        self, request: ChatCompletionRequest
    ) -> ChatCompletionResponse | AsyncIterator[ChatCompletionResponseStreamChunk]:
        """Generate a chat completion for the given messages."""
        ...

    @webmethod(
        "POST",
        "/v1/inference/completion",
        cancel_on_disconnect=True,
        request=CompletionRequest,
        response=CompletionResponse,
        stream_item=CompletionResponseStreamChunk,
        access=uses(("model", "model_id")),
    )
    async def completion(
        self, request: CompletionRequest
    ) -> CompletionResponse | AsyncIterator[CompletionResponseStreamChunk]:
        """Generate a text completion for the given content."""
        ...

    @webmethod(
        "POST",
        "/v1/inference/batch-chat-completion",
        cancel_on_disconnect=True,
        request=BatchChatCompletionRequest,
        response=BatchChatCompletionResponse,
        access=uses(("model", "model_id")),
    )
    async def batch_chat_completion(self, request: BatchChatCompletionRequest) -> BatchChatCompletionResponse:
        """Generate chat completions for a batch of conversations (results in input order)."""
        ...

    @webmethod(
        "POST",
        "/v1/inference/batch-completion",
        cancel_on_disconnect=True,
        request=BatchCompletionRequest,
        response=BatchCompletionResponse,
        access=uses(("model", "model_id")),
    )
    async def batch_completion(self, request: BatchCompletionRequest) -> BatchCompletionResponse:
        """Generate text completions for a batch of contents (results in input order)."""
        ...

    @webmethod(
        "POST",
        "/v1/inference/embeddings",
        request=EmbeddingsRequest,
        response=EmbeddingsResponse,
        cancel_on_disconnect=True,
        access=uses(("model", "model_id")),
    )
    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        """Generate embeddings for the given contents."""
        ...

    @webmethod(
        "POST",
        "/v1/openai/v1/chat/completions",
        cancel_on_disconnect=True,
        aliases=("/v1/chat/completions",),
        request=OpenAIChatCompletionRequest,
        response=OpenAIResponse,
        stream_item=OpenAIResponse,
        openai=True,
        access=creates("chat_completion", uses=(("model", "model"),)),
    )
    async def openai_chat_completion(
        self, request: OpenAIChatCompletionRequest
    ) -> dict[str, Any] | AsyncIterator[dict[str, Any]]:
        """Create a chat completion (OpenAI-compatible)."""
        ...

    @webmethod(
        "GET",
        "/v1/openai/v1/chat/completions",
        aliases=("/v1/chat/completions",),
        request=ListChatCompletionsRequest,
        response=ListOpenAIChatCompletionResponse,
        access=lists("chat_completion"),
    )
    async def list_chat_completions(
        self, request: ListChatCompletionsRequest
    ) -> ListOpenAIChatCompletionResponse:
        """List stored chat completions, newest first unless `order=asc`; page with `after`."""
        ...

    @webmethod(
        "GET",
        "/v1/openai/v1/chat/completions/{completion_id}",
        aliases=("/v1/chat/completions/{completion_id}",),
        request=GetChatCompletionRequest,
        response=OpenAICompletionWithInputMessages,
        access=reads("chat_completion", "completion_id"),
    )
    async def get_chat_completion(
        self, request: GetChatCompletionRequest
    ) -> OpenAICompletionWithInputMessages:
        """Get a stored chat completion, with the input messages that produced it."""
        ...

    @webmethod(
        "GET",
        "/v1/openai/v1/chat/completions/{completion_id}/messages",
        aliases=("/v1/chat/completions/{completion_id}/messages",),
        request=ListChatCompletionMessagesRequest,
        response=ListChatCompletionMessagesResponse,
        access=reads("chat_completion", "completion_id"),
    )
    async def list_chat_completion_messages(
        self, request: ListChatCompletionMessagesRequest
    ) -> ListChatCompletionMessagesResponse:
        """List a stored chat completion's input messages (OpenAI's `chat.completions.messages.list`); page
        with `after` and `limit`, `order=desc` for the last first."""
        ...

    @webmethod(
        "POST",
        "/v1/openai/v1/completions",
        cancel_on_disconnect=True,
        aliases=("/v1/completions",),
        request=OpenAICompletionRequest,
        response=OpenAIResponse,
        stream_item=OpenAIResponse,
        openai=True,
        access=uses(("model", "model")),
    )
    async def openai_completion(
        self, request: OpenAICompletionRequest
    ) -> dict[str, Any] | AsyncIterator[dict[str, Any]]:
        """Create a text completion (OpenAI-compatible)."""
        ...

    @webmethod(
        "POST",
        "/v1/openai/v1/embeddings",
        cancel_on_disconnect=True,
        aliases=("/v1/embeddings",),
        request=OpenAIEmbeddingsRequest,
        response=OpenAIResponse,
        openai=True,
        access=uses(("model", "model")),
    )
    async def openai_embeddings(self, request: OpenAIEmbeddingsRequest) -> dict[str, Any]:
        """Create embeddings (OpenAI-compatible)."""
        ...


class InferenceProvider(Protocol):
    """What an ``inference`` provider implements (with ``ProviderBase``'s lifecycle).

    The inference router resolves the request's model to its registered ``Model`` and its provider,
    and hands both over: ``model`` is the resource being served and ``request`` the validated request.
    Send ``model.provider_model_id`` upstream (the provider's own name for the model: the registered
    ``provider_resource_id``, else the ``identifier``); never ``model.provider_resource_id`` itself,
    which may be None. The router has already checked the model's type: an LLM call never reaches
    your provider for an embedding model, nor an embedding call for an LLM.

    A provider implements every method. What it does not serve raises
    ``NotImplementedByProviderError`` (501) saying what it does serve: an embedding-only provider
    raises it from the four completion methods and refuses LLM models in ``register_model``; a
    chat-only one raises it from ``embeddings`` and ``openai_embeddings``. A request field whose
    value the provider cannot honour (``logprobs``, a ``response_format``, ``tools``) raises
    ``BadRequestError(message, param="<field>")`` (400 naming the field); it is never silently
    ignored. A failing backend raises ``UpstreamError(provider_id, ...)`` (502) or
    ``UpstreamTimeoutError`` (504). ``lamina.testing.conformance.InferenceConformance`` checks it.

    Streams: when ``request.stream`` is true a completion method returns an async iterator and the
    server writes each item as a server-sent event the moment it is yielded. The method itself is
    a coroutine (the router awaits it): ``return self._stream(...)`` where ``_stream`` is an
    ``async def`` generator, not ``yield`` in the method. Raise before the first item to answer with an HTTP
    error status; an error raised after it becomes the stream's last event,
    ``data: {"error": {"message": ...}}``. Native streams carry no ``[DONE]``; on the OpenAI routes
    the server adds ``data: [DONE]`` itself (never yield it).
    """

    async def register_model(self, model: Model) -> Model:
        """Check that the provider can serve ``model`` and return it (possibly with metadata added).

        Called for the run config's models, plugins' defaults (``lamina_models``), ``POST
        /v1/models``, models the provider lists itself (``list_models``) and, after a restart, every
        persisted model. Refuse with ``BadRequestError(param="provider_model_id")`` (or
        ``param="model_type"``) naming what it serves. A remote provider whose backend is down
        accepts the model unchecked (bound any probe by a couple of seconds).
        """
        ...

    async def unregister_model(self, model: Model) -> None:
        """Forget ``model`` (``DELETE /v1/models/{model_id}``); nothing to do for most providers."""
        ...

    async def chat_completion(
        self, model: Model, request: ChatCompletionRequest
    ) -> ChatCompletionResponse | AsyncIterator[ChatCompletionResponseStreamChunk]:
        """Llama Stack chat completion: a ``ChatCompletionResponse``, or a stream when ``request.stream``.

        The stream is ``start -> progress* -> complete``: first an event ``start`` (an empty
        ``TextDelta``), then ``progress`` events carrying ``TextDelta`` text pieces or
        ``ToolCallDelta`` tool calls, last an event ``complete`` with ``stop_reason`` (and the usage
        as ``metrics``, optional). ``stop_reason`` is ``end_of_turn`` when the model finished,
        ``end_of_message`` when it stopped to call a tool, and ``out_of_tokens`` when
        ``sampling_params.max_tokens`` cut it short: a backend with no tokenizer counts tokens its
        own way (words, say) but still stops at ``max_tokens`` and says ``out_of_tokens``.
        ``sampling_params.stop`` sequences are not part of the answer.
        """
        ...

    async def completion(
        self, model: Model, request: CompletionRequest
    ) -> CompletionResponse | AsyncIterator[CompletionResponseStreamChunk]:
        """Llama Stack text completion of ``request.content``, or a stream when ``request.stream``.

        The stream is ``CompletionResponseStreamChunk`` pieces (``delta`` text); the last one has
        ``stop_reason``. ``max_tokens`` and ``stop`` as for ``chat_completion``.
        """
        ...

    async def embeddings(self, model: Model, request: EmbeddingsRequest) -> EmbeddingsResponse:
        """One vector per item of ``request.contents``, in order, each of the model's dimension.

        ``model.embedding_dimension`` (from ``metadata.embedding_dimension``) is the length clients
        expect; texts that mean alike must score a higher cosine similarity than unrelated ones.
        """
        ...

    async def openai_chat_completion(
        self, model: Model, request: OpenAIChatCompletionRequest
    ) -> dict[str, Any] | AsyncIterator[dict[str, Any]]:
        """OpenAI chat completion: a ``chat.completion`` object, or a stream of ``chat.completion.chunk``.

        Return the answer as a dict (or pydantic model) in OpenAI's shape, with ``model`` set to
        ``request.model`` (the identifier the client used, not the upstream's name). Build the
        upstream body with ``request.upstream_body(model.provider_model_id)``. The router sends on
        only the top-level fields OpenAI defines, so an engine's extras may stay in.

        Usage in streams: always yield the usage (a last chunk with ``usage`` and ``choices: []``,
        or ``usage`` on the last chunk), whatever ``stream_options`` says. The server enforces
        ``stream_options.include_usage``: it sends the usage chunk, last and before ``[DONE]``, only
        when the request asked for it, and the inference store records the usage either way. The
        server also ends the stream with ``data: [DONE]`` (except to llama-stack-client, which
        cannot parse it).
        """
        ...

    async def openai_completion(
        self, model: Model, request: OpenAICompletionRequest
    ) -> dict[str, Any] | AsyncIterator[dict[str, Any]]:
        """OpenAI text completion: a ``text_completion`` object, or a stream of them.

        Shapes, ``model``, usage and ``[DONE]`` as for ``openai_chat_completion``.
        """
        ...

    async def openai_embeddings(self, model: Model, request: OpenAIEmbeddingsRequest) -> dict[str, Any]:
        """OpenAI's embeddings answer, one vector per input, as a dict.

        The shape: ``{"object": "list", "data": [{"object": "embedding", "index": i, "embedding":
        [...]}, ...], "model": request.model, "usage": {"prompt_tokens": n, "total_tokens": n}}``.

        Honour ``encoding_format`` (``float``, or ``base64`` of little-endian float32) and
        ``dimensions`` when the model supports it (else a ``BadRequestError`` naming it).
        """
        ...
