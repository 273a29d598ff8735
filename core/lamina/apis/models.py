"""Models: the Model resource and its routes (Llama Stack and OpenAI shapes on one surface)."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lamina.access.declarations import creates, deletes, lists, reads
from lamina.apis.common import Empty, Resource
from lamina.apis.webmethod import webmethod

ModelType = Literal["llm", "embedding"]


class Model(Resource):
    type: Literal["model"] = "model"
    model_type: ModelType = "llm"
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def provider_model_id(self) -> str:
        return self.provider_resource_id or self.identifier

    @property
    def embedding_dimension(self) -> int | None:
        dim = self.metadata.get("embedding_dimension")
        return int(dim) if dim is not None else None


class ModelEntry(Model):
    """A model as GET /v1/models lists it: Llama Stack fields plus OpenAI's, so both SDKs read it."""

    id: str
    object: Literal["model"] = "model"
    owned_by: str

    @classmethod
    def of(cls, model: Model) -> ModelEntry:
        return cls(**model.model_dump(), id=model.identifier, owned_by=model.provider_id)


class ListModelsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelEntry]


class OpenAIModel(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class OpenAIListModelsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIModel]


class GetModelRequest(BaseModel):
    model_id: str = Field(min_length=1)


class RegisterModelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(min_length=1, description="The identifier clients will use.")
    provider_model_id: str | None = Field(default=None, description="The model's id at the provider.")
    provider_id: str | None = Field(default=None, description="Required when several providers serve models.")
    metadata: dict[str, Any] | None = None
    model_type: ModelType | None = None

    @model_validator(mode="after")
    def _embedding_has_dimension(self) -> RegisterModelRequest:
        if self.model_type == "embedding":
            dim = (self.metadata or {}).get("embedding_dimension")
            if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
                raise ValueError(
                    "an embedding model needs metadata.embedding_dimension, a positive integer "
                    '(for example {"embedding_dimension": 384})'
                )
        return self


class Models(Protocol):
    @webmethod(
        "GET", "/v1/models", request=Empty, response=ListModelsResponse, access=lists("model", "identifier")
    )
    async def list_models(self, request: Empty) -> ListModelsResponse:
        """List registered models."""
        ...

    @webmethod(
        "GET",
        "/v1/models/{model_id:.+}",
        request=GetModelRequest,
        response=ModelEntry,
        access=reads("model", "model_id"),
    )
    async def get_model(self, request: GetModelRequest) -> ModelEntry:
        """Get a model by its identifier (identifiers may contain '/')."""
        ...

    @webmethod(
        "POST",
        "/v1/models",
        request=RegisterModelRequest,
        response=ModelEntry,
        access=creates("model", "identifier", requested="model_id"),
    )
    async def register_model(self, request: RegisterModelRequest) -> ModelEntry:
        """Register a model with a provider."""
        ...

    @webmethod(
        "DELETE",
        "/v1/models/{model_id:.+}",
        request=GetModelRequest,
        response=None,
        access=deletes("model", "model_id"),
    )
    async def unregister_model(self, request: GetModelRequest) -> None:
        """Unregister a model."""
        ...

    @webmethod(
        "GET", "/v1/openai/v1/models", request=Empty, response=OpenAIListModelsResponse, access=lists("model")
    )
    async def openai_list_models(self, request: Empty) -> OpenAIListModelsResponse:
        """List models in the OpenAI shape."""
        ...

    @webmethod(
        "GET",
        "/v1/openai/v1/models/{model_id:.+}",
        request=GetModelRequest,
        response=OpenAIModel,
        access=reads("model", "model_id"),
    )
    async def openai_get_model(self, request: GetModelRequest) -> OpenAIModel:
        """Get a model in the OpenAI shape."""
        ...
