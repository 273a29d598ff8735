"""The inline::basic scoring functions, one by one, and the provider's checks."""

from __future__ import annotations

import pytest

from lamina.apis.scoring import (
    BasicScoringFnParams,
    LLMAsJudgeScoringFnParams,
    RegexParserScoringFnParams,
    ScoringFn,
    ScoringRowError,
)
from lamina.errors import BadRequestError
from lamina.providers import ProviderContext
from lamina.specs import Api
from lamina_scoring_basic.answers import normalize_docvqa, normalize_math
from lamina_scoring_basic.config import BasicScoringConfig
from lamina_scoring_basic.functions import FUNCTIONS
from lamina_scoring_basic.plugin import lamina_scoring_functions
from lamina_scoring_basic.provider import BasicScoringProvider


def builtin(identifier: str) -> ScoringFn:
    for res in lamina_scoring_functions():
        if res.identifier == identifier:
            return ScoringFn(
                identifier=res.identifier,
                provider_resource_id=res.provider_resource_id,
                provider_id="basic",
                **res.params,
            )
    raise KeyError(identifier)


@pytest.fixture
def provider(tmp_path) -> BasicScoringProvider:
    context = ProviderContext(Api.scoring, "basic", "inline::basic", tmp_path)
    return BasicScoringProvider(BasicScoringConfig(), context)


async def scores(provider, fn_id: str, rows, params=None) -> list:
    return [r["score"] for r in await provider.score_rows(builtin(fn_id), rows, params)]


def qa(generated, expected) -> dict:
    return {"input_query": "q", "generated_answer": generated, "expected_answer": expected}


async def test_equality(provider) -> None:
    rows = [qa("Paris", "Paris"), qa("London", "Paris"), qa("paris", "Paris"), qa(3, 3)]
    assert await scores(provider, "basic::equality", rows) == [1.0, 0.0, 0.0, 1.0]


async def test_subset_of(provider) -> None:
    rows = [qa("The capital is Paris.", "Paris"), qa("Lyon", "Paris"), qa("Paris", "Paris")]
    assert await scores(provider, "basic::subset_of", rows) == [1.0, 0.0, 1.0]


async def test_multiple_choice_answers_in_several_languages(provider) -> None:
    rows = [
        qa("Let me think. Answer: B", "B"),
        qa("The best answer is C", "C"),
        qa("answer : d", "D"),  # (?i): the label's case does not matter; the letter is compared as written
        qa("Respuesta: A", "A"),
        qa("答案：B", "B"),
        qa("I would say B", "B"),  # no label: nothing parsed
        qa("Answer: A", "B"),
    ]
    assert await scores(provider, "basic::regex_parser_multiple_choice_answer", rows) == [
        1.0,
        1.0,
        0.0,
        1.0,
        1.0,
        0.0,
        0.0,
    ]


async def test_regex_parser_with_the_calls_own_regexes(provider) -> None:
    params = RegexParserScoringFnParams(parsing_regexes=[r"Score: (\d+)"], aggregation_functions=["accuracy"])
    rows = [qa("Score: 7", "7"), qa("Score: 3", "7"), qa("no score", "7")]
    got = await scores(provider, "basic::regex_parser_multiple_choice_answer", rows, params)
    assert got == [1.0, 0.0, 0.0]
    # Params with aggregations only (type basic) keep the function's own regexes.
    rows = [qa("Answer: A", "A")]
    basic = BasicScoringFnParams(aggregation_functions=["average"])
    assert await scores(provider, "basic::regex_parser_multiple_choice_answer", rows, basic) == [1.0]


@pytest.mark.parametrize(
    ("generated", "expected", "score"),
    [
        ("So the final answer is $\\boxed{5}$", "5", 1.0),
        ("Therefore the final answer is: $\\boxed{\\frac{1}{2}}$", "0.5", 1.0),
        ("The final answer is $\\boxed{1/2}$", "\\frac12", 1.0),
        ("The final answer is $\\boxed{1,000}$", "1000", 1.0),
        ("The final answer is $\\boxed{12 \\text{ inches}}$", "12", 1.0),
        ("We get x = \\boxed{7}. Q: next question A: 9", "7", 1.0),  # no "final answer": the last box
        ("The final answer is $\\boxed{6}$", "\\boxed{5}", 0.0),
        ("The final answer is $\\boxed{(B)}$", "B", 1.0),
    ],
)
async def test_math_response(provider, generated, expected, score) -> None:
    assert await scores(provider, "basic::regex_parser_math_response", [qa(generated, expected)]) == [score]


