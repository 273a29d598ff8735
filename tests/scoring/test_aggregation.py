"""The aggregation functions (lamina.routers.scoring_aggregation): Llama Stack 0.2.12's results, in pages."""

from __future__ import annotations

import random

import pytest

from lamina.errors import BadRequestError
from lamina.routers.scoring_aggregation import Aggregator, aggregate

ALL = ["accuracy", "average", "weighted_average", "median", "categorical_count"]


def test_llama_stack_cases() -> None:
    # What Llama Stack 0.2.12's aggregation_utils computes for these rows.
    rows = [{"score": 1}, {"score": 0}, {"score": 1}, {"score": 1}]  # accuracy
    assert aggregate("f", ["accuracy"], rows) == {
        "accuracy": {"accuracy": 0.75, "num_correct": 3.0, "num_total": 4}
    }
    rows = [{"score": "A"}, {"score": "B"}, {"score": "A"}, {"score": "C"}, {"score": "A"}]
    assert aggregate("f", ["categorical_count"], rows) == {
        "categorical_count": {"categorical_count": {"A": 3, "B": 1, "C": 1}}
    }
    rows = [{"score": 1}, {"score": 0}, {"score": 1}]
    assert aggregate("f", ["average"], rows) == {"average": {"average": pytest.approx(2 / 3)}}
    rows = [{"score": 1, "weight": 1}, {"score": 0, "weight": 3}, {"score": 1, "weight": 1}]
    assert aggregate("f", ["weighted_average"], rows) == {"weighted_average": {"weighted_average": 0.4}}
    rows = [{"score": 3}, {"score": None}, {"score": 1}, {"score": 10}]
    assert aggregate("f", ["median"], rows) == {"median": {"median": 3}}


def test_nulls_are_skipped_where_llama_stack_skips_them() -> None:
    rows = [{"score": 1.0}, {"score": None}, {"score": 0.0}, {"score": None}]
    result = aggregate("f", ["average", "median", "categorical_count"], rows)
    assert result["average"] == {"average": 0.5}
    assert result["median"] == {"median": 0.5}
    assert result["categorical_count"] == {"categorical_count": {"0.0": 1, "1.0": 1, "None": 2}}


def test_pages_give_the_same_result_as_one_pass() -> None:
    rng = random.Random(7)
    rows = [{"score": rng.choice([0.0, 1.0, 0.5]), "weight": rng.randint(1, 4)} for _ in range(2503)]
    paged = Aggregator("f", ALL)
    for start in range(0, len(rows), 100):
        paged.add(rows[start : start + 100])
    assert paged.result() == aggregate("f", ALL, rows)
    assert paged.result()["accuracy"]["num_total"] == 2503


def test_judge_scores_as_numeric_text_aggregate() -> None:
    rows = [{"score": "7"}, {"score": "3"}, {"score": "8"}]  # an LLM judge's regex captures text
    result = aggregate("llm-as-judge::base", ["average", "median"], rows)
    assert result == {"average": {"average": 6.0}, "median": {"median": 7.0}}


def test_no_rows_gives_nulls_not_a_division_by_zero() -> None:
    assert aggregate("f", ALL, []) == {
        "accuracy": {"accuracy": None, "num_correct": 0.0, "num_total": 0},
        "average": {"average": None},
        "weighted_average": {"weighted_average": None},
        "median": {"median": None},
        "categorical_count": {"categorical_count": {}},
    }


def test_a_score_that_is_not_a_number_is_a_400_naming_function_aggregation_and_row() -> None:
    aggregator = Aggregator("llm-as-judge::base", ["average"])
    aggregator.add([{"score": "1"}, {"score": "2"}])
    with pytest.raises(BadRequestError) as err:
        aggregator.add([{"score": "5"}, {"score": "great"}])
    message = err.value.message
    assert "aggregation 'average' of scoring function 'llm-as-judge::base'" in message
    assert "row 3 scored 'great'" in message  # counted over pages, not within the page
    assert err.value.param == "aggregation_functions"


def test_median_keeps_numbers_only() -> None:
    aggregator = Aggregator("f", ["median"])
    for _ in range(10):
        aggregator.add([{"score": 1.0, "judge_feedback": "x" * 1000}] * 100)
    median = aggregator.parts[0]
    assert len(median.values) == 1000 and median.values.itemsize == 8  # 8 bytes a row, no row kept
    assert aggregator.result() == {"median": {"median": 1.0}}
