"""Synthetic data generation through a real ``lamina run`` driven by llama-stack-client 0.2.12.

The model and the judge are the fake OpenAI upstream (``lamina.testing.fake_openai``) behind
``remote::vllm``: each prompt carries a ``[[script:<tag>]]`` directive whose scripted ``text`` answers
are the candidates, in order (the provider runs one call at a time here, so candidate k gets answer k);
each candidate carries a ``[[guard:Score: N]]`` directive, which the judge (the fake's ``guard`` model,
answering the last such directive of its prompt) reads back as its verdict, and a ``[[script:none]]``
so the judge's own request (which quotes the prompt) takes no scripted answer. Scores are thus scripted,
and each filtering function's kept subset is known.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import llama_stack_client
import pytest
from llama_stack_client import LlamaStackClient

from lamina.testing.processes import ServerProcess, fake_openai_server

pytestmark = pytest.mark.e2e

# (prompt, [(candidate answer, judge score)]) - candidate k is the k-th answer
PROMPTS = [
    ("Capital of France?", [("Paris", 5), ("Lyon", 2), ("Marseille", 3)]),
    ("Largest planet?", [("Saturn", 1), ("Jupiter", 4), ("Jupiter, a gas giant", 4)]),
]
# The kept answers, per filtering function (config below: top_k 2, top_p 0.5, sigmoid around 3.5).
EXPECTED = {
    "none": [["Paris", "Marseille", "Lyon"], ["Jupiter", "Jupiter, a gas giant", "Saturn"]],
    "top_k": [["Paris", "Marseille"], ["Jupiter", "Jupiter, a gas giant"]],
    "top_p": [["Paris"], ["Jupiter", "Jupiter, a gas giant"]],
    "top_k_top_p": [["Paris"], ["Jupiter"]],
    "sigmoid": [["Paris"], ["Jupiter", "Jupiter, a gas giant"]],
}
SDG_CONFIG = {
    "judge_model": "judge",
    "num_candidates": 3,
    "max_concurrent": 1,
    "top_k": 2,
    "top_p": 0.5,
    "random_keep": 0.5,
    "sigmoid_center": 3.5,
    "sigmoid_scale": 0.05,
    "max_inline_candidates": 12,
}


def run_config(fake: ServerProcess, state: Path, **sdg: Any) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "sdg-e2e",
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
            ],
            "datasetio": [{"provider_id": "localfs", "provider_type": "inline::localfs", "config": {}}],
            "scoring": [
                {"provider_id": "llm-as-judge", "provider_type": "inline::llm-as-judge", "config": {}}
            ],
            "synthetic_data_generation": [
                {"provider_id": "sdg", "provider_type": "inline::reference", "config": {**SDG_CONFIG, **sdg}}
            ],
        },
        "metadata_store": {"type": "sqlite", "db_path": str(state / "registry.db")},
        "jobs": {"lease_seconds": 2, "poll_seconds": 0.2},  # a killed server's job resumes 2 s after it died
        "models": [
            {"model_id": "gen", "provider_id": "fake", "provider_model_id": "ok"},
            {"model_id": "gated-gen", "provider_id": "fake", "provider_model_id": "gated"},
            {"model_id": "judge", "provider_id": "fake", "provider_model_id": "guard"},
        ],
    }


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[ServerProcess]:
    with fake_openai_server(tmp_path) as server:
        yield server


def scripted_dialogs(fake: ServerProcess, prompts: list[tuple[str, list[tuple[str, int]]]]) -> list[dict]:
    """The prompts as dialogs, each with a fresh script of its candidates (with their judge scores)."""
    dialogs = []
    for question, answers in prompts:
        tag = f"sdg-{uuid.uuid4().hex[:10]}"
        script = [{"text": f"{text} [[guard:Score: {score}]] [[script:none]]"} for text, score in answers]
        httpx.post(f"{fake.url}/_fake/script", json={"tag": tag, "answers": script}).raise_for_status()
        dialogs.append({"role": "user", "content": f"{question} [[script:{tag}]]"})
    return dialogs


def answer_of(row: dict[str, Any]) -> str:
    return row["expected_answer"].split(" [[")[0]


def kept_answers(rows: list[dict[str, Any]]) -> list[list[str]]:
    by_prompt: dict[int, list[str]] = {}
    for row in rows:
        by_prompt.setdefault(row["prompt_index"], []).append(answer_of(row))
    return [by_prompt.get(i, []) for i in range(len(PROMPTS))]


def client(server: ServerProcess) -> LlamaStackClient:
    return LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)


def test_each_filtering_function_keeps_its_subset_and_a_dataset_is_saved(
    start_lamina: Callable[..., ServerProcess], fake: ServerProcess, tmp_path: Path
) -> None:
    c = client(start_lamina(run_config(fake, tmp_path / "state")))
    for function, expected in EXPECTED.items():
        answer = c.synthetic_data_generation.generate(
            dialogs=scripted_dialogs(fake, PROMPTS), filtering_function=function, model="gen"
        )
        assert kept_answers(answer.synthetic_data) == expected, function
        stats = answer.statistics
        assert stats["prompts"] == 2 and stats["candidates"] == 6 and stats["judged"] == 6, stats
        assert stats["kept"] == sum(len(k) for k in expected) and stats["generation_failures"] == 0
        assert (stats["score_min"], stats["score_max"]) == (1.0, 5.0)
        assert stats["filtering_function"] == function and stats["judge_model"] == "judge"

    # random: seeded per (seed, prompt, candidate): the same request keeps the same rows
    picks = []
    for _ in range(2):
        answer = c.synthetic_data_generation.generate(
            dialogs=scripted_dialogs(fake, PROMPTS),
            filtering_function="random",
            model="gen",
            extra_body={"seed": 3},
        )
        picks.append(kept_answers(answer.synthetic_data))
    assert picks[0] == picks[1]
    for kept, (_, answers) in zip(picks[0], PROMPTS, strict=True):
        assert set(kept) <= {a for a, _ in answers}

    # A system message applies to the prompts after it; rows are post-training messages, saved as a dataset.
    dialogs = [{"role": "system", "content": "Answer in one word."}, *scripted_dialogs(fake, PROMPTS)]
    answer = c.synthetic_data_generation.generate(
        dialogs=dialogs, filtering_function="top_k", model="gen", extra_body={"dataset_id": "sdg-top-k"}
    )
    assert answer.statistics["dataset_id"] == "sdg-top-k"
    first = answer.synthetic_data[0]
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]
    assert first["messages"][0]["content"] == "Answer in one word."
    assert first["score"] == 5.0 and "Score: 5" in first["judge_feedback"]
    dataset = c.datasets.retrieve(dataset_id="sdg-top-k")
    assert dataset.purpose == "post-training/messages"
    rows = c.datasets.iterrows(dataset_id="sdg-top-k").data
    assert kept_answers(rows) == EXPECTED["top_k"]
    assert rows[0]["messages"][-1]["content"] == first["messages"][-1]["content"]


def test_bad_requests_name_the_field_and_the_fix(
    start_lamina: Callable[..., ServerProcess], fake: ServerProcess, tmp_path: Path
) -> None:
    c = client(start_lamina(run_config(fake, tmp_path / "state")))
    generate = c.synthetic_data_generation.generate
    user = [{"role": "user", "content": "hi"}]
    assistant = [{"role": "assistant", "content": "x", "stop_reason": "end_of_turn"}]
    cases = [
        (user, None, "model", "no model named"),
        (assistant, "gen", "dialogs[0].role", "'assistant' messages are not prompts"),
        ([{"role": "system", "content": "be brief"}], "gen", "dialogs", "no user message"),
        (user * 5, "gen", "dialogs", "/v1/synthetic-data-generation/jobs"),
    ]
    for dialogs, model, param, fragment in cases:
        with pytest.raises(llama_stack_client.BadRequestError) as err:
            if model is None:
                generate(dialogs=dialogs, filtering_function="none")
            else:
                generate(dialogs=dialogs, filtering_function="none", model=model)
        assert err.value.body["error"]["param"] == param, err.value.body
        assert fragment in err.value.body["error"]["message"]
    with pytest.raises(llama_stack_client.APIStatusError) as err:
        generate(dialogs=user, filtering_function="none", model="nobody")
    assert err.value.status_code in (400, 404) and "nobody" in err.value.body["error"]["message"]
    # the server keeps serving
    answer = generate(dialogs=scripted_dialogs(fake, PROMPTS[:1]), filtering_function="top_k", model="gen")
    assert kept_answers(answer.synthetic_data)[0] == ["Paris", "Marseille"]


def wait_job(c: LlamaStackClient, job_id: str, statuses: tuple[str, ...], within: float = 60) -> dict:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        job = c.get(f"/v1/jobs/{job_id}", cast_to=object)
        if job["status"] in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} is still {job['status']}")


def script_log(fake: ServerProcess, tag: str) -> list[dict[str, Any]]:
    return httpx.get(f"{fake.url}/_fake/log", params={"tag": tag}).json()


def test_a_large_generation_runs_as_a_job_that_survives_a_kill(
    start_lamina: Callable[..., ServerProcess], fake: ServerProcess, tmp_path: Path
) -> None:
    """A job over 5 prompts, one call at a time: the third prompt's first candidate is scripted to take a
    minute, so the test kills the server (-9) while it waits, restarts it and lets the job finish: every
    prompt's rows are in the dataset once, and the two finished prompts were not generated again (the
    fake logs each scripted prompt's requests)."""
    server = start_lamina(run_config(fake, tmp_path / "state"))
    c = client(server)
    prompts = [(f"Question {i}?", [(f"A{i}", 5), (f"B{i}", 1), (f"C{i}", 3)]) for i in range(5)]
    dialogs = scripted_dialogs(fake, prompts)
    tags = [d["content"].split("[[script:")[1].rstrip("]") for d in dialogs]
    slow = [{"text": "never seen", "delay": 60}] + [
        {"text": f"{text} [[guard:Score: {score}]] [[script:none]]"} for text, score in prompts[2][1]
    ]
    httpx.post(f"{fake.url}/_fake/script", json={"tag": tags[2], "answers": slow}).raise_for_status()
    body = {"dialogs": dialogs, "filtering_function": "top_k", "model": "gen", "dataset_id": "sdg-job"}
    job = c.post("/v1/synthetic-data-generation/jobs", body=body, cast_to=object)
    assert job["kind"] == "synthetic_data_generation.generate" and job["progress"]["total"] == 5
    deadline = time.monotonic() + 30
    while not script_log(fake, tags[2]):  # the third prompt's slow call has started: two prompts are done
        assert time.monotonic() < deadline, "the job did not reach the third prompt"
        time.sleep(0.02)
    server.kill()
    server.restart()
    c = client(server)
    finished = wait_job(c, job["id"], ("completed", "failed"))
    assert finished["status"] == "completed", finished
    assert finished["attempts"] == 2  # resumed after the kill
    rows = c.datasets.iterrows(dataset_id="sdg-job", limit=100).data
    expected = sorted([f"A{i}" for i in range(5)] + [f"C{i}" for i in range(5)])  # top_k 2 of each prompt
    assert sorted(answer_of(r) for r in rows) == expected
    assert [len(script_log(fake, tag)) for tag in tags] == [3, 3, 4, 3, 3]  # finished prompts not re-run
    result = finished["result"]
    assert result["prompts"] == 5 and result["dataset_id"] == "sdg-job"
    # the statistics count what this job generated; prompts found in the dataset (appended, not yet in the
    # checkpoint, when the server died) are counted as recovered
    assert result["prompts_done"] + result["recovered_prompts"] == 5


