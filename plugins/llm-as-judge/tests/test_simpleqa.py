"""llm-as-judge::405b-simpleqa: its registration (Llama Stack 0.2.12's fields), its grader prompt and the
reading of the judge's letter. In process: no judge is called here (test_simpleqa_e2e.py scores rows
through a real server)."""

from __future__ import annotations

import string

import pytest

from lamina.apis.scoring import LLMAsJudgeScoringFnParams, ScoringFn, ScoringRowError
from lamina.errors import BadRequestError
from lamina_llm_as_judge import plugin, simpleqa
from lamina_llm_as_judge.provider import _regexes, judge_params, read_score, render_prompt

ROW = {
    "input_query": "Which element has the atomic number 26?",
    "expected_answer": "Iron",
    "generated_answer": "I am fairly sure it is iron (Fe).",
}


def simpleqa_fn() -> ScoringFn:
    resource = next(r for r in plugin.lamina_scoring_functions() if r.identifier == simpleqa.IDENTIFIER)
    return ScoringFn.model_validate(
        {
            "identifier": resource.identifier,
            "provider_id": "llm-as-judge",
            "provider_resource_id": resource.provider_resource_id,
            **resource.params,
        }
    )


def test_it_is_registered_with_llama_stacks_fields() -> None:
    fn = simpleqa_fn()
    assert fn.identifier == "llm-as-judge::405b-simpleqa"
    assert fn.provider_resource_id == "llm-as-judge-405b-simpleqa"
    assert fn.description == (
        "Llm As Judge Scoring Function for SimpleQA Benchmark "
        "(https://github.com/openai/simple-evals/blob/main/simpleqa_eval.py)"
    )
    assert fn.return_type.type == "number"
    assert fn.params.type == "llm_as_judge"
    assert fn.params.judge_model == "meta-llama/Llama-3.1-405B-Instruct"
    assert fn.params.judge_score_regexes == ["(A|B|C)"]
    assert fn.params.aggregation_functions == ["categorical_count"]
    assert fn.params.prompt_template == simpleqa.GRADER_PROMPT
    # Both of Llama Stack's llm-as-judge functions, and nothing else.
    assert [r.identifier for r in plugin.lamina_scoring_functions()] == [
        "llm-as-judge::base",
        "llm-as-judge::405b-simpleqa",
    ]


def test_the_grader_prompt_names_exactly_the_three_columns() -> None:
    fields = {name for _, name, _, _ in string.Formatter().parse(simpleqa.GRADER_PROMPT) if name is not None}
    assert fields == {"input_query", "expected_answer", "generated_answer"}


def test_the_grader_prompt_renders_a_row_and_asks_for_one_letter() -> None:
    prompt = render_prompt(simpleqa.GRADER_PROMPT, ROW | {"unused": "x"}, 0)
    assert f"Question: {ROW['input_query']}\n" in prompt
    assert f"Reference answer: {ROW['expected_answer']}\n" in prompt
    assert f"Answer to grade: {ROW['generated_answer']}\n" in prompt
    assert "{" not in prompt and "}" not in prompt  # every placeholder filled, no stray braces
    assert "A: CORRECT\nB: INCORRECT\nC: NOT_ATTEMPTED\n" in prompt
    assert prompt.endswith("Write only that letter, A, B or C, and nothing else.")
    assert simpleqa.GRADES == {"A": "CORRECT", "B": "INCORRECT", "C": "NOT_ATTEMPTED"}


def test_a_row_without_a_column_the_prompt_needs_names_it() -> None:
    with pytest.raises(ScoringRowError) as err:
        render_prompt(simpleqa.GRADER_PROMPT, {"input_query": "q", "generated_answer": "a"}, 3)
    assert err.value.row == 3 and "needs column 'expected_answer'" in err.value.message


@pytest.mark.parametrize(
    ("answer", "score"),
    [
        ("A", "A"),
        ("B", "B"),
        ("C", "C"),
        ("  B\n", "B"),
        ("B: INCORRECT", "B"),
        ("The grade is A", "A"),
        # Llama Stack's regex reads the first capital A, B or C anywhere: a judge that answers with the
        # grade's name instead of its letter is read by the name's first such capital ("CORRECT" -> C).
        ("CORRECT", "C"),
        ("a", None),
        ("", None),
        ("not sure", None),
    ],
)
def test_the_judges_letter_is_the_score(answer: str, score: str | None) -> None:
    assert read_score(answer, _regexes(tuple(simpleqa.SCORE_REGEXES))) == score


def test_a_call_naming_only_its_judge_keeps_the_functions_prompt_and_regex() -> None:
    fn = simpleqa_fn()
    call = LLMAsJudgeScoringFnParams(judge_model="my-judge", aggregation_functions=["categorical_count"])
    params = judge_params(fn, call, "scoring_functions.x")
    assert params.judge_model == "my-judge"
    assert params.prompt_template == simpleqa.GRADER_PROMPT
    assert params.judge_score_regexes == ["(A|B|C)"]

    # What the call sets wins, as in Llama Stack; empty is as good as left out (an eval job's params
    # come back from JSON with every default set).
    call = LLMAsJudgeScoringFnParams(
        judge_model="j", prompt_template="{input_query}?", judge_score_regexes=[r"Score: (\d)"]
    )
    params = judge_params(fn, call, "scoring_functions.x")
    assert params.prompt_template == "{input_query}?" and params.judge_score_regexes == [r"Score: (\d)"]
    dumped = LLMAsJudgeScoringFnParams(judge_model="j").model_dump(mode="json", exclude_none=True)
    params = judge_params(fn, LLMAsJudgeScoringFnParams.model_validate(dumped), "scoring_functions.x")
    assert params.prompt_template == simpleqa.GRADER_PROMPT and params.judge_score_regexes == ["(A|B|C)"]

    # A prompt the call sets is still checked.
    call = LLMAsJudgeScoringFnParams(judge_model="j", prompt_template="{input_query")
    with pytest.raises(BadRequestError) as err:
        judge_params(fn, call, "scoring_functions.x")
    assert err.value.param == "scoring_functions.x.prompt_template"
