"""How score-batch reads and saves datasets: through the Datasets and DatasetIO APIs, page by page.

One small adapter so the scoring router depends on four calls (look a dataset up, read it in pages,
register a results dataset, append to it), not on the shapes of the DatasetIO requests. It goes through
the served Datasets and DatasetIO implementations, as a client would: their 404s and 400s reach the
score-batch caller unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from lamina.apis.datasets import (
    AppendRowsRequest,
    Dataset,
    DatasetIO,
    Datasets,
    GetDatasetRequest,
    IterRowsRequest,
    RegisterDatasetRequest,
    RowsDataSource,
)

if TYPE_CHECKING:
    from lamina.stack import Stack


class DatasetAccess:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack  # read at call time: the datasets entry may be built after scoring's

    @property
    def _datasets(self) -> Any:
        return self.stack.protocol_impls[Datasets]

    @property
    def _datasetio(self) -> Any:
        return self.stack.protocol_impls[DatasetIO]

    async def get(self, dataset_id: str) -> Dataset:
        """The registered dataset (a 404 naming it and the registered ones when it is not)."""
        return await self._datasets.get_dataset(GetDatasetRequest(dataset_id=dataset_id))

    async def pages(self, dataset_id: str, page_rows: int) -> AsyncIterator[tuple[int, list[dict[str, Any]]]]:
        """(index of the page's first row, its rows), until the dataset has no more."""
        start = 0
        while True:
            page = await self._datasetio.iterrows(
                IterRowsRequest(dataset_id=dataset_id, start_index=start, limit=page_rows)
            )
            if page.data:
                yield start, page.data
            start += len(page.data)
            if not page.has_more or not page.data:
                return

    async def create_results(self, dataset_id: str, source: Dataset, functions: list[str]) -> None:
        """Register the (empty) dataset that will hold ``source``'s rows with their scores: rows given
        inline, so the default provider for rows keeps them; the source's purpose, and metadata naming
        where the rows came from."""
        await self._datasets.register_dataset(
            RegisterDatasetRequest(
                dataset_id=dataset_id,
                purpose=source.purpose,
                source=RowsDataSource(rows=[]),
                metadata={"scored_dataset_id": source.identifier, "scoring_functions": functions},
            )
        )

    async def append(self, dataset_id: str, rows: list[dict[str, Any]]) -> None:
        await self._datasetio.append_rows(AppendRowsRequest(dataset_id=dataset_id, rows=rows))
