"""The inline::localfs datasetio provider: rows from local files (see ``sources``), a page at a time.

Registration resolves the source once (a ``data:`` URI is decoded and stored, a Files API file copied)
and reads its first row, so an unreadable source fails at ``POST /v1/datasets`` with a 400 rather than
at the first page. Pages are read in a thread (``readers``); rows appended are kept in the ``kvstore``
(``lamina.providers.dataset_rows``) and follow the source's rows.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pyarrow as pa
import structlog

from lamina.apis.datasets import Dataset, IterRowsResponse
from lamina.errors import BadRequestError, LaminaError
from lamina.providers.base import ProviderBase, ProviderContext
from lamina.providers.dataset_rows import AppendedRows, page
from lamina.specs import Api
from lamina.storage import KVStore, open_kvstore
from lamina_datasetio_localfs.config import LocalFSDatasetIOConfig
from lamina_datasetio_localfs.readers import CsvReader, JsonlReader, ParquetReader, XlsxReader
from lamina_datasetio_localfs.row_index import IndexCache
from lamina_datasetio_localfs.sources import (
    FILES_SCHEME,
    checked_file,
    decode_data_uri,
    fetch_files_api_file,
    format_of,
    local_path,
    store_bytes,
)

log = structlog.get_logger(__name__)


async def create_provider(
    config: LocalFSDatasetIOConfig, deps: dict[Api, Any], context: ProviderContext
) -> LocalFSDatasetIO:
    return LocalFSDatasetIO(config, context, files=deps.get(Api.files))


class RowsReader:
    """A ``rows`` source: the rows kept with the registration."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def count(self) -> int:
        return len(self.rows)

    def read(self, start: int, stop: int | None) -> list[dict[str, Any]]:
        return self.rows[start:stop]


class LocalFSDatasetIO(ProviderBase):
    def __init__(self, config: LocalFSDatasetIOConfig, context: ProviderContext, files: Any = None) -> None:
        super().__init__(context)
        self.config = config
        self.files = files  # the Files router, for files://<file_id> sources
        self.indexes = IndexCache()
        self.readers: dict[str, Any] = {}  # dataset id -> reader of its source
        self.store: KVStore | None = None
        self.appended: AppendedRows | None = None

    async def initialize(self) -> None:
        self.context.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = await open_kvstore(self.config.store_config(self.context.state_dir))
        self.appended = AppendedRows(self.store)

    async def shutdown(self) -> None:
        if self.store is not None:
            await self.store.close()

    async def health(self) -> dict[str, Any]:
        return {"status": "OK"}

    # -- the DatasetIOProvider contract ----------------------------------------------------------

    async def register_dataset(self, dataset: Dataset) -> None:
        reader = await self._open(dataset)
        try:
            await asyncio.to_thread(reader.read, 0, 1)  # a source that cannot be parsed fails now
        except LaminaError:
            raise
        except (pa.ArrowInvalid, OSError, ValueError, KeyError) as exc:
            raise BadRequestError(
                f"source of dataset '{dataset.identifier}' cannot be read: {type(exc).__name__}: {exc}",
                param="source.uri",
            ) from None
        self.readers[dataset.identifier] = reader

    async def unregister_dataset(self, dataset: Dataset) -> None:
        self.readers.pop(dataset.identifier, None)
        await self._rows().drop(dataset.identifier)

    async def iterrows(self, dataset: Dataset, start_index: int, limit: int | None) -> IterRowsResponse:
        reader = await self._reader(dataset)

        async def read(start: int, stop: int | None) -> list[dict[str, Any]]:
            try:
                return await asyncio.to_thread(reader.read, start, stop)
            except FileNotFoundError:
                raise BadRequestError(
                    f"the source file of dataset '{dataset.identifier}' is gone ({dataset.source.uri}); "
                    f"put it back, or register the dataset again with another source",
                    param="dataset_id",
                ) from None
            except (pa.ArrowInvalid, ValueError) as exc:
                raise BadRequestError(
                    f"rows {start}.. of dataset '{dataset.identifier}' cannot be parsed: {exc}; fix the "
                    f"source file",
                    param="dataset_id",
                ) from None

        async def count() -> int:
            return await asyncio.to_thread(reader.count)

        return await page(dataset.identifier, start_index, limit, read, count, self._rows())

    async def append_rows(self, dataset: Dataset, rows: list[dict[str, Any]]) -> None:
        await self._reader(dataset)  # the dataset must be readable here
        await self._rows().append(dataset.identifier, rows)

    # -- sources ---------------------------------------------------------------------------------

    def _rows(self) -> AppendedRows:
        if self.appended is None:
            raise RuntimeError("the provider is not initialized")
        return self.appended

    async def _reader(self, dataset: Dataset) -> Any:
        reader = self.readers.get(dataset.identifier)
        if reader is None:  # not reopened at start-up (its source was missing then): try again
            await self.register_dataset(dataset)
            reader = self.readers[dataset.identifier]
        return reader

    async def _open(self, dataset: Dataset) -> Any:
        source = dataset.source
        if source.type == "rows":
            return RowsReader(source.rows)
        uri = source.uri
        metadata = dataset.metadata or {}
        state = self.context.state_dir
        if uri.startswith("data:"):
            data, fmt = decode_data_uri(uri, metadata)
            path = await asyncio.to_thread(store_bytes, state / "data", data, fmt)
        elif uri.startswith(FILES_SCHEME):
            file_id = uri[len(FILES_SCHEME) :]
            path, name = await fetch_files_api_file(self.files, file_id, state / "files", uri)
            fmt = format_of(name, metadata, uri)
        else:
            found = local_path(uri)
            if found is None:
                raise BadRequestError(_unsupported_scheme(uri), param="source.uri")
            path = checked_file(found.resolve(), uri)
            fmt = format_of(path.name, metadata, uri)
        return _reader_for(path, fmt, metadata, self.indexes)


def _reader_for(path: Path, fmt: str, metadata: dict[str, Any], indexes: IndexCache) -> Any:
    if fmt == "csv":
        return CsvReader(path, indexes)
    if fmt == "tsv":
        return CsvReader(path, indexes, delimiter="\t")
    if fmt == "jsonl":
        return JsonlReader(path, indexes)
    if fmt == "parquet":
        return ParquetReader(path)
    return XlsxReader(path, metadata.get("sheet"))


def _unsupported_scheme(uri: str) -> str:
    scheme = uri.split("://", 1)[0] if "://" in uri else uri.split(":", 1)[0]
    if scheme == "huggingface":
        return (
            "source.uri: huggingface:// datasets are read by the remote::huggingface datasetio provider, "
            "not inline::localfs; configure it under providers.datasetio and register with its provider_id"
        )
    if scheme in ("http", "https"):
        return (
            f"source.uri: {scheme}:// URIs are not fetched by inline::localfs (the server reads no remote "
            f"URLs); upload the file with POST /v1/files and register files://<file_id>, or put it on the "
            f"server and use its path"
        )
    return (
        f"source.uri: the scheme {scheme!r} is not one inline::localfs reads; use a local path, "
        f"file:///path, data:<mimetype>;base64,<data> or files://<file_id>"
    )
