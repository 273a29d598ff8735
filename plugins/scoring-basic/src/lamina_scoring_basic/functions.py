"""The inline::basic scoring functions: what each registers as, and how it scores a page of rows.

Each scorer takes plain row dicts and returns ``{"score": 1.0 | 0.0}`` per row; no pydantic model per
row (``basic::equality`` is meant to score tens of thousands of rows a second through the API).
``basic::ifeval`` (a share of instructions followed, and a weight) is in ``ifeval``, its checkers in
``ifeval_checks``; ``basic::bfcl`` (the Berkeley Function-Calling Leaderboard's AST checker) in
``bfcl`` and its ``bfcl_*`` modules. Both are imported on their first row. Every function Llama Stack
0.2.12 registers for inline::basic is here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from lamina.apis.scoring import RegexParserScoringFnParams, ScoringFn, ScoringRowError
from lamina_scoring_basic.answers import math_final_answer, normalize_docvqa, normalize_math_expected

Rows = list[dict[str, Any]]
Scorer = Callable[[Rows, ScoringFn, Any], Rows]

NUMBER = {"type": "number"}
# Every row's result is one of these two dicts, shared: score-batch keeps each row's result for its
# answer, and a pointer a row (8 bytes) is what that costs instead of a dict a row (~180 bytes).
# Read-only (the ScoringProvider contract).
MATCH: dict[str, Any] = {"score": 1.0}
MISS: dict[str, Any] = {"score": 0.0}
ACCURACY = {"type": "basic", "aggregation_functions": ["accuracy"]}

# How "the answer is" reads in the languages of multilingual multiple-choice benchmarks (MMLU-style).
ANSWER_LABELS = (
    r"The best answer is ",
    r"Answer\s*:",
    r"Antwort\s*:",
    r"Respuesta\s*:",
    r"Risposta\s*:",
    r"Réponse\s*:",
    r"Resposta\s*:",
    r"Jawaban\s*:",
    r"Jibu\s*:",
    r"Idahun\s*:",
    r"উত্তর\s*:",
    r"उत्तर\s*:",
    r"답변\s*:",
    r"정답\s*:",
    r"答案\s*[:：]",
    r"答\s*[:：]",
    r"回答\s*[:：]",
    r"答え\s*[:：]",
    r"解答\s*:",
    r"الإجابة\s*:",
    r"الجواب\s*:",
)
# The letter after the label: A-D in Latin, Arabic, Bengali and full-width forms.
CHOICE = r"([A-D]|[أ-د]|[অবডঢ]|[ＡＢＣＤ])"
MULTIPLE_CHOICE_REGEXES = [rf"(?i){label}\s*{CHOICE}" for label in ANSWER_LABELS]
MATH_ANSWER_REGEXES = [r".*final answer is:?\s*\$\\boxed{(?P<X>.*)}\$"]


def _columns(row: dict[str, Any], i: int, *names: str) -> list[Any]:
    try:
        return [row[name] for name in names]
    except (KeyError, TypeError):
        missing = [n for n in names if not isinstance(row, dict) or n not in row]
        have = ", ".join(map(str, row)) if isinstance(row, dict) else type(row).__name__
        raise ScoringRowError(
            i, f"the row has no column '{missing[0]}' (it needs {', '.join(names)}; it has: {have or 'none'})"
        ) from None


def _text(value: Any, i: int, column: str) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        raise ScoringRowError(i, f"column '{column}' is null; it must be text")
    return str(value)  # a number read from a CSV: compare its text, as it reads


def equality(rows: Rows, fn: ScoringFn, params: Any) -> Rows:
    out = []
    for i, row in enumerate(rows):
        try:
            expected, generated = row["expected_answer"], row["generated_answer"]
        except (KeyError, TypeError):
            expected, generated = _columns(row, i, "expected_answer", "generated_answer")
        out.append(MATCH if expected == generated else MISS)
    return out


def subset_of(rows: Rows, fn: ScoringFn, params: Any) -> Rows:
    out = []
    for i, row in enumerate(rows):
        expected, generated = _columns(row, i, "expected_answer", "generated_answer")
        expected, generated = _text(expected, i, "expected_answer"), _text(generated, i, "generated_answer")
        out.append(MATCH if expected in generated else MISS)
    return out


@lru_cache(maxsize=64)
def _compiled(patterns: tuple[str, ...]) -> list[re.Pattern[str]]:
    return [re.compile(p) for p in patterns]


def parsing_regexes(fn: ScoringFn, params: Any) -> list[re.Pattern[str]]:
    """The call's regexes, else the function's registered ones (a call may send only aggregations)."""
    for source in (params, fn.params):
        if isinstance(source, RegexParserScoringFnParams) and source.parsing_regexes:
            return _compiled(tuple(source.parsing_regexes))
    return []


def regex_parser(rows: Rows, fn: ScoringFn, params: Any) -> Rows:
    """1.0 when the first group of the first regex that matches the generated answer is the expected
    answer."""
    regexes = parsing_regexes(fn, params)
    out = []
    for i, row in enumerate(rows):
        expected, generated = _columns(row, i, "expected_answer", "generated_answer")
        generated = _text(generated, i, "generated_answer")
        parsed = None
        for regex in regexes:
            match = regex.search(generated)
            if match:
                parsed = match.group(1) if regex.groups else match.group(0)
                break
        out.append(MATCH if parsed and parsed == str(expected) else MISS)
    return out


def math_response(rows: Rows, fn: ScoringFn, params: Any) -> Rows:
    """1.0 when the response's final answer equals the expected one once both are normalised."""
    regexes = parsing_regexes(fn, params)
    out = []
    for i, row in enumerate(rows):
        expected, generated = _columns(row, i, "expected_answer", "generated_answer")
        generated = _text(generated, i, "generated_answer")
        got = math_final_answer(generated, regexes[0]) if regexes else None
        want = normalize_math_expected(_text(expected, i, "expected_answer"))
        out.append(MATCH if got is not None and got == want else MISS)
    return out


