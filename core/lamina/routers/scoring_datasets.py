"""How score-batch reads and saves datasets: through the Datasets and DatasetIO APIs, page by page.

One small adapter so the scoring router depends on three calls (look a dataset up, read it in pages,
register and append to a results dataset), not on the shapes of the DatasetIO requests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from lamina.specs import Api, ResourceType

if TYPE_CHECKING:
    from lamina.stack import Stack


class DatasetAccess:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    @property
    def _datasets(self) -> Any:
        return self.stack.tables[ResourceType.dataset]

    @property
    def _datasetio(self) -> Any:
        return self.stack.routers[Api.datasetio]

    async def get(self, dataset_id: str) -> Any:
        """The registered dataset (a 404 naming it and the registered ones when it is not)."""
        return await self._datasets.get(dataset_id)

    async def pages(self, dataset_id: str, page_rows: int) -> AsyncIterator[tuple[int, list[dict[str, Any]]]]:
        """(index of the page's first row, its rows), until the dataset has no more."""
        raise NotImplementedError
        yield  # pragma: no cover

    async def create_results(self, dataset_id: str, source: Any, functions: list[str]) -> None:
        """Register the dataset that will hold ``source``'s rows with their scores."""
        raise NotImplementedError

    async def append(self, dataset_id: str, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError
