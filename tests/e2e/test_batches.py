"""OpenAI batches through a real ``lamina run``, driven by the OpenAI SDK (``client.batches``, ``files``).

Providers: inline::localfs (files), inline::reference (batches) and, as the inference provider, the
fake OpenAI upstream (``lamina.testing.fake_openai``) behind ``remote::vllm``: its ``ok`` model answers at
once, its ``gated`` model waits while the test holds the gate closed (lines in flight on demand), and
each line's ``[[mark:<custom_id>]]`` is counted by the fake once its answer reached the server
(``GET /_fake/marks``): the kill -9 test proves a resumed batch sent no finished line again.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from lamina.testing.postgres import PostgresServer
from lamina.testing.processes import ServerProcess, fake_openai_server, until

pytestmark = pytest.mark.e2e

ANSWER = "Hello from the fake upstream."


def run_config(fake: ServerProcess, state: Path, **batches: Any) -> dict[str, Any]:
    def sqlite(name: str) -> dict[str, str]:
        return {"type": "sqlite", "db_path": str(state / name)}

    return {
        "version": 2,
        "image_name": "batches-e2e",
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
            ],
            "files": [
                {
                    "provider_id": "localfs",
                    "provider_type": "inline::localfs",
                    "config": {"storage_dir": str(state / "files"), "metadata_store": sqlite("files.db")},
                }
            ],
            "batches": [
                {
                    "provider_id": "reference",
                    "provider_type": "inline::reference",
                    "config": {"kvstore": sqlite("batches.db"), **batches},
                }
            ],
        },
        "metadata_store": sqlite("registry.db"),
        "models": [
            {"model_id": "ok", "provider_id": "fake", "provider_model_id": "ok"},
            {"model_id": "gated", "provider_id": "fake", "provider_model_id": "gated"},
            {"model_id": "echo", "provider_id": "fake", "provider_model_id": "echo"},
            {
                "model_id": "embed",
                "provider_id": "fake",
                "provider_model_id": "embed",
                "model_type": "embedding",
                "metadata": {"embedding_dimension": 4},
            },
        ],
        "jobs": {"progress_interval": 0.1, "poll_seconds": 0.2, "lease_seconds": 2},
    }


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fake upstream of this test's own: its marks and gate are this test's."""
    with fake_openai_server(tmp_path) as server:
        yield server


def client(server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0, timeout=60)


def chat_line(custom_id: str, model: str = "ok", **over: Any) -> dict[str, Any]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": f"hi [[mark:{custom_id}]]"}],
        "max_tokens": 8,
    }
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body} | over


def upload(c: OpenAI, lines: list[Any], purpose: str = "batch") -> str:
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    return c.files.create(file=("input.jsonl", text.encode()), purpose=purpose).id  # type: ignore[arg-type]


def ended(c: OpenAI, batch_id: str, timeout: float = 60.0) -> Any:
    def check() -> Any:
        batch = c.batches.retrieve(batch_id)
        return batch if batch.status in ("completed", "failed", "expired", "cancelled") else None

    return until(check, f"batch {batch_id} to end", timeout)


