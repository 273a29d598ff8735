"""Generate -> train -> serve as one path, through a real ``lamina run`` and llama-stack-client 0.2.12.

Synthetic data generation (inline::reference) writes candidate answers with the fake upstream's model
and its judge scores them, both scripted (``[[script:<tag>]]``: the generator's tag in the dialogs'
system message, the judge's in its prompt template; every call runs one at a time, so the scripted
answers come in order: for each prompt a worse and a better answer, then their scores 1 and 5);
``top_k`` keeps the better answer of each prompt and saves the rows as a dataset; a LoRA SFT job
(inline::huggingface) trains the test's tiny random Llama on that dataset as it is, and the checkpoint,
registered as a model, answers through inline::transformers with the answers the judge preferred.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_stack_client import LlamaStackClient

from lamina.testing.processes import ServerProcess, fake_openai_server, until
from lamina_post_training_huggingface.tiny_model import build_tiny_llama

pytestmark = pytest.mark.e2e

# (question, the answer the judge prefers, a worse one)
QA = [("What color is the sky?", "Blue.", "Green."), ("Name a big cat.", "A tiger.", "A mouse.")]
LORA = {
    "type": "LoRA",
    "lora_attn_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "apply_lora_to_mlp": True,
    "apply_lora_to_output": True,
    "rank": 32,
    "alpha": 64,
}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [f"{q} {good} {bad}" for q, good, bad in QA] * 5 + ["I do not know."] * 5
    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "model", texts)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[ServerProcess]:
    with fake_openai_server(tmp_path) as server:
        yield server


def run_config(fake: ServerProcess, state: Path, judge_tag: str) -> dict[str, Any]:
    def sqlite(name: str) -> dict[str, str]:
        return {"type": "sqlite", "db_path": str(state / name)}

    return {
        "version": 2,
        "image_name": "generate-train-serve",
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}},
                {"provider_id": "transformers", "provider_type": "inline::transformers", "config": {}},
            ],
            "datasetio": [
                {
                    "provider_id": "localfs",
                    "provider_type": "inline::localfs",
                    "config": {"kvstore": sqlite("d.db")},
                }
            ],
            "scoring": [
                {
                    "provider_id": "llm-as-judge",
                    "provider_type": "inline::llm-as-judge",
                    "config": {"max_concurrency": 1},
                }
            ],
            "synthetic_data_generation": [
                {
                    "provider_id": "sdg",
                    "provider_type": "inline::reference",
                    "config": {
                        "judge_model": "judge",
                        "judge_prompt_template": "Question: {input_query}\nAnswer: {generated_answer}\n"
                        f"Score it 1-5. [[script:{judge_tag}]]",
                        "num_candidates": 2,
                        "max_concurrent": 1,
                        "top_k": 1,
                    },
                }
            ],
            "post_training": [
                {
                    "provider_id": "huggingface",
                    "provider_type": "inline::huggingface",
                    "config": {"device": "cpu", "checkpoint_format": "huggingface", "save_total_limit": 1},
                }
            ],
        },
        "metadata_store": sqlite("registry.db"),
        "models": [
            {"model_id": "gen", "provider_id": "fake", "provider_model_id": "ok"},
            {"model_id": "judge", "provider_id": "fake", "provider_model_id": "guard"},
        ],
        "jobs": {"progress_interval": 0.1, "poll_seconds": 0.2},
    }


def script(fake: ServerProcess, tag: str, texts: list[str]) -> None:
    answers = [{"text": text} for text in texts]
    httpx.post(f"{fake.url}/_fake/script", json={"tag": tag, "answers": answers}).raise_for_status()


def test_generated_data_trains_a_model_that_then_answers(
    start_lamina: Callable[..., ServerProcess], fake: ServerProcess, tiny_model: Path, tmp_path: Path
) -> None:
    gen_tag, judge_tag = f"gen-{uuid.uuid4().hex[:8]}", f"judge-{uuid.uuid4().hex[:8]}"
    server = start_lamina(run_config(fake, tmp_path / "state", judge_tag))
    c = LlamaStackClient(base_url=server.url, max_retries=0, timeout=120)
    prompts = QA * 6  # 12 prompts, 12 kept rows: two batches of 6 an epoch
    # candidate 0 is the worse answer, candidate 1 the better: top_k must pick by score, not by order
    script(fake, gen_tag, [text for _, good, bad in prompts for text in (bad, good)])
    script(fake, judge_tag, ["Score: 1", "Score: 5"] * len(prompts))
    dialogs = [{"role": "system", "content": f"Answer briefly. [[script:{gen_tag}]]"}]
    dialogs += [{"role": "user", "content": question} for question, _, _ in prompts]
    generated = c.synthetic_data_generation.generate(
        dialogs=dialogs, filtering_function="top_k", model="gen", extra_body={"dataset_id": "generated-qa"}
    )
    assert generated.statistics["kept"] == 12 and generated.statistics["judge_failures"] == 0
    rows = c.datasets.iterrows(dataset_id="generated-qa", limit=100).data
    assert sorted((r["input_query"], r["expected_answer"]) for r in rows) == sorted(
        (question, good) for question, good, _ in prompts
    )

    c.post_training.supervised_fine_tune(
        job_uuid="gts-sft",
        model=str(tiny_model),
        training_config={
            "n_epochs": 25,
            "max_steps_per_epoch": 100,
            "gradient_accumulation_steps": 1,
            "data_config": {
                "dataset_id": "generated-qa",  # the generated dataset as it is
                "batch_size": 6,
                "shuffle": False,
                "data_format": "instruct",
            },
            "optimizer_config": {
                "optimizer_type": "adamw",
                "lr": 3e-3,
                "weight_decay": 0.0,
                "num_warmup_steps": 0,
            },
        },
        algorithm_config=LORA,
        hyperparam_search_config={},
        logger_config={},
    )

    def finished() -> Any:
        job = c.post_training.job.status(job_uuid="gts-sft")
        return job if job.status in ("completed", "failed", "cancelled") else None

    job = until(finished, "the training job to end", timeout=300, interval=0.2)
    assert job.status == "completed"
    checkpoint = c.post_training.job.artifacts(job_uuid="gts-sft").checkpoints[-1]["path"]
    c.models.register(
        model_id="tuned", provider_id="transformers", provider_model_id=checkpoint, model_type="llm"
    )
    greedy = {"strategy": {"type": "greedy"}, "max_tokens": 12}
    for question, good, _ in QA:
        answer = c.inference.chat_completion(
            model_id="tuned", messages=[{"role": "user", "content": question}], sampling_params=greedy
        )
        assert answer.completion_message.content == good