def test_a_job_is_cancelled_mid_generation_and_keeps_what_it_finished(
    start_lamina: Callable[..., ServerProcess], fake: ServerProcess, tmp_path: Path
) -> None:
    c = client(start_lamina(run_config(fake, tmp_path / "state")))
    prompts = [(f"Q{i}?", [(f"A{i}", 5), (f"B{i}", 1), (f"C{i}", 3)]) for i in range(3)]
    dialogs = scripted_dialogs(fake, prompts)
    tag = dialogs[1]["content"].split("[[script:")[1].rstrip("]")
    httpx.post(f"{fake.url}/_fake/script", json={"tag": tag, "answers": [{"text": "x", "delay": 60}]})
    body = {"dialogs": dialogs, "filtering_function": "none", "model": "gen", "dataset_id": "sdg-cancel"}
    job = c.post("/v1/synthetic-data-generation/jobs", body=body, cast_to=object)
    deadline = time.monotonic() + 30
    while not script_log(fake, tag):  # the second prompt is waiting on its slow call
        assert time.monotonic() < deadline, "the job did not reach the second prompt"
        time.sleep(0.02)
    cancelled = c.post(f"/v1/jobs/{job['id']}/cancel", cast_to=object)
    assert cancelled["status"] == "cancelled", cancelled
    rows = c.datasets.iterrows(dataset_id="sdg-cancel", limit=100).data
    assert sorted(answer_of(r) for r in rows) == ["A0", "B0", "C0"]  # the first prompt's rows stay
    # the server goes on serving
    answer = c.synthetic_data_generation.generate(
        dialogs=scripted_dialogs(fake, PROMPTS[:1]), filtering_function="top_k", model="gen"
    )
    assert kept_answers(answer.synthetic_data)[0] == ["Paris", "Marseille"]