def file_lines(c: OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [json.loads(line) for line in c.files.content(file_id).text.splitlines()]


def gate(fake: ServerProcess, open_: bool | None = None) -> dict[str, Any]:
    if open_ is None:
        return httpx.get(f"{fake.url}/_fake/gate").json()
    return httpx.post(f"{fake.url}/_fake/gate", json={"open": open_}).json()


def marks(fake: ServerProcess) -> dict[str, int]:
    return httpx.get(f"{fake.url}/_fake/marks").json()


def test_a_1000_line_chat_batch_completes_with_every_answer_once(
    start_lamina: Callable[..., ServerProcess], fake: ServerProcess, tmp_path: Path
) -> None:
    server = start_lamina(run_config(fake, tmp_path / "state", max_concurrent_requests_per_batch=16))
    c = client(server)
    ids = [f"req-{i}" for i in range(1000)]
    file_id = upload(c, [chat_line(i) for i in ids])
    batch = c.batches.create(
        input_file_id=file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"run": "big"},
    )
    assert (batch.object, batch.status, batch.endpoint, batch.metadata) == (
        "batch",
        "validating",
        "/v1/chat/completions",
        {"run": "big"},
    )
    assert batch.id.startswith("batch_") and batch.expires_at == batch.created_at + 24 * 3600
    done = ended(c, batch.id, timeout=180)
    assert done.status == "completed", done
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (
        1000,
        1000,
        0,
    )
    assert done.error_file_id is None and done.errors is None
    assert done.model == "ok"
    # The fake answers each with usage 5 prompt + 3 completion tokens.
    assert (done.usage.input_tokens, done.usage.output_tokens, done.usage.total_tokens) == (5000, 3000, 8000)
    assert done.in_progress_at and done.finalizing_at and done.completed_at
    assert done.created_at <= done.in_progress_at <= done.finalizing_at <= done.completed_at

    output = c.files.retrieve(done.output_file_id)
    assert (output.purpose, output.filename) == ("batch_output", f"{batch.id}_output.jsonl")
    lines = file_lines(c, done.output_file_id)
    assert [line["custom_id"] for line in lines] == ids  # each once, in input order
    assert len({line["id"] for line in lines}) == 1000
    first = lines[0]
    assert first["error"] is None and first["response"]["status_code"] == 200
    assert first["response"]["request_id"]
    body = first["response"]["body"]
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"] == ANSWER
    assert all(line["response"]["body"]["choices"][0]["message"]["content"] == ANSWER for line in lines)
    assert marks(fake) == dict.fromkeys(ids, 1)

    # The batch is a job of the job system, listed with the others.
    jobs = httpx.get(f"{server.url}/v1/jobs", params={"kind": "batches.run"}).json()["data"]
    assert [(j["status"], j["progress"]) for j in jobs] == [("completed", {"done": 1000, "total": 1000})]


def test_batch_lines_are_stored_chat_completions_only_when_they_ask(
    start_lamina: Callable[..., ServerProcess], fake: ServerProcess, tmp_path: Path
) -> None:
    """The output file holds a batch's answers; storing every line too (Lamina stores a client's chat
    completions by default) would fill the inference store with a big batch. As in OpenAI's API, a line
    is stored when its body says ``"store": true``."""
    server = start_lamina(run_config(fake, tmp_path / "state"))
    c = client(server)
    kept = chat_line("kept")
    kept["body"]["store"] = True
    file_id = upload(c, [chat_line("plain-1"), kept, chat_line("plain-2")])
    batch = c.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
    assert ended(c, batch.id).status == "completed"
    [only] = until(lambda: c.chat.completions.list().data, "the stored completion")
    stored = httpx.get(f"{server.url}/v1/openai/v1/chat/completions/{only.id}").json()
    assert [m["content"] for m in stored["input_messages"]] == ["hi [[mark:kept]]"]


