"""score-batch through a real ``lamina run`` with the DatasetIO provider, driven by llama-stack-client 0.2.12.

Llama Stack 0.2.12 answers 500 to ``save_results_dataset``; here the scored rows come back as a
registered dataset, readable with iterrows. A CSV of several pages checks that rows are read in pages
and every row is scored once.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import llama_stack_client
import pytest
from llama_stack_client import LlamaStackClient

from lamina.routers.scoring import PAGE_ROWS
from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

QA = [("Capital of France?", "London", "Paris"), ("CEO of Meta?", "Mark Zuckerberg", "Mark Zuckerberg")]
ROWS = [{"input_query": q, "generated_answer": g, "expected_answer": e} for q, g, e in QA]


def _datasetio_installed() -> bool:
    from lamina.plugins import load_plugin_manager
    from lamina.specs import Api

    return "inline::localfs" in load_plugin_manager().provider_specs(Api.datasetio)


@pytest.fixture
def client(start_lamina: Callable[..., ServerProcess]) -> LlamaStackClient:
    if not _datasetio_installed():
        pytest.skip("no datasetio provider inline::localfs is installed (plugins/datasetio-localfs)")
    config: dict[str, Any] = {
        "version": 2,
        "image_name": "score-batch-e2e",
        "providers": {
            "datasetio": [{"provider_id": "localfs", "provider_type": "inline::localfs", "config": {}}],
            "scoring": [{"provider_id": "basic", "provider_type": "inline::basic", "config": {}}],
        },
    }
    return LlamaStackClient(base_url=start_lamina(config).url, max_retries=0, timeout=120)


def test_score_batch_over_rows_saves_a_results_dataset(client: LlamaStackClient) -> None:
    client.datasets.register(
        dataset_id="qa", purpose="eval/question-answer", source={"type": "rows", "rows": ROWS}
    )
    answer = client.scoring.score_batch(
        dataset_id="qa",
        scoring_functions={"basic::equality": None, "basic::subset_of": None},
        save_results_dataset=True,
    )
    assert [r["score"] for r in answer.results["basic::equality"].score_rows] == [0.0, 1.0]
    assert answer.results["basic::equality"].aggregated_results["accuracy"]["accuracy"] == 0.5
    saved = answer.dataset_id
    assert saved and saved.startswith("qa-scored-")

    dataset = client.datasets.retrieve(saved)
    assert dataset.purpose == "eval/question-answer"
    assert dataset.metadata["scored_dataset_id"] == "qa"
    page = client.datasets.iterrows(saved)
    assert page.data == [
        {**ROWS[0], "basic::equality": {"score": 0.0}, "basic::subset_of": {"score": 0.0}},
        {**ROWS[1], "basic::equality": {"score": 1.0}, "basic::subset_of": {"score": 1.0}},
    ]


def test_score_batch_reads_a_file_in_pages(client: LlamaStackClient, tmp_path: Path) -> None:
    n = 2 * PAGE_ROWS + 5
    path = tmp_path / "qa.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["input_query", "generated_answer", "expected_answer"])
        writer.writeheader()
        writer.writerows(
            {"input_query": i, "generated_answer": i % 3, "expected_answer": 0} for i in range(n)
        )
    client.datasets.register(
        dataset_id="big", purpose="eval/question-answer", source={"type": "uri", "uri": path.as_uri()}
    )
    answer = client.scoring.score_batch(
        dataset_id="big", scoring_functions={"basic::equality": None}, save_results_dataset=False
    )
    result = answer.results["basic::equality"]
    assert len(result.score_rows) == n
    correct = sum(1 for i in range(n) if i % 3 == 0)
    assert result.aggregated_results["accuracy"]["num_correct"] == correct
    assert answer.dataset_id is None

    with pytest.raises(llama_stack_client.NotFoundError) as err:
        client.scoring.score_batch(
            dataset_id="nope", scoring_functions={"basic::equality": None}, save_results_dataset=False
        )
    assert "nope" in str(err.value)
