"""The DatasetIO router: iterrows and append-rows, each handed to the dataset's provider.

Other APIs read datasets through it too (scoring's score-batch, eval): ``pages`` walks a dataset a
page at a time, so a caller never holds more than one page of a large dataset.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import structlog

from lamina.apis.datasets import AppendRowsRequest, Dataset, IterRowsRequest, IterRowsResponse
from lamina.errors import BadRequestError, UpstreamError
from lamina.resources.datasets import DatasetsRoutingTable

log = structlog.get_logger(__name__)

# Rows per page for ``pages`` (internal readers); a client picks its own with ``limit``.
PAGE_ROWS = 1000
# Most rows one iterrows answer holds: a larger limit is cut to it (has_more says more follow), and no
# limit (Llama Stack's "every row") is refused for a dataset longer than it.
MAX_PAGE_ROWS = 100_000
# Rows one append-rows request may carry (the request body limit applies too).
MAX_APPENDED_ROWS = 100_000


class DatasetIORouter:
    def __init__(self, datasets: DatasetsRoutingTable) -> None:
        self.datasets = datasets

    async def iterrows(self, request: IterRowsRequest) -> IterRowsResponse:
        dataset, provider = await self.datasets.resolve(request.dataset_id)
        start = request.start_index or 0
        every = request.limit is None or request.limit == -1
        limit = min(request.limit, MAX_PAGE_ROWS) if not every else MAX_PAGE_ROWS
        started = time.perf_counter()
        page = _checked(dataset, await provider.iterrows(dataset, start, limit))
        if every and page.has_more:
            # "Every row" of a large dataset would be held in memory at once, and could take the
            # server down with it; such a dataset is read a page at a time.
            raise BadRequestError(
                f"limit: dataset '{dataset.identifier}' has more than {MAX_PAGE_ROWS:,} rows from "
                f"start_index {start}, too many for one answer; page through it with limit (at most "
                f"{MAX_PAGE_ROWS:,}) and start_index, following has_more",
                param="limit",
            )
        log.info(
            "dataset_rows_read",
            dataset_id=dataset.identifier,
            provider_id=dataset.provider_id,
            start_index=start,
            rows=len(page.data),
            has_more=page.has_more,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return page

    async def append_rows(self, request: AppendRowsRequest) -> None:
        dataset, provider = await self.datasets.resolve(request.dataset_id)
        if len(request.rows) > MAX_APPENDED_ROWS:
            raise BadRequestError(
                f"rows: {len(request.rows)} rows in one request; append at most {MAX_APPENDED_ROWS} at a "
                f"time (send several requests)",
                param="rows",
            )
        if not request.rows:
            return
        await provider.append_rows(dataset, request.rows)
        log.info("dataset_rows_appended", dataset_id=dataset.identifier, rows=len(request.rows))

    async def pages(
        self, dataset_id: str, *, page_rows: int = PAGE_ROWS, limit: int | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The dataset's rows, a page (a list of at most ``page_rows`` rows) at a time, in order;
        at most ``limit`` rows in all (None: every row)."""
        dataset, provider = await self.datasets.resolve(dataset_id)
        start = 0
        while limit is None or start < limit:
            want = page_rows if limit is None else min(page_rows, limit - start)
            page = _checked(dataset, await provider.iterrows(dataset, start, want))
            if page.data:
                yield page.data
            start += len(page.data)
            if not page.has_more or not page.data:
                return


def _checked(dataset: Dataset, page: Any) -> IterRowsResponse:
    """A provider's page as the wire model; a provider answering something else is its fault (502)."""
    if isinstance(page, IterRowsResponse):
        return page
    try:
        return IterRowsResponse.model_validate(page)
    except Exception as exc:
        raise UpstreamError(
            dataset.provider_id, f"iterrows of dataset '{dataset.identifier}' answered no page of rows: {exc}"
        ) from None
