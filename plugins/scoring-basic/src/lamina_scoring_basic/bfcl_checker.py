"""BFCL's AST checks: does a decoded answer call the right function with acceptable arguments?

The rules are those the Berkeley Function-Calling Leaderboard publishes for its AST categories, written
afresh here:

- the function name matches (a model that cannot put dots in names may write ``math_factorial`` for
  ``math.factorial``);
- every required parameter is given, and no parameter the function or the ground truth does not know;
- each value has the parameter's declared type (Python: integer, float — an int passes —, boolean,
  string, array, tuple, dict, any; Java and JavaScript types through their own converters), nested
  types checked element by element; a value of the ground truth's type where that differs from the
  declared one is a variable name and is compared as written;
- the value is one of the ground truth's possible answers: strings compared after BFCL's normalisation
  (no spaces or ``,./-_*^``, lower case, ``'`` read as ``"``), lists element-wise, dicts key by key;
- a parameter left out must have ``""`` among its possible answers (optional);
- ``parallel`` categories match calls to expected calls in any order, ``multiple`` ones check the one
  call against the function the ground truth names among several offered.

A check answers None when the call passes, else a ``Miss`` saying why (``error_type`` uses BFCL's
names, so results read like its reports).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lamina_scoring_basic.bfcl_decode import Call

# Declared type -> the Python type a checked value has, per language (BFCL's tables).
PYTHON_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,  # tuples compare as lists: the ground truth went through JSON
    "dict": dict,
    "any": str,
    # JSON Schema spellings some datasets use for the same types
    "object": dict,
    "number": float,
}
JAVA_TYPES: dict[str, type] = {
    "byte": int,
    "short": int,
    "integer": int,
    "long": int,
    "float": float,
    "double": float,
    "boolean": bool,
    "char": str,
    "String": str,
    "any": str,
    "Array": list,
    "ArrayList": list,
    "Queue": list,
    "Stack": list,
    "Set": set,
    "HashMap": dict,
    "Hashtable": dict,
}
JAVASCRIPT_TYPES: dict[str, type] = {
    "String": str,
    "integer": int,
    "float": float,
    "Bigint": int,
    "Boolean": bool,
    "dict": dict,
    "array": list,
    "any": str,
}
TYPES = {"Python": PYTHON_TYPES, "Java": JAVA_TYPES, "JavaScript": JAVASCRIPT_TYPES}
# Declared types whose elements are checked against ``items``.
NESTED = {"Python": {"array", "tuple"}, "Java": {"Array", "ArrayList"}, "JavaScript": {"array"}}

_NOT_COUNTED = re.compile(r"[ ,./\-_*^]")


@dataclass(frozen=True, slots=True)
class Miss:
    """Why an answer scores 0: BFCL's error type and a sentence naming what was wrong."""

    error_type: str
    error: str


class RowProblem(Exception):
    """The row itself (its function schema or ground truth) cannot be checked; the scorer makes it a 400."""


def standardize(text: str) -> str:
    """BFCL's string normalisation: "April 1, 2024" and "april 1 2024" compare equal."""
    return _NOT_COUNTED.sub("", text).lower().replace("'", '"')


# -- one call ----------------------------------------------------------------------------------------


def check_call(function: dict[str, Any], call: Call, answer: dict[str, Any], language: str) -> Miss | None:
    """One decoded call against one function and its possible answers (``{name: {param: [values]}}``)."""
    name = function["name"]
    if call.name not in (name, name.replace(".", "_")):
        return Miss(
            "simple_function_checker:wrong_func_name", f"the answer calls {call.name!r}, not {name!r}"
        )
    if call.positional:
        return Miss(
            "simple_function_checker:positional_argument",
            f"{call.name} got {call.positional} argument(s) without a name; BFCL answers name each one",
        )
    schema = function.get("parameters") or {}
    properties = schema.get("properties") or {}
    possible = next(iter(answer.values()))
    for param in schema.get("required") or []:
        if param not in call.args:
            return Miss(
                "simple_function_checker:missing_required", f"required parameter {param!r} is missing"
            )
    for param, value in call.args.items():
        if param not in properties or param not in possible:
            return Miss("simple_function_checker:unexpected_param", f"unexpected parameter {param!r}")
        miss = check_value(param, value, properties[param], _as_list(possible[param]), language)
        if miss is not None:
            return miss
    for param, values in possible.items():
        if param not in call.args and "" not in _as_list(values):
            return Miss(
                "simple_function_checker:missing_optional",
                f"parameter {param!r} is left out, and the ground truth does not mark it optional",
            )
    return None


