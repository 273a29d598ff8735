"""basic::ifeval through the inline::basic provider: rows as IFEval's dataset has them, Llama Stack's
result shape, the errors a bad row gets, and that nothing is downloaded."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from lamina.apis.scoring import ScoringFn, ScoringRowError
from lamina.providers import ProviderContext
from lamina.routers.scoring_aggregation import WeightedAverage
from lamina.specs import Api
from lamina_scoring_basic import ifeval_checks
from lamina_scoring_basic.config import BasicScoringConfig
from lamina_scoring_basic.plugin import lamina_scoring_functions
from lamina_scoring_basic.provider import BasicScoringProvider

# IFEval's google/IFEval rows carry every argument name in each kwargs dict, null when unused.
ARGUMENT_NAMES = [
    "num_highlights",
    "relation",
    "num_words",
    "num_placeholders",
    "prompt_to_repeat",
    "keywords",
]


def full_kwargs(**given: Any) -> dict[str, Any]:
    return {name: None for name in ARGUMENT_NAMES} | given


def row(ids: list[str], kwargs: list[dict[str, Any]], answer: str, **more: Any) -> dict[str, Any]:
    return {"prompt": "p", "instruction_id_list": ids, "kwargs": kwargs, "generated_answer": answer, **more}


def ifeval_fn() -> ScoringFn:
    (res,) = [r for r in lamina_scoring_functions() if r.identifier == "basic::ifeval"]
    return ScoringFn(
        identifier=res.identifier,
        provider_resource_id=res.provider_resource_id,
        provider_id="basic",
        **res.params,
    )


@pytest.fixture
def provider(tmp_path) -> BasicScoringProvider:
    return BasicScoringProvider(
        BasicScoringConfig(), ProviderContext(Api.scoring, "basic", "inline::basic", tmp_path)
    )


THREE = [
    "detectable_format:number_highlighted_sections",
    "length_constraints:number_words",
    "punctuation:no_comma",
]
THREE_KWARGS = [full_kwargs(num_highlights=2), full_kwargs(num_words=10, relation="less than"), full_kwargs()]


def test_registered_as_llama_stack_registers_it() -> None:
    fn = ifeval_fn()
    assert fn.provider_resource_id == "ifeval"
    assert fn.return_type.type == "number"
    assert fn.params.type == "basic" and fn.params.aggregation_functions == ["weighted_average"]
    assert fn.description.startswith("Eval intruction follow capacity")


async def test_a_row_scores_the_share_of_instructions_followed(provider) -> None:
    rows = [
        row(THREE, THREE_KWARGS, "  *One* and *two* highlights  "),  # all three
        row(THREE, THREE_KWARGS, "*One* highlight, and a comma"),  # words and no comma fail
        row(THREE, THREE_KWARGS, "   "),  # an empty answer follows nothing
        row([], [], "anything"),  # nothing to follow: weight 0
    ]
    got = await provider.score_rows(ifeval_fn(), rows, None)
    assert got == [
        {"score": 1.0, "weight": 3.0},
        {"score": pytest.approx(1 / 3), "weight": 3.0},
        {"score": 0.0, "weight": 3.0},
        {"score": 0.0, "weight": 0.0},
    ]
    # weighted_average: instructions followed over instructions, IFEval's instruction-level accuracy.
    agg = WeightedAverage("basic::ifeval")
    agg.add(got, 0)
    assert agg.result() == {"weighted_average": pytest.approx(4 / 9)}


async def test_lists_in_json_text_as_a_csv_has_them(provider) -> None:
    rows = [row(json.dumps(THREE), json.dumps(THREE_KWARGS), "*a* *b* c")]
    assert await provider.score_rows(ifeval_fn(), rows, None) == [{"score": 1.0, "weight": 3.0}]


async def test_nan_arguments_are_nulls(provider) -> None:
    """A Parquet dataset read through pandas: unused arguments of a numeric column are NaN, used ones
    floats."""
    nan = float("nan")
    kwargs = [
        full_kwargs(num_highlights=2.0, num_words=nan),
        full_kwargs(num_words=10.0, relation="less than", num_highlights=nan),
    ]
    rows = [row(THREE[:2], kwargs, "*a* *b* c")]
    assert await provider.score_rows(ifeval_fn(), rows, None) == [{"score": 1.0, "weight": 2.0}]


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        (
            row(["poetry:haiku"], [{}], "x"),
            "instruction_id_list[0] 'poetry:haiku' is not an IFEval instruction basic::ifeval "
            "checks; the ids it checks: keywords:existence,",
        ),
        (
            row(["keywords:frequency"], [{"keyword": "dog", "frequency": 2, "relation": "more than"}], "x"),
            "kwargs[0] for 'keywords:frequency': relation: Input should be 'less than' or 'at least'",
        ),
        (
            row(["punctuation:no_comma"], [{"num_words": 3}], "x"),
            "kwargs[0] for 'punctuation:no_comma': num_words: Extra inputs are not permitted (got 3); "
            "it takes no arguments",
        ),
        (
            row(["keywords:existence"], [{}], "x"),
            "kwargs[0] for 'keywords:existence': keywords: required, but missing; it takes keywords",
        ),
        (row(THREE, THREE_KWARGS[:2], "x"), "kwargs has 2 entries for 3 instructions"),
        (row("punctuation:no_comma", [{}], "x"), "column 'instruction_id_list' is text that is not JSON"),
        (
            {"instruction_id_list": THREE, "generated_answer": "x"},
            "the row has no column 'kwargs' (it needs instruction_id_list, kwargs, generated_answer",
        ),
    ],
)
async def test_a_bad_row_names_the_row_instruction_and_fix(provider, bad_row, message) -> None:
    rows = [row(["punctuation:no_comma"], [{}], "fine"), bad_row]
    with pytest.raises(ScoringRowError) as err:
        await provider.score_rows(ifeval_fn(), rows, None)
    assert err.value.row == 1
    assert message in err.value.message


async def test_scored_off_the_event_loop(provider, monkeypatch) -> None:
    """Language detection costs milliseconds a row: even one row is checked in a worker thread."""
    threads = []
    original = ifeval_checks.NoComma.follows

    def spy(self, response):
        threads.append(threading.current_thread())
        return original(self, response)

    monkeypatch.setattr(ifeval_checks.NoComma, "follows", spy)
    assert await provider.score_rows(ifeval_fn(), [row(["punctuation:no_comma"], [{}], "ok")], None)
    assert threads and threads[0] is not threading.main_thread()
