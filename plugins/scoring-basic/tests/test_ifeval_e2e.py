"""basic::ifeval through a real ``lamina run``, driven by llama-stack-client 0.2.12, offline: the server
runs with HF_HUB_OFFLINE=1 and an empty NLTK_DATA, so a checker that needed nltk's downloaded data
would fail its row. The eval test's candidate is the fake OpenAI upstream's ``guard`` model behind
``remote::vllm``: it answers the ``[[guard:<answer>]]`` its prompt scripts."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from llama_stack_client import BadRequestError, LlamaStackClient

from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

RUN_CONFIG = {
    "version": 2,
    "image_name": "scoring-ifeval-e2e",
    "apis": ["scoring"],
    "providers": {"scoring": [{"provider_id": "basic", "provider_type": "inline::basic", "config": {}}]},
}

# Rows shaped as IFEval's dataset has them (llamastack/IfEval): every kwargs dict names every argument.
NAMES = ["num_sentences", "relation", "capital_frequency", "capital_relation", "end_phrase", "language"]


def kwargs(**given: object) -> dict[str, object]:
    return {name: None for name in NAMES} | given


ROWS = [
    {
        "key": 1001,
        "prompt": "Write two sentences about Paris in English, then end with 'Any other questions?'.",
        "instruction_id_list": [
            "length_constraints:number_sentences",
            "language:response_language",
            "startend:end_checker",
        ],
        "kwargs": [
            kwargs(num_sentences=4, relation="less than"),
            kwargs(language="en"),
            kwargs(end_phrase="Any other questions?"),
        ],
        "generated_answer": "Paris is the capital of France. It has 2.1 million inhabitants. "
        "Any other questions?",
    },
    {
        "key": 1002,
        "prompt": "Use at least three words in capitals and no commas.",
        "instruction_id_list": ["change_case:capital_word_frequency", "punctuation:no_comma"],
        "kwargs": [kwargs(capital_frequency=3, capital_relation="at least"), kwargs()],
        "generated_answer": "NASA and ESA work together, but the UN does not.",
    },
]


@pytest.fixture
def client(start_lamina: Callable[..., ServerProcess], tmp_path) -> LlamaStackClient:
    empty = tmp_path / "no-nltk-data"
    empty.mkdir()
    server = start_lamina(RUN_CONFIG, env={"HF_HUB_OFFLINE": "1", "NLTK_DATA": str(empty)})
    return LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)


def test_ifeval_scores_rows_and_aggregates_them(client: LlamaStackClient) -> None:
    fn = client.scoring_functions.retrieve("basic::ifeval")
    assert fn.provider_id == "basic" and fn.provider_resource_id == "ifeval"
    assert fn.params.aggregation_functions == ["weighted_average"]

    response = client.scoring.score(input_rows=ROWS, scoring_functions={"basic::ifeval": None})
    result = response.results["basic::ifeval"]
    assert result.score_rows == [{"score": 1.0, "weight": 3.0}, {"score": 0.5, "weight": 2.0}]
    assert result.aggregated_results == {"weighted_average": {"weighted_average": 0.8}}  # 4 of 5 followed


def test_a_bad_instruction_is_a_400_naming_the_row_and_instruction(client: LlamaStackClient) -> None:
    bad = {**ROWS[1], "instruction_id_list": ["change_case:capital_word_frequency", "punctuation:no_commas"]}
    with pytest.raises(BadRequestError) as err:
        client.scoring.score(input_rows=[ROWS[0], bad], scoring_functions={"basic::ifeval": None})
    message = str(err.value)
    assert "input_rows[1]" in message
    assert "instruction_id_list[1] 'punctuation:no_commas' is not an IFEval instruction" in message
    assert "did you mean 'punctuation:no_comma'?" in message


@pytest.fixture
def batch_client(start_lamina: Callable[..., ServerProcess], tmp_path: Path) -> LlamaStackClient:
    from lamina.plugins import load_plugin_manager
    from lamina.specs import Api

    if "inline::localfs" not in load_plugin_manager().provider_specs(Api.datasetio):
        pytest.skip("no datasetio provider inline::localfs is installed (plugins/datasetio-localfs)")
    localfs = {"provider_id": "localfs", "provider_type": "inline::localfs", "config": {}}
    config = {**RUN_CONFIG, "apis": ["scoring", "datasetio"]}
    config["providers"] = {**RUN_CONFIG["providers"], "datasetio": [localfs]}
    empty = tmp_path / "no-nltk-data"
    empty.mkdir()
    server = start_lamina(config, env={"HF_HUB_OFFLINE": "1", "NLTK_DATA": str(empty)})
    return LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)


def test_score_batch_over_jsonl_and_csv_datasets(batch_client: LlamaStackClient, tmp_path: Path) -> None:
    """JSONL keeps the lists; a CSV holds them as JSON text: both score as the inline rows do."""
    columns = ["key", "prompt", "instruction_id_list", "kwargs", "generated_answer"]
    jsonl = tmp_path / "ifeval.jsonl"
    jsonl.write_text("".join(json.dumps({c: row[c] for c in columns}) + "\n" for row in ROWS))
    as_csv = tmp_path / "ifeval.csv"
    with as_csv.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in ROWS:
            writer.writerow({c: json.dumps(row[c]) if isinstance(row[c], list) else row[c] for c in columns})
    for name, path in (("ifeval-jsonl", jsonl), ("ifeval-csv", as_csv)):
        batch_client.datasets.register(
            dataset_id=name, purpose="eval/messages-answer", source={"type": "uri", "uri": path.as_uri()}
        )
        answer = batch_client.scoring.score_batch(
            dataset_id=name, scoring_functions={"basic::ifeval": None}, save_results_dataset=False
        )
        result = answer.results["basic::ifeval"]
        assert result.score_rows == [{"score": 1.0, "weight": 3.0}, {"score": 0.5, "weight": 2.0}], name
        assert result.aggregated_results == {"weighted_average": {"weighted_average": 0.8}}, name


def test_an_ifeval_benchmark_through_the_eval_api(
    start_lamina: Callable[..., ServerProcess], fake_upstream: ServerProcess
) -> None:
    """Llama Stack's open-benchmark ``meta-reference-ifeval``: a model answers each row's
    chat_completion_input, basic::ifeval scores the answers against the row's instructions."""
    from lamina.plugins import load_plugin_manager
    from lamina.specs import Api

    if "inline::meta-reference" not in load_plugin_manager().provider_specs(Api.eval):
        pytest.skip("no eval provider inline::meta-reference is installed (plugins/eval)")
    scripted = ["Paris is lovely. It is old. Any other questions?", "NASA, ESA and the UN agree."]
    rows = []  # IFEval's rows (llamastack/IfEval) have no answer, and the prompt as chat messages
    for row, answer in zip(ROWS, scripted, strict=True):
        messages = [{"role": "user", "content": f"{row['prompt']} [[guard:{answer}]]"}]
        rows.append({**row, "chat_completion_input": json.dumps(messages)})
        del rows[-1]["generated_answer"]
    config = {
        "version": 2,
        "image_name": "ifeval-eval-e2e",
        "providers": {
            "inference": [
                {
                    "provider_id": "fake",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{fake_upstream.url}/v1"},
                }
            ],
            "scoring": RUN_CONFIG["providers"]["scoring"],
            "datasetio": [{"provider_id": "localfs", "provider_type": "inline::localfs", "config": {}}],
            "agents": [
                {"provider_id": "meta-reference", "provider_type": "inline::meta-reference", "config": {}}
            ],
            "eval": [
                {"provider_id": "meta-reference", "provider_type": "inline::meta-reference", "config": {}}
            ],
        },
        "models": [{"model_id": "scripted", "provider_id": "fake", "provider_model_id": "guard"}],
        "datasets": [
            {
                "dataset_id": "ifeval",
                "purpose": "eval/messages-answer",
                "source": {"type": "rows", "rows": rows},
            }
        ],
        "benchmarks": [
            {
                "benchmark_id": "meta-reference-ifeval",
                "dataset_id": "ifeval",
                "scoring_functions": ["basic::ifeval"],
            }
        ],
    }
    client = LlamaStackClient(base_url=start_lamina(config).url, max_retries=0, timeout=60)
    candidate = {"type": "model", "model": "scripted", "sampling_params": {"max_tokens": 32}}
    job = client.eval.run_eval(
        benchmark_id="meta-reference-ifeval", benchmark_config={"eval_candidate": candidate}
    )
    assert job.status == "completed"
    result = client.eval.jobs.retrieve(job_id=job.job_id, benchmark_id="meta-reference-ifeval")
    assert [g["generated_answer"] for g in result.generations] == scripted
    scores = result.scores["basic::ifeval"]
    # Row 1: fewer than 4 sentences, English, the end phrase; row 2: 3 capital words, but commas.
    assert scores.score_rows == [{"score": 1.0, "weight": 3.0}, {"score": 0.5, "weight": 2.0}]
    assert scores.aggregated_results == {"weighted_average": {"weighted_average": 0.8}}