def check_value(
    param: str, value: Any, spec: dict[str, Any], possible: list[Any], language: str
) -> Miss | None:
    """One argument: converted (Java, JavaScript), type-checked, then looked up in the possible answers."""
    declared = spec.get("type")
    expected = _python_type(declared, language, param)
    items = (
        spec.get("items") if declared in NESTED[language] and isinstance(spec.get("items"), dict) else None
    )
    if language != "Python":
        from lamina_scoring_basic.bfcl_treesitter import convert

        value = convert(value, declared, items.get("type") if items else None, language)
    if isinstance(value, tuple) and declared == "tuple":
        value = list(value)
    if language == "Python" and expected is float and type(value) is int:
        value = float(value)  # Python widens an int where a float is asked for

    answer_type = next((type(a) for a in possible if a != ""), None)
    variable = answer_type is not None and answer_type is not expected
    if type(value) is expected:
        if items is not None and not _elements_fit(value, items, possible, language, param):
            return Miss(
                "type_error:nested",
                f"parameter {param!r}: an element of {value!r} is not of type {items.get('type')}",
            )
    elif answer_type is not None and type(value) is answer_type:
        variable = True  # a variable name where the ground truth names one
    else:
        return Miss(
            "type_error:simple",
            f"parameter {param!r} must be of type {declared}, got {type(value).__name__} {value!r}",
        )

    if not variable:
        if expected is dict:
            return _check_dict(param, value, possible)
        if (
            expected is list
            and items is not None
            and _python_type(items.get("type"), language, param) is dict
        ):
            return _check_list_of_dicts(param, value, possible)
        if expected is str:
            if standardize(value) not in {standardize(a) for a in possible if isinstance(a, str)}:
                return _value_miss("value_error:string", param, value, possible)
            return None
        if expected is list:
            want = [_standard_list(a) for a in possible if isinstance(a, list | tuple)]
            if _standard_list(value) not in want:
                return _value_miss("value_error:list/tuple", param, value, possible)
            return None
    if value not in possible:
        return _value_miss("value_error:others", param, value, possible)
    return None


def _python_type(declared: Any, language: str, param: str) -> type:
    table = TYPES[language]
    try:
        return table[declared]
    except (KeyError, TypeError):
        raise RowProblem(
            f"parameter {param!r} of the function declares type {declared!r}, which BFCL's {language} "
            f"checker does not know; use one of {', '.join(table)}"
        ) from None


def _elements_fit(
    values: list[Any], items: dict[str, Any], possible: list[Any], language: str, param: str
) -> bool:
    """Every element has the items' type (an int for a float in Python; a variable name where the
    possible answers hold one), nested arrays recursively."""
    expected = _python_type(items.get("type"), language, param)
    answer_types = {type(e) for a in possible if isinstance(a, list) for e in a}
    inner = items.get("items") if isinstance(items.get("items"), dict) else None
    for element in values:
        kind = type(element)
        if kind is tuple and expected is list:
            kind = list
        if kind is expected or (language == "Python" and expected is float and kind is int):
            if inner is not None and not _elements_fit(list(element), inner, [], language, param):
                return False
            continue
        if kind not in answer_types:
            return False
    return True


def _standard_list(values: Any) -> list[Any]:
    return [standardize(v) if isinstance(v, str) else v for v in values]


def _as_list(values: Any) -> list[Any]:
    return values if isinstance(values, list) else [values]


def _value_miss(kind: str, param: str, value: Any, possible: list[Any]) -> Miss:
    return Miss(kind, f"parameter {param!r} is {value!r}; the possible answers are {possible!r}")


def _check_dict(param: str, value: dict[str, Any], possible: list[Any]) -> Miss | None:
    miss = Miss("value_error:dict_value", f"parameter {param!r}: no possible answer is a dict")
    for answer in possible:
        if not isinstance(answer, dict):
            continue
        miss = _dict_against(param, value, answer)
        if miss is None:
            return None
    return miss