def test_normalize_math() -> None:
    assert normalize_math("\\$1,234") == "1234"
    assert normalize_math("x = \\dfrac{3}{4}") == "3/4"
    assert normalize_math("-\\frac{2}{4}") == "-1/2"
    assert normalize_math("\\sqrt2") == "\\sqrt{2}"
    assert normalize_math("90^\\circ") == "90"


async def test_docvqa(provider) -> None:
    rows = [
        qa("The Quick Brown Fox.", '["quick brown fox", "fox"]'),
        qa("two", '["2"]'),
        qa("dont know", '["don\'t know"]'),
        qa("1,000", '["1000"]'),
        qa("cat", '["dog"]'),
        qa("Paris", "Paris"),  # one answer as plain text (not a JSON list) is accepted too
    ]
    assert await scores(provider, "basic::docvqa", rows) == [1.0, 1.0, 1.0, 1.0, 0.0, 1.0]
    assert normalize_docvqa("The answer, in short: (yes)!") == "answer short: yes"  # "in" is dropped too


async def test_a_missing_column_names_the_row_and_column(provider) -> None:
    rows = [qa("a", "a"), {"generated_answer": "a"}]
    for fn_id in ("basic::equality", "basic::subset_of", "basic::docvqa"):
        with pytest.raises(ScoringRowError) as err:
            await provider.score_rows(builtin(fn_id), rows, None)
        assert err.value.row == 1
        assert "no column 'expected_answer'" in err.value.message
        assert "it has: generated_answer" in err.value.message


async def test_params_of_another_kind_are_a_400(provider) -> None:
    judge = LLMAsJudgeScoringFnParams(judge_model="m")
    with pytest.raises(BadRequestError) as err:
        await provider.score_rows(builtin("basic::equality"), [qa("a", "a")], judge)
    assert err.value.param == "scoring_functions.basic::equality"
    assert "takes params of type basic, not 'llm_as_judge'" in err.value.message


async def test_registration_checks_the_provider_function(provider) -> None:
    fn = builtin("basic::equality").model_copy(update={"identifier": "my-eq", "provider_resource_id": "nope"})
    with pytest.raises(BadRequestError) as err:
        await provider.register_scoring_function(fn)
    assert err.value.param == "provider_scoring_fn_id"
    assert "equality" in err.value.message
    # A new id on a built-in scorer, with other aggregations, is fine.
    ok = builtin("basic::equality").model_copy(
        update={"identifier": "my-eq", "params": BasicScoringFnParams(aggregation_functions=["average"])}
    )
    await provider.register_scoring_function(ok)


def test_every_builtin_is_registered_with_llama_stacks_ids() -> None:
    ids = {res.identifier: res.provider_resource_id for res in lamina_scoring_functions()}
    assert ids == {
        "basic::equality": "equality",
        "basic::subset_of": "subset-of",
        "basic::regex_parser_multiple_choice_answer": "regex-parser-multiple-choice-answer",
        "basic::regex_parser_math_response": "regex-parser-math-response",
        "basic::docvqa": "docvqa",
        "basic::bfcl": "bfcl",
        "basic::ifeval": "ifeval",
    }
    assert set(FUNCTIONS) == set(ids.values())


async def test_large_pages_of_regex_functions_run_off_the_loop(provider) -> None:
    rows = [qa("Answer: A", "A")] * 2000
    assert await scores(provider, "basic::regex_parser_multiple_choice_answer", rows) == [1.0] * 2000


@pytest.mark.parametrize("fn_id", ["basic::equality", "basic::subset_of", "basic::docvqa"])
async def test_results_are_not_a_new_dict_per_row(provider, fn_id) -> None:
    """score-batch keeps every row's result for the answer: the basic functions' results are two shared
    read-only dicts, so 100,000 rows cost a list of pointers (0.8 MB), not 100,000 dicts (18 MB)."""
    import tracemalloc

    rows = [qa("a", "a"), qa("a", "b")] * 50_000
    tracemalloc.start()
    try:
        scored = await provider.score_rows(builtin(fn_id), rows, None)
        allocated, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [r["score"] for r in scored[:2]] == [1.0, 0.0] and len(scored) == 100_000
    assert allocated < 2_000_000, f"{allocated:,} bytes for 100,000 results"