def test_completions_embeddings_and_responses_batches_and_the_list(
    start_lamina: Callable[..., ServerProcess], fake: ServerProcess, tmp_path: Path
) -> None:
    server = start_lamina(run_config(fake, tmp_path / "state"))
    c = client(server)
    prompts = [
        {
            "custom_id": f"c{i}",
            "method": "POST",
            "url": "/v1/completions",
            "body": {"model": "ok", "prompt": f"p{i}"},
        }
        for i in range(3)
    ]
    completions = c.batches.create(
        input_file_id=upload(c, prompts), endpoint="/v1/completions", completion_window="24h"
    )
    embeds = [
        {
            "custom_id": f"e{i}",
            "method": "POST",
            "url": "/v1/openai/v1/embeddings",
            "body": {"model": "embed", "input": "x" * i},
        }
        for i in range(1, 3)
    ]
    # The endpoint in its /v1/openai/v1 spelling, the lines in the other one: the same endpoint.
    embeddings = c.batches.create(
        input_file_id=upload(c, embeds), endpoint="/v1/openai/v1/embeddings", completion_window="24h"
    )
    done = ended(c, completions.id)
    assert done.status == "completed"
    texts = [line["response"]["body"]["choices"][0]["text"] for line in file_lines(c, done.output_file_id)]
    assert texts == [ANSWER] * 3
    done = ended(c, embeddings.id)
    vectors = [
        line["response"]["body"]["data"][0]["embedding"] for line in file_lines(c, done.output_file_id)
    ]
    assert vectors == [[0.1, 0.2, 0.3, 1.0], [0.1, 0.2, 0.3, 2.0]]

    # Responses need an agents provider, which this server lacks: each line says so, the batch completes.
    asks = [
        {"custom_id": "q", "method": "POST", "url": "/v1/responses", "body": {"model": "ok", "input": "hi"}}
    ]
    responses = c.batches.create(
        input_file_id=upload(c, asks), endpoint="/v1/responses", completion_window="24h"
    )
    done = ended(c, responses.id)
    assert (done.status, done.request_counts.failed, done.output_file_id) == ("completed", 1, None)
    [error] = file_lines(c, done.error_file_id)
    assert error["response"]["status_code"] == 400
    assert "add one under providers.agents" in error["response"]["body"]["error"]["message"]

    # The list: newest first (created in the same second too), a page at a time, as the SDK pages it.
    page = c.batches.list(limit=1)
    assert [b.id for b in page.data] == [responses.id] and page.has_more
    assert [b.id for b in c.batches.list(limit=1, after=responses.id).data] == [embeddings.id]
    assert [b.id for b in c.batches.list(limit=1)] == [
        responses.id,
        embeddings.id,
        completions.id,
    ]  # every page
    listed = httpx.get(f"{server.url}/v1/openai/v1/batches", params={"limit": 5}).json()
    assert (listed["first_id"], listed["last_id"], listed["has_more"]) == (
        responses.id,
        completions.id,
        False,
    )
    with pytest.raises(openai.NotFoundError, match="batch_nope"):
        c.batches.retrieve("batch_nope")