def _dict_against(param: str, value: dict[str, Any], answer: dict[str, Any]) -> Miss | None:
    for key, got in value.items():
        if key not in answer:
            return Miss("value_error:dict_key", f"parameter {param!r} has unexpected key {key!r}")
        allowed = _as_list(answer[key])
        standard = [standardize(a) if isinstance(a, str) else a for a in allowed]
        if (standardize(got) if isinstance(got, str) else got) not in standard:
            return Miss(
                "value_error:dict_value",
                f"parameter {param!r}: key {key!r} is {got!r}; the possible values are {allowed!r}",
            )
    for key, allowed in answer.items():
        if key not in value and "" not in _as_list(allowed):
            return Miss("value_error:dict_key", f"parameter {param!r} lacks key {key!r}")
    return None


def _check_list_of_dicts(param: str, value: list[Any], possible: list[Any]) -> Miss | None:
    miss = Miss("value_error:list_dict_count", f"parameter {param!r}: no possible answer is a list of dicts")
    for answer in possible:
        if not isinstance(answer, list):
            continue
        if len(answer) != len(value):
            miss = Miss(
                "value_error:list_dict_count",
                f"parameter {param!r} has {len(value)} dicts; a possible answer has {len(answer)}",
            )
            continue
        for got, want in zip(value, answer, strict=True):
            miss = (
                _dict_against(param, got, want) if isinstance(got, dict) and isinstance(want, dict) else miss
            )
            if miss is not None:
                break
        else:
            return None
    return miss


# -- a whole answer ----------------------------------------------------------------------------------


def check_answer(
    functions: list[dict[str, Any]],
    calls: list[Call],
    answers: list[dict[str, Any]],
    language: str,
    category: str,
) -> Miss | None:
    """The decoded calls against the ground truth, as the category asks: any order for ``parallel``,
    the one named function among several for ``multiple``, else exactly one call of the one function."""
    if "parallel" in category:
        return _check_parallel(functions, calls, answers, language)
    if "multiple" in category:
        if len(calls) != len(answers):
            return _count_miss("multiple_function_checker:wrong_count", len(answers), len(calls))
        return check_call(_function(functions, answers[0]), calls[0], answers[0], language)
    if len(calls) != 1:
        return _count_miss("simple_function_checker:wrong_count", 1, len(calls))
    return check_call(functions[0], calls[0], answers[0], language)


def _check_parallel(
    functions: list[dict[str, Any]], calls: list[Call], answers: list[dict[str, Any]], language: str
) -> Miss | None:
    if len(calls) != len(answers):
        return _count_miss("parallel_function_checker_no_order:wrong_count", len(answers), len(calls))
    fits: list[list[int]] = []
    first_miss: list[Miss | None] = []
    for answer in answers:
        function = _function(functions, answer)
        results = [check_call(function, call, answer, language) for call in calls]
        fits.append([j for j, miss in enumerate(results) if miss is None])
        misses = [m for m in results if m is not None]
        # the reason worth reading: why a call of the expected function failed, if there is one
        named = [m for m in misses if m.error_type != "simple_function_checker:wrong_func_name"]
        first_miss.append((named or misses or [None])[0])
    matched = _match(fits)
    for i, j in enumerate(matched):
        if j is None:
            name = next(iter(answers[i]))
            why = (
                first_miss[i].error
                if first_miss[i]
                else "each matching call is taken by another expected call"
            )
            return Miss(
                "parallel_function_checker_no_order:cannot_find_match",
                f"no call in the answer matches expected call {i} ({name}): {why}",
            )
    return None


def _match(fits: list[list[int]]) -> list[int | None]:
    """A one-to-one matching of expected calls to answer calls (augmenting paths: a call that fits two
    expected calls goes where it leaves room for the others, which a greedy pass would not)."""
    owner: dict[int, int] = {}

    def place(i: int, seen: set[int]) -> bool:
        for j in fits[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or place(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in range(len(fits)):
        place(i, set())
    by_expected: list[int | None] = [None] * len(fits)
    for j, i in owner.items():
        by_expected[i] = j
    return by_expected


def _function(functions: list[dict[str, Any]], answer: dict[str, Any]) -> dict[str, Any]:
    name = next(iter(answer))
    for function in functions:
        if function.get("name") == name:
            return function
    raise RowProblem(
        f"the ground truth expects a call of {name!r}, which column 'function' does not define "
        f"(it defines {', '.join(repr(f.get('name')) for f in functions) or 'nothing'})"
    )


def _count_miss(kind: str, expected: int, got: int) -> Miss:
    return Miss(kind, f"expected {expected} function call(s), the answer has {got}")
