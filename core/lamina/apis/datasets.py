"""Datasets and DatasetIO: the Dataset resource, row paging and appending, and what providers implement.

A dataset is a registered resource served by one ``datasetio`` provider: rows in a file (a local
path, a ``file://`` or ``data:`` URI, a Files API file: ``inline::localfs``), a Hugging Face dataset
(``huggingface://...``: ``remote::huggingface``) or rows given inline (``source: {type: rows}``).
``GET /v1/datasetio/iterrows/{dataset_id}`` pages through its rows; ``POST
/v1/datasetio/append-rows/{dataset_id}`` adds rows after the last one.

Paging follows Llama Stack 0.2.12 (``paginate_records``): rows ``[start_index, start_index + limit)``
and ``has_more`` when a row follows them; ``start_index`` past the end answers no rows and
``has_more: false``. ``limit`` omitted or -1 answers every row from ``start_index`` on (Llama Stack
ignores ``start_index`` then, which its own docstring contradicts; Lamina honours it). One answer
holds at most 100,000 rows (``lamina.routers.datasetio.MAX_PAGE_ROWS``): a larger ``limit`` is cut to
it, and "every row" of a longer dataset is a 400 telling the client to page.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from lamina.access.declarations import creates, deletes, lists, reads, updates
from lamina.apis.common import Empty, Resource
from lamina.apis.webmethod import webmethod

# -- the Dataset resource ----------------------------------------------------------------------------

DatasetPurpose = Literal["post-training/messages", "eval/question-answer", "eval/messages-answer"]
DATASET_PURPOSES: tuple[str, ...] = ("post-training/messages", "eval/question-answer", "eval/messages-answer")


class URIDataSource(BaseModel):
    """Rows read from a URI: a local path, ``file://``, ``data:`` (base64 or percent-encoded),
    ``files://<file_id>`` (a Files API file), ``huggingface://<path>?split=...``."""

    type: Literal["uri"] = "uri"
    uri: str = Field(min_length=1)


class RowsDataSource(BaseModel):
    """Rows given inline, kept with the registration."""

    type: Literal["rows"] = "rows"
    rows: list[dict[str, Any]]


DataSource = Annotated[URIDataSource | RowsDataSource, Field(discriminator="type")]


class Dataset(Resource):
    type: Literal["dataset"] = "dataset"
    purpose: DatasetPurpose
    source: DataSource
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def dataset_id(self) -> str:
        return self.identifier

    @property
    def provider_dataset_id(self) -> str:
        return self.provider_resource_id or self.identifier


class ListDatasetsResponse(BaseModel):
    data: list[Dataset]


class GetDatasetRequest(BaseModel):
    dataset_id: str = Field(min_length=1)


class RegisterDatasetRequest(BaseModel):
    # Llama Stack's FastAPI server ignores unknown body fields; so does this request.
    model_config = ConfigDict(extra="ignore")

    purpose: DatasetPurpose = Field(
        description="What the rows hold: post-training/messages ({messages}), eval/question-answer "
        "({question, answer}), eval/messages-answer ({messages, answer})."
    )
    source: DataSource = Field(
        description="{type: uri, uri} (a path, file://, data:, files://<file_id>, huggingface://...) or "
        "{type: rows, rows: [...]}."
    )
    metadata: dict[str, Any] | None = Field(
        default=None, description="Free-form; metadata.provider_id picks the provider (as in Llama Stack)."
    )
    dataset_id: str | None = Field(
        default=None, min_length=1, description="Omitted: a generated 'dataset-<uuid>'."
    )
    provider_id: str | None = Field(
        default=None,
        description="The datasetio provider; omitted: metadata.provider_id, else the provider for the "
        "source (huggingface:// -> remote::huggingface, anything else -> inline::localfs).",
    )


# -- DatasetIO ---------------------------------------------------------------------------------------


class IterRowsRequest(BaseModel):
    dataset_id: str = Field(min_length=1)
    start_index: int | None = Field(
        default=None, ge=0, description="Index (0-based) of the first row; omitted: 0."
    )
    limit: int | None = Field(
        default=None, ge=-1, description="How many rows; omitted or -1: every row from start_index on."
    )


class IterRowsResponse(BaseModel):
    """Llama Stack's ``PaginatedResponse``."""

    data: list[dict[str, Any]]
    has_more: bool
    url: str | None = None