def test_bad_requests_name_the_field(
    start_lamina: Callable[..., ServerProcess], fake: ServerProcess, tmp_path: Path
) -> None:
    server = start_lamina(run_config(fake, tmp_path / "state"))
    c = client(server)
    good = upload(c, [chat_line("a")])
    cases = [
        ({"completion_window": "1h"}, "completion_window", "the only one is '24h'"),
        ({"endpoint": "/v1/moderations"}, "endpoint", "/v1/chat/completions"),
        ({"input_file_id": "file-nope"}, "input_file_id", "there is no file 'file-nope'"),
        (
            {"input_file_id": upload(c, [chat_line("a")], purpose="assistants")},
            "input_file_id",
            "purpose 'batch'",
        ),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "at most 16"),
    ]
    for over, field, text in cases:
        params = {
            "input_file_id": good,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        } | over
        with pytest.raises(openai.BadRequestError) as info:
            c.batches.create(**params)
        assert info.value.status_code == 400
        assert info.value.body["param"] == field, info.value.body
        assert text in info.value.body["message"]
    # A client cannot upload a file as the server's output.
    response = httpx.post(
        f"{server.url}/v1/files", data={"purpose": "batch_output"}, files={"file": ("x.jsonl", b"{}\n")}
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "purpose"
    assert c.batches.list().data == []


def test_a_file_with_bad_lines_fails_validation_naming_each_line(
    start_lamina: Callable[..., ServerProcess], fake: ServerProcess, tmp_path: Path
) -> None:
    server = start_lamina(run_config(fake, tmp_path / "state"))
    c = client(server)
    lines: list[Any] = [
        chat_line("a"),
        "{not json",
        chat_line("b", url="/v1/embeddings"),
        chat_line("a"),
        {"custom_id": "c", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": []}},
        "",
        chat_line("d", method="GET"),
        chat_line("e") | {"body": {"model": "ok", "messages": [], "stream": True}},
        {"method": "POST", "url": "/v1/chat/completions", "body": {"model": "ok"}},
    ]
    batch = c.batches.create(
        input_file_id=upload(c, lines), endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = ended(c, batch.id)
    assert done.status == "failed" and done.failed_at
    found = [(e.line, e.code, e.param) for e in done.errors.data]
    assert found == [
        (2, "invalid_json_line", None),
        (3, "invalid_url", "url"),
        (4, "duplicate_custom_id", "custom_id"),
        (5, "missing_required_parameter", "body.model"),
        (7, "invalid_request", "method"),
        (8, "streaming_unsupported", "body.stream"),
        (9, "missing_required_parameter", "custom_id"),
    ]
    assert "custom_id 'a' is also the custom_id of line 1" in done.errors.data[2].message
    assert done.output_file_id is None and done.error_file_id is None
    assert marks(fake) == {}  # nothing was sent


def test_a_line_with_an_unknown_model_goes_to_the_error_file(
    start_lamina: Callable[..., ServerProcess], fake: ServerProcess, tmp_path: Path
) -> None:
    server = start_lamina(run_config(fake, tmp_path / "state"))
    c = client(server)
    lines = [chat_line("a"), chat_line("b", model="no-such-model"), chat_line("c")]
    batch = c.batches.create(
        input_file_id=upload(c, lines), endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = ended(c, batch.id)
    assert done.status == "completed"
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
    assert done.model is None and done.usage.input_tokens == 10  # two models named; two answers' tokens
    assert [line["custom_id"] for line in file_lines(c, done.output_file_id)] == ["a", "c"]
    [error] = file_lines(c, done.error_file_id)
    assert error["custom_id"] == "b" and error["error"] is None
    assert error["response"]["status_code"] == 404
    assert "no-such-model" in error["response"]["body"]["error"]["message"]
    assert c.files.retrieve(done.error_file_id).purpose == "batch_output"


def test_the_lines_run_with_the_provider_data_the_batch_was_created_with(
    start_lamina: Callable[..., ServerProcess], fake: ServerProcess, tmp_path: Path
) -> None:
    """X-LlamaStack-Provider-Data (a caller's own upstream key) reaches every line's provider call, as it
    would the same request sent alone."""
    server = start_lamina(run_config(fake, tmp_path / "state"))
    c = client(server)
    header = {"X-LlamaStack-Provider-Data": json.dumps({"vllm_api_token": "caller-token"})}
    batch = c.batches.create(
        input_file_id=upload(c, [chat_line("a", model="echo")]),
        endpoint="/v1/chat/completions",
        completion_window="24h",
        extra_headers=header,
    )
    done = ended(c, batch.id)
    [line] = file_lines(c, done.output_file_id)
    echoed = json.loads(line["response"]["body"]["choices"][0]["message"]["content"])
    assert echoed["_authorization"] == "Bearer caller-token"
    # Kept only while the batch runs: the batch's record holds no key once it ended.
    with sqlite3.connect(tmp_path / "state" / "batches.db") as db:
        [(record,)] = db.execute("SELECT value FROM kvstore WHERE key LIKE 'batch:%'").fetchall()
    assert batch.id in record and "caller-token" not in record


def test_cancel_mid_way_keeps_the_finished_lines(
    start_lamina: Callable[..., ServerProcess], fake: ServerProcess, tmp_path: Path
) -> None:
    server = start_lamina(run_config(fake, tmp_path / "state", max_concurrent_requests_per_batch=2))
    c = client(server)
    gate(fake, False)
    lines = [chat_line(f"r{i}", model="ok" if i < 5 else "gated") for i in range(30)]
    batch = c.batches.create(
        input_file_id=upload(c, lines), endpoint="/v1/chat/completions", completion_window="24h"
    )
    # Five lines answered, two held at the gate: the batch is mid-way.
    until(lambda: gate(fake)["waiting"] == 2, "two lines held at the gate")
    running = c.batches.retrieve(batch.id)
    assert running.status == "in_progress"
    assert (running.request_counts.total, running.request_counts.completed) == (30, 5)
    cancelled = c.batches.cancel(batch.id)
    assert cancelled.status == "cancelled" and cancelled.cancelling_at and cancelled.cancelled_at
    gate(fake, True)
    assert [line["custom_id"] for line in file_lines(c, cancelled.output_file_id)] == [
        f"r{i}" for i in range(5)
    ]
    errors = file_lines(c, cancelled.error_file_id)
    assert [line["custom_id"] for line in errors] == [f"r{i}" for i in range(5, 30)]
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}
    assert (cancelled.request_counts.completed, cancelled.request_counts.failed) == (5, 0)
    with pytest.raises(openai.ConflictError, match="is cancelled already"):
        c.batches.cancel(batch.id)
    time.sleep(0.5)
    assert c.batches.retrieve(batch.id).status == "cancelled"
    assert (
        httpx.get(f"{server.url}/v1/jobs", params={"kind": "batches.run"}).json()["data"][0]["status"]
        == "cancelled"
    )


def test_a_batch_not_done_within_its_window_expires_with_partial_output(
    start_lamina: Callable[..., ServerProcess], fake: ServerProcess, tmp_path: Path
) -> None:
    server = start_lamina(run_config(fake, tmp_path / "state", completion_window_seconds=3))
    c = client(server)
    gate(fake, False)
    lines = [chat_line(f"r{i}", model="ok" if i < 3 else "gated") for i in range(6)]
    batch = c.batches.create(
        input_file_id=upload(c, lines), endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.expires_at == batch.created_at + 3
    done = ended(c, batch.id, timeout=30)
    gate(fake, True)
    assert done.status == "expired" and done.expired_at
    assert [line["custom_id"] for line in file_lines(c, done.output_file_id)] == ["r0", "r1", "r2"]
    errors = file_lines(c, done.error_file_id)
    assert [(e["custom_id"], e["error"]["code"], e["response"]) for e in errors] == [
        (f"r{i}", "batch_expired", None) for i in range(3, 6)
    ]


@pytest.mark.parametrize(
    ("stop", "stores"),
    [
        ("kill -9", "sqlite"),
        ("SIGTERM", "sqlite"),
        pytest.param("kill -9", "postgres", marks=pytest.mark.postgres),
    ],
)
def test_a_batch_stopped_mid_way_resumes_without_sending_finished_lines_again(
    stop: str,
    stores: str,
    start_lamina: Callable[..., ServerProcess],
    fake: ServerProcess,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    config = run_config(fake, tmp_path / "state", max_concurrent_requests_per_batch=4)
    if stores == "postgres":  # the batches kvstore and the jobs store on PostgreSQL, as replicas share them
        postgres: PostgresServer = request.getfixturevalue("postgres_server")
        suffix = uuid.uuid4().hex[:12]
        config["jobs"]["store"] = postgres.kvstore_config(table_name=f"jobs_{suffix}")
        config["providers"]["batches"][0]["config"]["kvstore"] = postgres.kvstore_config(
            table_name=f"batches_{suffix}"
        )
    server = start_lamina(config)
    c = client(server)
    gate(fake, False)
    ids = [f"r{i}" for i in range(40)]
    lines = [chat_line(custom_id, model="ok" if i < 10 else "gated") for i, custom_id in enumerate(ids)]
    batch = c.batches.create(
        input_file_id=upload(c, lines), endpoint="/v1/chat/completions", completion_window="24h"
    )
    until(lambda: gate(fake)["waiting"] == 4, "four lines held at the gate")
    assert c.batches.retrieve(batch.id).request_counts.completed == 10  # saved before they are counted
    if stop == "kill -9":
        server.kill()
        server.start()
    else:
        server.restart()  # a resumable job is handed back at shutdown: no lease to wait for
    gate(fake, True)  # the held requests' server is gone: their answers reach no one
    done = ended(c, batch.id, timeout=60)
    assert done.status == "completed"
    assert (done.request_counts.completed, done.request_counts.failed) == (40, 0)
    assert [line["custom_id"] for line in file_lines(c, done.output_file_id)] == ids
    assert marks(fake) == dict.fromkeys(ids, 1)  # every line answered exactly once
    [job] = httpx.get(f"{server.url}/v1/jobs", params={"kind": "batches.run"}).json()["data"]
    assert (job["status"], job["attempts"]) == ("completed", 2)
