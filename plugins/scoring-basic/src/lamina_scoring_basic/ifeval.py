"""``basic::ifeval``: how many of a row's verifiable instructions (IFEval) its answer follows.

A row has ``instruction_id_list`` (IFEval's ids, ``detectable_format:title``, ...), ``kwargs`` (one
dict per instruction, its arguments; null (or NaN) values are ignored, as in IFEval's data where each
dict carries every argument name) and ``generated_answer``. Both lists may come as JSON text (a CSV
dataset). The result is Llama Stack's: ``score``, the share of instructions followed, and
``weight``, how many there were, for the ``weighted_average`` aggregation (IFEval's
instruction-level accuracy). An empty answer follows none; a row with no instructions scores 0.0
with weight 0.0. ``prompt``, if present, is not read: ``combination:repeat_prompt`` names the
prompt to repeat in its kwargs.

An id this scorer does not know, or kwargs an instruction does not take, is the row's error (a 400
naming the row, the instruction and the fix), never a silent 0.
"""

from __future__ import annotations

import difflib
import json
import math
from typing import Any

from pydantic import ValidationError

from lamina.apis.scoring import ScoringFn, ScoringRowError
from lamina.errors import describe_validation_error
from lamina_scoring_basic.ifeval_checks import INSTRUCTIONS, Checker, Response

Rows = list[dict[str, Any]]
COLUMNS = ("instruction_id_list", "kwargs", "generated_answer")
NO_INSTRUCTIONS: dict[str, Any] = {"score": 0.0, "weight": 0.0}  # shared, read-only


def _column(row: Any, i: int, name: str) -> Any:
    if not isinstance(row, dict) or name not in row:
        have = ", ".join(map(str, row)) if isinstance(row, dict) else type(row).__name__
        raise ScoringRowError(
            i, f"the row has no column '{name}' (it needs {', '.join(COLUMNS)}; it has: {have or 'none'})"
        )
    return row[name]


def _list(value: Any, i: int, name: str, example: str) -> list[Any]:
    if isinstance(value, str):  # a list read from a CSV cell
        try:
            value = json.loads(value)
        except ValueError:
            raise ScoringRowError(
                i, f"column '{name}' is text that is not JSON; send a list, e.g. {example}"
            ) from None
    if not isinstance(value, list):
        raise ScoringRowError(
            i, f"column '{name}' must be a list, e.g. {example}; got {type(value).__name__}"
        )
    return value


def _null(value: Any) -> bool:
    # NaN: a null that went through a pandas column of numbers (a Parquet or CSV dataset).
    return value is None or (isinstance(value, float) and math.isnan(value))


def _checker(i: int, k: int, instruction_id: Any, kwargs: Any) -> Checker:
    where = f"instruction_id_list[{k}]"
    cls = INSTRUCTIONS.get(instruction_id) if isinstance(instruction_id, str) else None
    if cls is None:
        close = difflib.get_close_matches(str(instruction_id), INSTRUCTIONS, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ScoringRowError(
            i,
            f"{where} '{instruction_id}' is not an IFEval instruction basic::ifeval checks; {hint}"
            f"the ids it checks: {', '.join(INSTRUCTIONS)}",
        )
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise ScoringRowError(
            i, f"kwargs[{k}] for '{instruction_id}' must be an object, got {type(kwargs).__name__}"
        )
    given = {name: value for name, value in kwargs.items() if not _null(value)}
    try:
        return cls(**given)
    except ValidationError as exc:
        takes = ", ".join(cls.model_fields) or "no arguments"
        raise ScoringRowError(
            i,
            f"kwargs[{k}] for '{instruction_id}': {describe_validation_error(exc, top='kwargs')}; "
            f"it takes {takes}",
        ) from None


def ifeval(rows: Rows, fn: ScoringFn, params: Any) -> Rows:
    out: Rows = []
    for i, row in enumerate(rows):
        ids = _list(
            _column(row, i, "instruction_id_list"), i, "instruction_id_list", '["punctuation:no_comma"]'
        )
        kwargs = _list(_column(row, i, "kwargs"), i, "kwargs", "[{}]")
        if len(kwargs) != len(ids):
            raise ScoringRowError(
                i,
                f"kwargs has {len(kwargs)} entries for {len(ids)} instructions; send one dict per "
                "instruction in instruction_id_list ({} for one that takes no arguments)",
            )
        checkers = [
            _checker(i, k, instruction_id, kw)
            for k, (instruction_id, kw) in enumerate(zip(ids, kwargs, strict=True))
        ]
        if not checkers:
            out.append(NO_INSTRUCTIONS)
            continue
        answer = _column(row, i, "generated_answer")
        if answer is None:
            raise ScoringRowError(i, "column 'generated_answer' is null; it must be text")
        response = Response(str(answer).strip())
        followed = sum(1 for c in checkers if c.follows(response)) if response.value else 0
        out.append({"score": followed / len(checkers), "weight": float(len(checkers))})
    return out
