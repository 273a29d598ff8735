"""Post training through a real ``lamina run``, driven by llama-stack-client 0.2.12.

The model is a tiny random Llama built by the test (``build_tiny_llama``: a BPE tokenizer trained
in-process, ``save_pretrained``; nothing downloaded). Datasets are registered rows (inline::localfs).
Training is real (transformers, peft, trl on this CPU): LoRA SFT on three question/answer rows until
the greedy answers are the training answers; DPO until the reward margin has risen; a cancel; a kill -9
mid-job and a restart that resumes from the last checkpoint. Full-parameter SFT (with a validation
dataset) and full DPO ride along in the same servers, queued behind the LoRA jobs; so does a job cancelled
while still scheduled.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import llama_stack_client
import openai as openai_module
import pytest
from llama_stack_client import LlamaStackClient
from openai import OpenAI

from lamina.testing.processes import ServerProcess
from lamina_post_training_huggingface.tiny_model import build_tiny_llama

pytestmark = pytest.mark.e2e

QA = [("What color is the sky?", "Blue."), ("Name a big cat.", "A tiger."), ("Capital of France?", "Paris.")]
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
    texts = [f"{q} {a}" for q, a in QA] * 5 + ["I do not know."] * 5
    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "model", texts)


def run_config(state: Path, runs_in: str = "subprocess") -> dict[str, Any]:
    def sqlite(name: str) -> dict[str, str]:
        return {"type": "sqlite", "db_path": str(state / name)}

    return {
        "version": 2,
        "image_name": "post-training-e2e",
        "providers": {
            # Serves what the jobs train (plugins/transformers).
            "inference": [
                {"provider_id": "transformers", "provider_type": "inline::transformers", "config": {}}
            ],
            "datasetio": [
                {
                    "provider_id": "localfs",
                    "provider_type": "inline::localfs",
                    "config": {"kvstore": sqlite("d.db")},
                }
            ],
            "post_training": [
                {
                    "provider_id": "huggingface",
                    "provider_type": "inline::huggingface",
                    "config": {
                        "device": "cpu",
                        "checkpoint_format": "huggingface",
                        "save_total_limit": 2,
                        "runs_in": runs_in,
                    },
                }
            ],
        },
        "metadata_store": sqlite("registry.db"),
        "jobs": {"progress_interval": 0.1, "poll_seconds": 0.2, "lease_seconds": 3},
    }


def training_config(
    dataset_id: str, *, epochs: int, lr: float = 3e-3, fmt: str = "instruct", batch: int = 1
) -> dict[str, Any]:
    return {
        "n_epochs": epochs,
        "max_steps_per_epoch": 100,
        "gradient_accumulation_steps": 1,
        "max_validation_steps": 1,
        "data_config": {"dataset_id": dataset_id, "batch_size": batch, "shuffle": False, "data_format": fmt},
        "optimizer_config": {"optimizer_type": "adamw", "lr": lr, "weight_decay": 0.0, "num_warmup_steps": 0},
    }


def until(check: Callable[[], Any], what: str, timeout: float = 240.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def status(server: ServerProcess, job_uuid: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/v1/post-training/job/status", params={"job_uuid": job_uuid})
    assert response.status_code == 200, response.text
    return response.json()


def finished(server: ServerProcess, job_uuid: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        got = status(server, job_uuid)
        return got if got["status"] in ("completed", "failed", "cancelled") else None

    return until(done, f"job {job_uuid} to finish")


def greedy_answers(checkpoint: str, questions: list[str]) -> list[str]:
    import torch
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    model = AutoPeftModelForCausalLM.from_pretrained(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    out = []
    for question in questions:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            generated = model.generate(**ids, max_new_tokens=12, do_sample=False)
        out.append(tokenizer.decode(generated[0][ids["input_ids"].shape[1] :], skip_special_tokens=True))
    return out


def test_lora_sft_learns_the_answers_and_reports_steps(
    start_lamina: Callable[..., ServerProcess], tiny_model: Path, tmp_path: Path
) -> None:
    server = start_lamina(run_config(tmp_path / "state"))
    c = LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)
    # Each batch holds the three questions (4 batches an epoch): steadier than one row a step.
    rows = [{"input_query": q, "expected_answer": a} for q, a in QA] * 4
    dataset = c.datasets.register(purpose="post-training/messages", source={"type": "rows", "rows": rows})

    job = c.post_training.supervised_fine_tune(
        job_uuid="sft-1",
        model=str(tiny_model),
        training_config=training_config(dataset.identifier, epochs=20, batch=3),
        algorithm_config=LORA,
        hyperparam_search_config={},
        logger_config={},
    )
    assert job.job_uuid == "sft-1"
    # The job_uuid is taken: a second submit is a 409; bad input is a 400 naming the field.
    with pytest.raises(llama_stack_client.ConflictError, match="sft-1"):
        c.post_training.supervised_fine_tune(
            job_uuid="sft-1",
            model=str(tiny_model),
            training_config=training_config(dataset.identifier, epochs=1),
            hyperparam_search_config={},
            logger_config={},
        )
    with pytest.raises(llama_stack_client.BadRequestError, match="model"):
        c.post_training.supervised_fine_tune(
            job_uuid="sft-bad-model",
            model=str(tmp_path / "nowhere"),
            training_config=training_config(dataset.identifier, epochs=1),
            hyperparam_search_config={},
            logger_config={},
        )
    with pytest.raises(llama_stack_client.BadRequestError, match="dataset_id"):
        c.post_training.supervised_fine_tune(
            job_uuid="sft-bad-data",
            model=str(tiny_model),
            training_config=training_config("no-such-dataset", epochs=1),
            hyperparam_search_config={},
            logger_config={},
        )

    final = finished(server, "sft-1")
    assert final["status"] == "completed", final["error"]
    assert final["progress"] == {"done": 80, "total": 80}
    losses = [m["loss"] for m in final["metrics"]]
    assert [m["step"] for m in final["metrics"]] == list(range(1, 81))
    assert sum(losses[-3:]) < sum(losses[:3]) / 4  # the loss fell

    typed = c.post_training.job.status(job_uuid="sft-1")
    assert typed.status == "completed" and typed.completed_at is not None
    artifacts = c.post_training.job.artifacts(job_uuid="sft-1")
    checkpoints = artifacts.checkpoints
    assert [cp["epoch"] for cp in checkpoints] == [19, 20]  # save_total_limit: 2
    last = checkpoints[-1]
    assert last["post_training_job_id"] == "sft-1" and last["training_metrics"]["epoch"] == 20
    assert (Path(last["path"]) / "adapter_config.json").is_file()
    assert "sft-1" in [j.job_uuid for j in c.post_training.job.list()]
    system_job = httpx.get(f"{server.url}/v1/jobs/{final['lamina_job_id']}").json()
    assert system_job["kind"] == "post_training.sft" and system_job["attempts"] == 1
    # What the trainer raises in the training process fails the job with its message.
    c.post_training.supervised_fine_tune(
        job_uuid="sft-bad-module",
        model=str(tiny_model),
        training_config=training_config(dataset.identifier, epochs=1),
        algorithm_config={**LORA, "lora_attn_modules": ["nope_proj"]},
        hyperparam_search_config={},
        logger_config={},
    )
    failed = finished(server, "sft-bad-module")
    assert failed["status"] == "failed" and "ValueError" in failed["error"]
    assert "no module named nope_proj" in failed["error"]
    # The training process dying (out of memory, say) fails its job saying so.
    c.post_training.supervised_fine_tune(
        job_uuid="sft-crash",
        model=str(tiny_model),
        training_config=training_config(dataset.identifier, epochs=10_000, batch=3),
        hyperparam_search_config={},
        logger_config={},
    )
    until(lambda: status(server, "sft-crash")["progress"]["done"] >= 1, "the job to train")
    [worker] = {
        json.loads(line)["pid"]
        for line in server.log_path.read_text().splitlines()
        if "post_training_worker_started" in line
    }
    os.kill(worker, signal.SIGKILL)
    crashed = finished(server, "sft-crash")
    assert crashed["status"] == "failed" and "training process exited with code -9" in crashed["error"]

    # The adapter answers the training questions with the training answers, greedily.
    assert greedy_answers(last["path"], [q for q, _ in QA]) == [a for _, a in QA]

    # Registered as a model, the checkpoint answers through inline::transformers: both APIs, streamed too.
    c.models.register(
        model_id="tuned", provider_id="transformers", provider_model_id=last["path"], model_type="llm"
    )
    greedy = {"strategy": {"type": "greedy"}, "max_tokens": 12}
    for question, answer in QA:
        chat = c.inference.chat_completion(
            model_id="tuned", messages=[{"role": "user", "content": question}], sampling_params=greedy
        )
        assert chat.completion_message.content == answer
    streamed = c.inference.chat_completion(
        model_id="tuned",
        messages=[{"role": "user", "content": QA[1][0]}],
        sampling_params=greedy,
        stream=True,
    )
    events = list(streamed)
    assert events[0].event.event_type == "start" and events[-1].event.event_type == "complete"
    text = "".join(e.event.delta.text for e in events if e.event.event_type == "progress")
    assert text == QA[1][1] and events[-1].event.stop_reason == "end_of_turn"
    openai = OpenAI(base_url=f"{server.url}/v1/openai/v1", api_key="none", max_retries=0)
    answer = openai.chat.completions.create(
        model="tuned", messages=[{"role": "user", "content": QA[2][0]}], temperature=0, max_tokens=12
    )
    assert answer.choices[0].message.content == QA[2][1] and answer.choices[0].finish_reason == "stop"
    assert answer.usage.completion_tokens > 0
    pieces = openai.chat.completions.create(
        model="tuned",
        messages=[{"role": "user", "content": QA[0][0]}],
        temperature=0,
        max_tokens=12,
        stream=True,
    )
    assert "".join(ch.choices[0].delta.content or "" for ch in pieces if ch.choices) == QA[0][1]
    prompt = f"<|user|>\n{QA[2][0]}\n<|assistant|>\n"
    completion = c.inference.completion(model_id="tuned", content=prompt, sampling_params=greedy)
    assert completion.content == QA[2][1]
    with pytest.raises(openai_module.BadRequestError, match="tools"):
        openai.chat.completions.create(
            model="tuned",
            messages=[{"role": "user", "content": "hi"}],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        )
    with pytest.raises(llama_stack_client.BadRequestError, match="provider_model_id"):
        c.models.register(
            model_id="nowhere", provider_id="transformers", provider_model_id=str(tmp_path / "x")
        )


def test_dpo_raises_the_reward_margin_and_cancel_stops_a_job(
    start_lamina: Callable[..., ServerProcess], tiny_model: Path, tmp_path: Path
) -> None:
    # This server trains in a thread of its own (runs_in: thread); the others in their child process.
    server = start_lamina(run_config(tmp_path / "state", runs_in="thread"))
    c = LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)
    rows = [{"prompt": q, "chosen": a, "rejected": "I do not know."} for q, a in QA]
    dataset = c.datasets.register(purpose="post-training/messages", source={"type": "rows", "rows": rows})
    lora = {**LORA, "apply_lora_to_output": False}
    # Llama Stack 0.2.12's DPO fields (required by its client), and beta / loss_type / a LoRA config.
    algorithm = {"reward_scale": 1.0, "reward_clip": 0.0, "epsilon": 0.0, "gamma": 0.0}
    c.post_training.preference_optimize(
        job_uuid="dpo-1",
        finetuned_model=str(tiny_model),
        algorithm_config=algorithm,
        training_config=training_config(dataset.identifier, epochs=5),
        hyperparam_search_config={},
        logger_config={},
        extra_body={
            "algorithm_config": {**algorithm, "beta": 0.1, "loss_type": "sigmoid"},
            "lora_config": lora,
        },
    )
    with pytest.raises(llama_stack_client.BadRequestError, match="apply_lora_to_output"):
        c.post_training.preference_optimize(
            job_uuid="dpo-bad",
            finetuned_model=str(tiny_model),
            algorithm_config=algorithm,
            training_config=training_config(dataset.identifier, epochs=1),
            hyperparam_search_config={},
            logger_config={},
            extra_body={"lora_config": LORA},
        )
    # Full DPO (no adapter: every weight trains, against a frozen copy of the starting model), queued
    # behind dpo-1 (one training at a time).
    c.post_training.preference_optimize(
        job_uuid="dpo-full",
        finetuned_model=str(tiny_model),
        algorithm_config=algorithm,
        training_config=training_config(dataset.identifier, epochs=3, lr=1e-3),
        hyperparam_search_config={},
        logger_config={},
    )
    final = finished(server, "dpo-1")
    assert final["status"] == "completed", final["error"]
    margins = [m["reward_margin"] for m in final["metrics"]]
    assert len(margins) == 15 and all(m is not None for m in margins)
    assert margins[-1] > margins[0] + 0.5  # chosen answers preferred more and more
    assert final["metrics"][-1]["reward_accuracy"] == 1.0
    full = finished(server, "dpo-full")
    assert full["status"] == "completed", full["error"]
    margins = [m["reward_margin"] for m in full["metrics"]]
    assert len(margins) == 9 and all(m is not None for m in margins)
    assert margins[-1] > margins[0] + 0.5 and full["metrics"][-1]["reward_accuracy"] == 1.0
    [saved] = full["checkpoints"][-1:]
    assert (Path(saved["path"]) / "model.safetensors").is_file()  # the whole model, not an adapter
    assert not (Path(saved["path"]) / "adapter_config.json").exists()

    # Cancel: a long job stops; the next job runs (one training at a time: the slot was let go).
    sft_rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in QA
    ]
    dialogs = c.datasets.register(purpose="post-training/messages", source={"type": "rows", "rows": sft_rows})
    c.post_training.supervised_fine_tune(
        job_uuid="long",
        model=str(tiny_model),
        training_config=training_config(dialogs.identifier, epochs=10_000, fmt="dialog"),
        hyperparam_search_config={},
        logger_config={},
    )
    until(lambda: status(server, "long")["progress"]["done"] >= 2, "the long job to train a few steps")
    c.post_training.job.cancel(job_uuid="long")
    cancelled = status(server, "long")
    assert cancelled["status"] == "cancelled" and cancelled["progress"]["done"] < 30_000
    response = httpx.post(f"{server.url}/v1/post-training/job/cancel", json={"job_uuid": "long"})
    assert response.status_code == 409 and "cancelled" in response.text
    response = httpx.get(f"{server.url}/v1/post-training/job/status", params={"job_uuid": "nope"})
    assert response.status_code == 404 and "nope" in response.text
    c.post_training.supervised_fine_tune(
        job_uuid="after",
        model=str(tiny_model),
        training_config=training_config(dialogs.identifier, epochs=1, fmt="dialog"),
        hyperparam_search_config={},
        logger_config={},
    )
    assert finished(server, "after")["status"] == "completed"


def test_a_killed_server_resumes_training_from_its_last_checkpoint(
    start_lamina: Callable[..., ServerProcess], tiny_model: Path, tmp_path: Path
) -> None:
    server = start_lamina(run_config(tmp_path / "state"))
    c = LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)
    rows = [{"input_query": q, "expected_answer": a} for q, a in QA]
    dataset = c.datasets.register(purpose="post-training/messages", source={"type": "rows", "rows": rows})
    c.post_training.supervised_fine_tune(
        job_uuid="resumed",
        model=str(tiny_model),
        training_config=training_config(dataset.identifier, epochs=15),
        algorithm_config=LORA,
        hyperparam_search_config={},
        logger_config={},
    )
    # Queued behind it (one training at a time): a full-parameter SFT with a validation dataset, and a
    # job cancelled while still scheduled.
    c.post_training.supervised_fine_tune(
        job_uuid="queued-full",
        model=str(tiny_model),
        training_config={
            **training_config(dataset.identifier, epochs=3, lr=1e-3),
            "data_config": {
                **training_config(dataset.identifier, epochs=3)["data_config"],
                "validation_dataset_id": dataset.identifier,
            },
        },
        hyperparam_search_config={},
        logger_config={},
    )
    c.post_training.supervised_fine_tune(
        job_uuid="queued-cancelled",
        model=str(tiny_model),
        training_config=training_config(dataset.identifier, epochs=1),
        hyperparam_search_config={},
        logger_config={},
    )
    assert status(server, "queued-cancelled")["status"] == "scheduled"
    c.post_training.job.cancel(job_uuid="queued-cancelled")
    saved = until(
        lambda: (s := status(server, "resumed"))["checkpoints"] and s["progress"]["done"] < 40 and s,
        "a first checkpoint",
    )
    assert status(server, "queued-full")["status"] == "scheduled"
    server.kill()
    server.start()
    final = finished(server, "resumed")
    assert final["status"] == "completed", final["error"]
    assert final["progress"] == {"done": 45, "total": 45}
    record = httpx.get(f"{server.url}/v1/jobs/{final['lamina_job_id']}").json()
    assert record["attempts"] == 2
    # The second run went on from the last checkpoint the first saved (at or after the one seen).
    [resumed_at] = record["checkpoint"]["resumed_at_steps"]
    assert resumed_at >= max(cp["step"] for cp in saved["checkpoints"]) >= 3
    assert resumed_at % 3 == 0 and resumed_at < 45
    steps = [m["step"] for m in final["metrics"]]
    assert steps == list(range(1, 46))  # each step's record once: the ones after the checkpoint were redone

    # The job cancelled while scheduled stayed cancelled and never ran; the one queued ran after the restart.
    cancelled = status(server, "queued-cancelled")
    assert cancelled["status"] == "cancelled" and cancelled["started_at"] is None
    assert httpx.get(f"{server.url}/v1/jobs/{cancelled['lamina_job_id']}").json()["attempts"] == 0
    full = finished(server, "queued-full")
    assert full["status"] == "completed", full["error"]
    assert full["progress"] == {"done": 9, "total": 9}
    losses = [m["loss"] for m in full["metrics"]]
    assert losses[-1] < losses[0]
    # Full-parameter checkpoints (the whole model, no adapter), each with its validation loss.
    record = httpx.get(f"{server.url}/v1/jobs/{full['lamina_job_id']}").json()
    assert record["attempts"] == 1
    validation = [cp["metrics"]["validation_loss"] for cp in record["checkpoint"]["checkpoints"]]
    assert len(validation) == 3 and validation[-1] < validation[0]
    last = full["checkpoints"][-1]
    assert last["training_metrics"]["validation_loss"] == validation[-1]
    assert (Path(last["path"]) / "model.safetensors").is_file()
    assert not (Path(last["path"]) / "adapter_config.json").exists()