# Llama Stack's name for the same shape.
PaginatedResponse = IterRowsResponse


class AppendRowsRequest(BaseModel):
    dataset_id: str = Field(min_length=1)
    rows: list[dict[str, Any]] = Field(description="Rows to add after the dataset's last row.")


# -- the API -----------------------------------------------------------------------------------------


class Datasets(Protocol):
    @webmethod(
        "POST",
        "/v1/datasets",
        request=RegisterDatasetRequest,
        response=Dataset,
        access=creates("dataset", "identifier", requested="dataset_id"),
    )
    async def register_dataset(self, request: RegisterDatasetRequest) -> Dataset:
        """Register a dataset (the provider checks it can read the source)."""
        ...

    @webmethod(
        "GET",
        "/v1/datasets",
        request=Empty,
        response=ListDatasetsResponse,
        access=lists("dataset", "identifier"),
    )
    async def list_datasets(self, request: Empty) -> ListDatasetsResponse:
        """List registered datasets."""
        ...

    @webmethod(
        "GET",
        "/v1/datasets/{dataset_id:.+}",
        request=GetDatasetRequest,
        response=Dataset,
        access=reads("dataset", "dataset_id"),
    )
    async def get_dataset(self, request: GetDatasetRequest) -> Dataset:
        """Get a dataset by its id."""
        ...

    @webmethod(
        "DELETE",
        "/v1/datasets/{dataset_id:.+}",
        request=GetDatasetRequest,
        response=None,
        access=deletes("dataset", "dataset_id"),
    )
    async def unregister_dataset(self, request: GetDatasetRequest) -> None:
        """Unregister a dataset (its appended rows are dropped; its source file is left alone)."""
        ...


class DatasetIO(Protocol):
    @webmethod(
        "GET",
        "/v1/datasetio/iterrows/{dataset_id:.+}",
        request=IterRowsRequest,
        response=IterRowsResponse,
        access=reads("dataset", "dataset_id"),
    )
    async def iterrows(self, request: IterRowsRequest) -> IterRowsResponse:
        """A page of a dataset's rows: [start_index, start_index + limit), and whether more follow."""
        ...

    @webmethod(
        "POST",
        "/v1/datasetio/append-rows/{dataset_id:.+}",
        request=AppendRowsRequest,
        response=None,
        access=updates("dataset", "dataset_id"),
    )
    async def append_rows(self, request: AppendRowsRequest) -> None:
        """Append rows to a dataset (persisted: they survive a restart)."""
        ...


# -- what a provider implements ----------------------------------------------------------------------


class DatasetIOProvider(Protocol):
    """A DatasetIO provider: reads (and appends to) the datasets registered with it.

    Contract:

    * ``register_dataset`` checks the provider can read the source (URI scheme, file format, that
      a path or file exists) and raises ``BadRequestError`` naming the field (``source.uri``,
      ``source.rows``) and the fix when not; it is called again for every registered dataset after a
      restart. ``unregister_dataset`` forgets it and its appended rows.
    * ``iterrows(dataset, start_index, limit)`` answers rows ``[start_index, start_index + limit)``
      (``limit`` None: to the end) of the source followed by the appended rows, and ``has_more``
      when a row follows. ``start_index`` past the end answers ``data: []``, ``has_more: false``.
      A large source is read a page at a time, never whole in memory; parsing runs off the event
      loop. Rows are JSON objects (no NaN: missing values are null).
    * ``append_rows`` persists the rows (they survive a restart) after the last row.
    * A backend that cannot be reached (a hub offline) raises ``UpstreamError`` naming the dataset,
      quickly (seconds, not a long network time-out).
    """

    async def register_dataset(self, dataset: Dataset) -> None:
        """Check the provider can read ``dataset``; ``BadRequestError`` naming the field otherwise."""
        ...

    async def unregister_dataset(self, dataset: Dataset) -> None:
        """Forget ``dataset`` and the rows appended to it."""
        ...

    async def iterrows(self, dataset: Dataset, start_index: int, limit: int | None) -> IterRowsResponse:
        """Rows ``[start_index, start_index + limit)`` (``limit`` None: to the end) and ``has_more``."""
        ...

    async def append_rows(self, dataset: Dataset, rows: list[dict[str, Any]]) -> None:
        """Persist ``rows`` after the dataset's last row."""
        ...
