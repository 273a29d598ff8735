"""``basic::bfcl``: the Berkeley Function-Calling Leaderboard's AST score of a model's function calls.

A row is one BFCL question with the model's answer (Llama Stack's bfcl_v3 dataset shape):

- ``generated_answer``: the model's calls, ``[func(a=1), other(b="x")]`` in the row's language;
- ``language``: ``Python``, ``Java`` or ``JavaScript``;
- ``id`` (``simple_12``, ``live_parallel_3-1-0``; the category is what precedes the number, as Llama
  Stack reads it), or for a row without one ``test_category``;
- ``function``: the functions offered (JSON text or a list), each ``{name, parameters: {properties,
  required}}``;
- ``ground_truth``: the expected calls (JSON text or a list), ``[{name: {param: [possible values]}}]``.

Categories: ``irrelevance`` and ``live_irrelevance`` score 1 when the answer calls nothing,
``live_relevance`` when it calls something; every other category is checked call by call
(``bfcl_checker``; ``parallel`` ones in any order, ``multiple`` ones against the function the ground
truth names). The result is ``{"score": 1.0}``, or ``{"score": 0.0, "error_type", "error"}`` saying why
(BFCL's error types). An answer that is not a call scores 0; a row missing a column, or whose function
or ground truth is not BFCL's shape, is a 400 naming the row.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lamina.apis.scoring import ScoringRowError
from lamina_scoring_basic.bfcl_checker import Miss, RowProblem, check_answer
from lamina_scoring_basic.bfcl_decode import LANGUAGES, DecodeError, LanguageUnavailable, decode
from lamina_scoring_basic.functions import MATCH, _columns, _text

RELEVANCE = {"irrelevance": False, "live_irrelevance": False, "live_relevance": True}  # category -> calls?
_ID_NUMBER = re.compile(r"_[0-9_-]+$")


def score_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, row in enumerate(rows):
        try:
            miss = score_row(row, i)
        except RowProblem as exc:
            raise ScoringRowError(i, str(exc)) from None
        out.append(
            MATCH if miss is None else {"score": 0.0, "error_type": miss.error_type, "error": miss.error}
        )
    return out


def score_row(row: dict[str, Any], i: int) -> Miss | None:
    """None when the answer passes, else why not."""
    answer, language = _columns(row, i, "generated_answer", "language")
    answer = _text(answer, i, "generated_answer")
    language = _language(language, i)
    category = _category(row, i)
    expects_calls = RELEVANCE.get(category)
    if expects_calls is None:  # an AST category: read the row before the answer, a bad row is a 400
        functions, ground_truth = _columns(row, i, "function", "ground_truth")
        functions = _functions(_json(functions, i, "function"))
        ground_truth = _ground_truth(_json(ground_truth, i, "ground_truth"))
    try:
        calls = decode(answer, language)
    except DecodeError as exc:
        calls = []
        failure = Miss(
            "ast_decoder:decoder_failed", f"the answer is not a list of {language} function calls: {exc}"
        )
    except LanguageUnavailable as exc:
        raise ScoringRowError(i, f"column 'language' is {language}: {exc}") from None
    else:
        failure = Miss("ast_decoder:decoder_wrong_output_format", "the answer holds no function call")
    if expects_calls is not None:
        if bool(calls) == expects_calls:
            return None
        if expects_calls:
            return Miss("relevance:no_function_call", failure.error)
        names = ", ".join(c.name for c in calls)
        return Miss(
            "irrelevance:function_called", f"no offered function fits the question; the answer calls {names}"
        )
    if not calls:
        return failure
    return check_answer(functions, calls, ground_truth, language, category)


def _language(value: Any, i: int) -> str:
    language = LANGUAGES.get(str(value).strip().lower()) if value is not None else None
    if language is None:
        raise ScoringRowError(
            i, f"column 'language' is {value!r}; basic::bfcl checks answers in Python, Java and JavaScript"
        )
    return language


def _category(row: dict[str, Any], i: int) -> str:
    """The category as Llama Stack reads it, from ``id``; ``test_category`` serves rows without one."""
    if isinstance(row.get("id"), str) and row["id"]:
        return _ID_NUMBER.sub("", row["id"])
    category = row.get("test_category")
    if isinstance(category, str) and category:
        return category
    have = ", ".join(map(str, row)) or "none"
    raise ScoringRowError(
        i,
        f"the row has no column 'id' (BFCL's, e.g. 'simple_12') nor 'test_category' to tell its category; "
        f"it has: {have}",
    )


def _json(value: Any, i: int, column: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ScoringRowError(i, f"column '{column}' is not JSON ({exc})") from None


def _functions(value: Any) -> list[dict[str, Any]]:
    functions = [value] if isinstance(value, dict) else value
    if not isinstance(functions, list) or not functions:
        raise RowProblem(
            f"column 'function' is {type(value).__name__}; BFCL's is a list of function definitions"
        )
    for function in functions:
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise RowProblem("column 'function': each function needs a 'name' (and 'parameters')")
        if not isinstance(function.get("parameters", {}), dict):
            raise RowProblem(
                f"column 'function': function {function['name']!r} has 'parameters' that is not an object"
            )
    return functions


def _ground_truth(value: Any) -> list[dict[str, Any]]:
    shape = "a list of expected calls, [{function_name: {parameter: [possible values]}}]"
    if not isinstance(value, list) or not value:
        raise RowProblem(f"column 'ground_truth' must be {shape}; got {str(value)[:200]!r}")
    for call in value:
        if not (isinstance(call, dict) and len(call) == 1 and isinstance(next(iter(call.values())), dict)):
            raise RowProblem(
                f"column 'ground_truth' must be {shape}; got an element {str(call)[:200]!r} (BFCL checks "
                "its executable and multi-turn categories by running code, which basic::bfcl does not do)"
            )
    return value
