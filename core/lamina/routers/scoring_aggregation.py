"""Aggregation functions over scored rows, fed page by page (score-batch never holds a whole dataset).

Llama Stack's semantics (``providers/utils/scoring/aggregation_utils.py`` at v0.2.12), kept as running
totals instead of a list of rows:

- ``accuracy``: ``{accuracy: sum(score) / rows, num_correct: sum(score), num_total: rows}``;
- ``average``: mean of the scores that are not null;
- ``weighted_average``: ``sum(score * weight) / sum(weight)`` over rows with both (ifeval sets weights);
- ``median``: median of the scores that are not null. A median needs every value: only the numbers
  are kept (8 bytes a row in an ``array('d')``; 8 MB per million rows), never the rows;
- ``categorical_count``: ``{str(score): count}``, keys sorted.

Numeric aggregations accept numbers and numeric strings (an LLM judge's score is the text its regex
captured, "7"); anything else is a 400 naming the function, the aggregation, the row and the value.
Where Llama Stack divides by zero (no rows, no scores), the result is null.
"""

from __future__ import annotations

import statistics
from abc import ABC, abstractmethod
from array import array
from collections import Counter
from typing import Any

from lamina.apis.scoring import AGGREGATION_FUNCTIONS
from lamina.errors import BadRequestError


def _number(value: Any, what: str, row: int) -> float:
    if isinstance(value, int | float):  # bool is an int: True counts 1, as in Llama Stack's sum()
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise BadRequestError(
        f"{what} needs numeric scores, but row {row} scored {value!r}; pick aggregation functions that "
        f"fit this function's scores (categorical_count counts any score)",
        param="aggregation_functions",
    )


class Aggregation(ABC):
    """One aggregation function's running state; ``add`` takes a page of scored rows."""

    name = ""

    def __init__(self, fn_id: str) -> None:
        self.what = f"aggregation '{self.name}' of scoring function '{fn_id}'"

    @abstractmethod
    def add(self, rows: list[dict[str, Any]], first_row: int) -> None:
        """Fold in a page of scored rows; ``first_row`` is the page's first row index (for messages)."""

    @abstractmethod
    def result(self) -> dict[str, Any]:
        """The aggregate so far, in Llama Stack's shape."""


class Accuracy(Aggregation):
    name = "accuracy"

    def __init__(self, fn_id: str) -> None:
        super().__init__(fn_id)
        self.correct = 0.0
        self.total = 0

    def add(self, rows: list[dict[str, Any]], first_row: int) -> None:
        correct = 0.0
        for i, row in enumerate(rows):
            score = row.get("score")
            # 1.0 / 0.0 from the basic functions: the common case skips the checks below.
            correct += score if type(score) is float else _number(score, self.what, first_row + i)
        self.correct += correct
        self.total += len(rows)

    def result(self) -> dict[str, Any]:
        accuracy = self.correct / self.total if self.total else None
        return {"accuracy": accuracy, "num_correct": self.correct, "num_total": self.total}


class Average(Aggregation):
    name = "average"

    def __init__(self, fn_id: str) -> None:
        super().__init__(fn_id)
        self.sum = 0.0
        self.count = 0

    def add(self, rows: list[dict[str, Any]], first_row: int) -> None:
        for i, row in enumerate(rows):
            score = row.get("score")
            if score is not None:
                self.sum += _number(score, self.what, first_row + i)
                self.count += 1

    def result(self) -> dict[str, Any]:
        return {"average": self.sum / self.count if self.count else None}


class WeightedAverage(Aggregation):
    name = "weighted_average"

    def __init__(self, fn_id: str) -> None:
        super().__init__(fn_id)
        self.weighted = 0.0
        self.weights = 0.0

    def add(self, rows: list[dict[str, Any]], first_row: int) -> None:
        for i, row in enumerate(rows):
            weight = row.get("weight")
            if weight is None:
                continue  # Llama Stack: a row without a weight counts in neither sum
            weight = _number(weight, self.what, first_row + i)
            self.weights += weight
            score = row.get("score")
            if score is not None:
                self.weighted += _number(score, self.what, first_row + i) * weight

    def result(self) -> dict[str, Any]:
        return {"weighted_average": self.weighted / self.weights if self.weights else None}


class Median(Aggregation):
    name = "median"

    def __init__(self, fn_id: str) -> None:
        super().__init__(fn_id)
        self.values = array("d")

    def add(self, rows: list[dict[str, Any]], first_row: int) -> None:
        for i, row in enumerate(rows):
            score = row.get("score")
            if score is not None:
                self.values.append(_number(score, self.what, first_row + i))

    def result(self) -> dict[str, Any]:
        return {"median": statistics.median(self.values) if self.values else None}


class CategoricalCount(Aggregation):
    name = "categorical_count"

    def __init__(self, fn_id: str) -> None:
        super().__init__(fn_id)
        self.counts: Counter[str] = Counter()

    def add(self, rows: list[dict[str, Any]], first_row: int) -> None:
        self.counts.update(str(row.get("score")) for row in rows)

    def result(self) -> dict[str, Any]:
        return {"categorical_count": {key: self.counts[key] for key in sorted(self.counts)}}


_BY_NAME: dict[str, type[Aggregation]] = {
    cls.name: cls for cls in (Accuracy, Average, WeightedAverage, Median, CategoricalCount)
}
assert tuple(sorted(_BY_NAME)) == tuple(sorted(AGGREGATION_FUNCTIONS))


class Aggregator:
    """Every aggregation asked of one scoring function, fed the same pages."""

    def __init__(self, fn_id: str, names: list[str]) -> None:
        self.parts = [_BY_NAME[name](fn_id) for name in dict.fromkeys(names)]
        self.rows = 0

    def add(self, rows: list[dict[str, Any]]) -> None:
        for part in self.parts:
            part.add(rows, self.rows)
        self.rows += len(rows)

    def result(self) -> dict[str, Any]:
        """``{aggregation name: its result}``, as Llama Stack's ``aggregated_results``."""
        return {part.name: part.result() for part in self.parts}


def aggregate(fn_id: str, names: list[str], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate scored rows in one go (``Aggregator`` for pages)."""
    aggregator = Aggregator(fn_id, names)
    aggregator.add(rows)
    return aggregator.result()
