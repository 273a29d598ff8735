"""inline::basic against the Scoring conformance kit (a real `lamina run`, llama-stack-client)."""

from __future__ import annotations

from lamina.testing.conformance import ScoringConformance

RUN_CONFIG = {
    "version": 2,
    "image_name": "scoring-basic-conformance",
    "providers": {"scoring": [{"provider_id": "basic", "provider_type": "inline::basic", "config": {}}]},
}
ROWS = [
    {"input_query": "2+2?", "generated_answer": "Answer: B", "expected_answer": "B"},
    {"input_query": "3+3?", "generated_answer": "6", "expected_answer": "B"},
]


class TestEquality(ScoringConformance):
    provider_id = "basic"
    function = "basic::equality"
    rows = ROWS
    needed_column = "expected_answer"
    run_config = RUN_CONFIG


class TestMultipleChoice(ScoringConformance):
    provider_id = "basic"
    function = "basic::regex_parser_multiple_choice_answer"
    rows = ROWS
    needed_column = "generated_answer"
    params = {"type": "regex_parser", "parsing_regexes": [r"Answer: (\w)"]}
    run_config = RUN_CONFIG


class TestIfeval(ScoringConformance):
    provider_id = "basic"
    function = "basic::ifeval"
    rows = [
        {
            "instruction_id_list": ["punctuation:no_comma"],
            "kwargs": [{}],
            "generated_answer": "No commas here.",
        },
        {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}], "generated_answer": "Well, one."},
    ]
    needed_column = "instruction_id_list"
    run_config = RUN_CONFIG