def docvqa(rows: Rows, fn: ScoringFn, params: Any) -> Rows:
    """1.0 when the normalised answer is one of the accepted ones: ``expected_answer`` is a JSON list of
    them (Llama Stack's shape), or one answer as plain text."""
    out = []
    for i, row in enumerate(rows):
        expected, generated = _columns(row, i, "expected_answer", "generated_answer")
        accepted = expected
        if isinstance(expected, str):
            try:
                accepted = json.loads(expected)
            except ValueError:
                accepted = [expected]
        if not isinstance(accepted, list):
            accepted = [accepted]
        answer = normalize_docvqa(_text(generated, i, "generated_answer"))
        out.append(MATCH if answer in {normalize_docvqa(str(a)) for a in accepted} else MISS)
    return out


def bfcl(rows: Rows, fn: ScoringFn, params: Any) -> Rows:
    """1.0 when the answer's function calls pass BFCL's AST checks (``lamina_scoring_basic.bfcl``)."""
    from lamina_scoring_basic.bfcl import score_rows

    return score_rows(rows)


def ifeval(rows: Rows, fn: ScoringFn, params: Any) -> Rows:
    """``lamina_scoring_basic.ifeval``'s scorer, imported when first used: its checker models and
    tokenizer set-up would add 30 ms or more to every server start."""
    from lamina_scoring_basic.ifeval import ifeval as score

    return score(rows, fn, params)


# provider_scoring_fn_id -> (scorer, the params kinds it takes, its default registration)
FUNCTIONS: dict[str, tuple[Scorer, tuple[str, ...], dict[str, Any]]] = {
    "equality": (
        equality,
        ("basic",),
        {
            "identifier": "basic::equality",
            "description": "Returns 1.0 if the input is equal to the target, 0.0 otherwise.",
            "params": ACCURACY,
        },
    ),
    "subset-of": (
        subset_of,
        ("basic",),
        {
            "identifier": "basic::subset_of",
            "description": "Returns 1.0 if the expected is included in generated, 0.0 otherwise.",
            "params": ACCURACY,
        },
    ),
    "regex-parser-multiple-choice-answer": (
        regex_parser,
        ("regex_parser", "basic"),
        {
            "identifier": "basic::regex_parser_multiple_choice_answer",
            "description": "Extract answer from response matching Answer: [the_answer_letter], and compare "
            "with expected result",
            "params": {
                "type": "regex_parser",
                "parsing_regexes": MULTIPLE_CHOICE_REGEXES,
                "aggregation_functions": ["accuracy"],
            },
        },
    ),
    "regex-parser-math-response": (
        math_response,
        ("regex_parser", "basic"),
        {
            "identifier": "basic::regex_parser_math_response",
            "description": "For math related benchmarks, extract answer from the generated response and "
            "expected_answer and see if they match",
            "params": {
                "type": "regex_parser",
                "parsing_regexes": MATH_ANSWER_REGEXES,
                "aggregation_functions": ["accuracy"],
            },
        },
    ),
    "docvqa": (
        docvqa,
        ("basic",),
        {
            "identifier": "basic::docvqa",
            "description": "DocVQA Visual Question & Answer scoring function",
            "params": ACCURACY,
        },
    ),
    "bfcl": (
        bfcl,
        ("basic",),
        {"identifier": "basic::bfcl", "description": "BFCL complex scoring", "params": ACCURACY},
    ),
    "ifeval": (
        ifeval,
        ("basic",),
        {
            "identifier": "basic::ifeval",
            # Llama Stack's text, typos and all: clients may compare it.
            "description": "Eval intruction follow capacity by checkping how many instructions can be "
            "followed in each example",
            "params": {"type": "basic", "aggregation_functions": ["weighted_average"]},
        },
    ),
}
