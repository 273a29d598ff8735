"""score-batch in the scoring router: pages through the dataset, aggregates as it goes, saves page by page.

The router reads datasets through ``DatasetAccess`` (Datasets + DatasetIO). This file stands a small
in-memory ``DatasetAccess`` in for them, to count pages and watch which rows stay alive; the same flow
through a real ``lamina run`` with the DatasetIO provider is tests/scoring/test_score_batch_e2e.py.
The scoring provider is the real inline::basic.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import pytest

from lamina.apis.scoring import RegisterScoringFunctionRequest, ScoreBatchRequest
from lamina.errors import BadRequestError
from lamina.providers import ProviderContext
from lamina.resources.scoring_functions import ScoringFunctionsRoutingTable
from lamina.routers.scoring import PAGE_ROWS, ScoringRouter
from lamina.specs import Api
from lamina_scoring_basic.config import BasicScoringConfig
from lamina_scoring_basic.plugin import lamina_scoring_functions
from lamina_scoring_basic.provider import BasicScoringProvider


class Page(list):
    """A list that can be watched with a weak reference."""


class Source:
    def __init__(self, identifier: str, purpose: str = "eval/question-answer") -> None:
        self.identifier, self.purpose = identifier, purpose


class InMemoryDatasets:
    def __init__(self, n: int, bad_row: int | None = None) -> None:
        self.n, self.bad_row = n, bad_row
        self.page_calls: list[tuple[int, int]] = []
        self.alive_when_reading: list[int] = []  # earlier pages still referenced when a page is read
        self.created: list[tuple[str, str, list[str]]] = []
        self.appended: dict[str, list[dict[str, Any]]] = {}
        self._pages: list[weakref.ref] = []

    async def get(self, dataset_id: str) -> Source:
        return Source(dataset_id)

    async def pages(self, dataset_id: str, page_rows: int):
        for start in range(0, self.n, page_rows):
            gc.collect()
            # The page before the last is gone: the router holds at most the page it is scoring.
            self.alive_when_reading.append(sum(ref() is not None for ref in self._pages[:-1]))
            self.page_calls.append((start, page_rows))
            page = Page(
                {"expected_answer": "a", "generated_answer": "a" if i % 4 else "b"}
                if i != self.bad_row
                else {"generated_answer": "a"}
                for i in range(start, min(start + page_rows, self.n))
            )
            self._pages.append(weakref.ref(page))
            yield start, page
            del page

    async def create_results(self, dataset_id: str, source: Source, functions: list[str]) -> None:
        self.created.append((dataset_id, source.identifier, functions))
        self.appended[dataset_id] = []

    async def append(self, dataset_id: str, rows: list[dict[str, Any]]) -> None:
        self.appended[dataset_id].extend(rows)


@pytest.fixture
async def table(registry, tmp_path: Path) -> ScoringFunctionsRoutingTable:
    provider = BasicScoringProvider(
        BasicScoringConfig(), ProviderContext(Api.scoring, "basic", "inline::basic", tmp_path)
    )
    table = ScoringFunctionsRoutingTable(registry, {"basic": provider}, pm=_NoPlugins())
    for res in lamina_scoring_functions():
        await table.register_scoring_function(
            RegisterScoringFunctionRequest(
                scoring_fn_id=res.identifier, provider_scoring_fn_id=res.provider_resource_id, **res.params
            )
        )
    return table


class _NoPlugins:
    def resource_vetoes(self, resource_type: str, doc: dict) -> list:
        return []


def request(**over: Any) -> ScoreBatchRequest:
    body = {
        "dataset_id": "qa",
        "scoring_functions": {
            "basic::equality": None,
            "basic::subset_of": {"type": "basic", "aggregation_functions": ["average", "median"]},
        },
    }
    return ScoreBatchRequest.model_validate(body | over)


async def test_pages_are_scored_and_aggregated_as_they_come(table) -> None:
    n = 2 * PAGE_ROWS + 3
    datasets = InMemoryDatasets(n)
    answer = await ScoringRouter(table, datasets).score_batch(request())
    assert datasets.page_calls == [(0, PAGE_ROWS), (PAGE_ROWS, PAGE_ROWS), (2 * PAGE_ROWS, PAGE_ROWS)]
    assert datasets.alive_when_reading == [0, 0, 0]
    equality = answer.results["basic::equality"]
    assert len(equality.score_rows) == n
    correct = sum(1 for i in range(n) if i % 4)
    assert equality.aggregated_results == {
        "accuracy": {"accuracy": correct / n, "num_correct": float(correct), "num_total": n}
    }
    assert answer.results["basic::subset_of"].aggregated_results == {
        "average": {"average": correct / n},
        "median": {"median": 1.0},
    }
    assert answer.dataset_id is None and datasets.created == []


async def test_save_results_dataset_appends_each_scored_page(table) -> None:
    datasets = InMemoryDatasets(PAGE_ROWS + 1)
    answer = await ScoringRouter(table, datasets).score_batch(request(save_results_dataset=True))
    saved = answer.dataset_id
    assert saved is not None and saved.startswith("qa-scored-")
    assert datasets.created == [(saved, "qa", ["basic::equality", "basic::subset_of"])]
    rows = datasets.appended[saved]
    assert len(rows) == PAGE_ROWS + 1
    assert rows[0] == {
        "expected_answer": "a",
        "generated_answer": "b",
        "basic::equality": {"score": 0.0},
        "basic::subset_of": {"score": 0.0},
    }
    assert rows[1]["basic::equality"] == {"score": 1.0}
    assert rows[PAGE_ROWS - 1]["basic::equality"] == {"score": 1.0}  # the first page's last
    assert rows[PAGE_ROWS]["basic::equality"] == {"score": 0.0}  # the second page: row 2000, 2000 % 4 == 0


async def test_an_empty_dataset_still_gets_its_results_dataset(table) -> None:
    datasets = InMemoryDatasets(0)
    answer = await ScoringRouter(table, datasets).score_batch(request(save_results_dataset=True))
    assert datasets.created and datasets.appended[answer.dataset_id] == []
    assert answer.results["basic::equality"].aggregated_results["accuracy"]["num_total"] == 0


async def test_a_bad_row_is_named_by_its_index_in_the_dataset(table) -> None:
    datasets = InMemoryDatasets(PAGE_ROWS + 10, bad_row=PAGE_ROWS + 7)
    with pytest.raises(BadRequestError) as err:
        await ScoringRouter(table, datasets).score_batch(request())
    assert err.value.message.startswith(
        f"dataset 'qa' row {PAGE_ROWS + 7}: scoring function 'basic::equality': the row has no column "
        "'expected_answer'"
    )
