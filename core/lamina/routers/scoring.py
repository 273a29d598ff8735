"""The scoring router: score and score-batch, each function handed to its provider, aggregated here.

Every scoring function of a call is resolved first (an unknown one is a 404 before any row is scored).
Rows go to providers in pages (``PAGE_ROWS``): ``score`` pages the rows it was sent, ``score-batch``
reads the dataset page by page through DatasetIO, so it never holds the dataset's rows, only each
function's score rows (the answer) and the aggregations' running totals
(``lamina.routers.scoring_aggregation``). Llama Stack 0.2.12 reads the whole dataset with ``limit=-1``
and answers 500 on ``save_results_dataset``; here the scored rows are appended to a new dataset page by
page, as they are scored.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import BaseModel

from lamina.apis.scoring import (
    ScoreBatchRequest,
    ScoreBatchResponse,
    ScoreRequest,
    ScoreResponse,
    ScoringFn,
    ScoringResult,
    ScoringRowError,
)
from lamina.errors import BadRequestError, UpstreamError
from lamina.resources.scoring_functions import ScoringFunctionsRoutingTable
from lamina.routers.scoring_aggregation import Aggregator

log = structlog.get_logger(__name__)

PAGE_ROWS = 2000  # rows per provider call and per DatasetIO page


@dataclass
class _Job:
    """One scoring function of a call: what scores it, with which params, and its results so far."""

    fn: ScoringFn
    provider: Any
    params: BaseModel | None
    aggregator: Aggregator
    score_rows: list[dict[str, Any]]


class ScoringRouter:
    def __init__(self, functions: ScoringFunctionsRoutingTable, datasets: Any = None) -> None:
        self.functions = functions
        # lamina.routers.scoring_datasets.DatasetAccess, when a datasetio provider is configured.
        self.datasets = datasets

    async def _jobs(self, scoring_functions: dict[str, BaseModel | None]) -> list[_Job]:
        jobs = []
        for fn_id, call_params in scoring_functions.items():
            fn, provider = await self.functions.resolve(fn_id)
            params = call_params if call_params is not None else fn.params
            names = list(getattr(params, "aggregation_functions", None) or [])
            jobs.append(_Job(fn, provider, params, Aggregator(fn_id, names), []))
        return jobs

    async def _score_page(
        self, jobs: list[_Job], rows: list[dict[str, Any]], first_row: int, where: str
    ) -> None:
        """Score one page with every function at once (an LLM judge and equality overlap); the first
        failure cancels the others (no judge calls nobody will read)."""
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._score_one(job, rows, first_row, where)) for job in jobs]
        except BaseExceptionGroup as eg:
            raise eg.exceptions[0] from None
        for job, task in zip(jobs, tasks, strict=True):
            scored = task.result()
            job.aggregator.add(scored)
            job.score_rows.extend(scored)

    async def _score_one(
        self, job: _Job, rows: list[dict[str, Any]], first_row: int, where: str
    ) -> list[dict[str, Any]]:
        try:
            scored = await job.provider.score_rows(job.fn, rows, job.params)
        except ScoringRowError as exc:
            at = where.format(row=first_row + exc.row)
            raise BadRequestError(f"{at}: scoring function '{job.fn.identifier}': {exc.message}") from None
        if len(scored) != len(rows):
            raise UpstreamError(
                job.fn.provider_id,
                f"scoring function '{job.fn.identifier}' returned {len(scored)} results for {len(rows)} rows",
            )
        return scored

    @staticmethod
    def _results(jobs: list[_Job]) -> dict[str, ScoringResult]:
        # model_construct: the rows are the provider's own dicts; validating each again costs more than
        # scoring it (basic::equality).
        return {
            job.fn.identifier: ScoringResult.model_construct(
                score_rows=job.score_rows, aggregated_results=job.aggregator.result()
            )
            for job in jobs
        }

    # -- the Scoring API -----------------------------------------------------------------------

    async def score(self, request: ScoreRequest) -> ScoreResponse:
        started = time.perf_counter()
        jobs = await self._jobs(request.scoring_functions)
        rows = request.input_rows
        for start in range(0, len(rows), PAGE_ROWS):
            await self._score_page(jobs, rows[start : start + PAGE_ROWS], start, "input_rows[{row}]")
        log.info(
            "scored",
            rows=len(rows),
            functions=list(request.scoring_functions),
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return ScoreResponse.model_construct(results=self._results(jobs))

    async def score_batch(self, request: ScoreBatchRequest) -> ScoreBatchResponse:
        if self.datasets is None:
            raise BadRequestError(
                "score-batch reads a dataset through the DatasetIO API, and no datasetio provider is "
                "configured; add one under providers.datasetio (inline::localfs), or send the rows to "
                "POST /v1/scoring/score",
                param="dataset_id",
            )
        started = time.perf_counter()
        dataset_id = request.dataset_id
        source = await self.datasets.get(dataset_id)  # 404 naming the dataset before any scoring
        jobs = await self._jobs(request.scoring_functions)
        saved_id = None
        if request.save_results_dataset:
            saved_id = f"{dataset_id}-scored-{uuid.uuid4().hex[:8]}"
        where = f"dataset '{dataset_id}' row {{row}}"
        count = 0
        async for first_row, rows in self.datasets.pages(dataset_id, PAGE_ROWS):
            await self._score_page(jobs, rows, first_row, where)
            if saved_id is not None:
                scored = [
                    {**row, **{job.fn.identifier: job.score_rows[first_row + i] for job in jobs}}
                    for i, row in enumerate(rows)
                ]
                if first_row == 0:
                    await self.datasets.create_results(saved_id, source, [j.fn.identifier for j in jobs])
                await self.datasets.append(saved_id, scored)
            count += len(rows)
        if saved_id is not None and count == 0:
            await self.datasets.create_results(saved_id, source, [j.fn.identifier for j in jobs])
        log.info(
            "scored_batch",
            dataset_id=dataset_id,
            rows=count,
            functions=list(request.scoring_functions),
            saved_dataset_id=saved_id,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return ScoreBatchResponse.model_construct(dataset_id=saved_id, results=self._results(jobs))
