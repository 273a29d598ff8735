"""Datasets and DatasetIO through a real ``lamina run`` (inline::localfs for datasetio and files),
driven by llama-stack-client 0.2.12: register from a data: URI, rows and a Files API file, paging,
append-rows, restart persistence, unregister, and the 4xx for bad input."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_stack_client import BadRequestError, LlamaStackClient, NotFoundError

from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

CSV = (
    "input_query,generated_answer,expected_answer\n"
    + "".join(f"question {i},answer {i},expected {i}\n" for i in range(12))
).encode()
QA_JSONL = b'{"question": "2+2?", "answer": "4"}\n{"question": "3+3?", "answer": "6"}'
ROWS = [{"messages": [{"role": "user", "content": f"hi {i}"}], "answer": f"a{i}"} for i in range(3)]


def run_config(state: Path) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "datasets-e2e",
        "providers": {
            "files": [
                {
                    "provider_id": "localfs-files",
                    "provider_type": "inline::localfs",
                    "config": {"storage_dir": str(state / "files")},
                }
            ],
            "datasetio": [
                {
                    "provider_id": "localfs",
                    "provider_type": "inline::localfs",
                    "config": {"kvstore": {"type": "sqlite", "db_path": str(state / "datasetio.db")}},
                }
            ],
        },
        "metadata_store": {"type": "sqlite", "db_path": str(state / "registry.db")},
        "datasets": [
            {
                "dataset_id": "from-config",
                "purpose": "eval/question-answer",
                "source": {"type": "rows", "rows": [{"question": "q", "answer": "a"}]},
            }
        ],
    }


@pytest.fixture
def server(start_lamina: Callable[..., ServerProcess], tmp_path: Path) -> ServerProcess:
    return start_lamina(run_config(tmp_path / "state"))


def client(server: ServerProcess) -> LlamaStackClient:
    return LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)


def data_uri(data: bytes, mimetype: str = "text/csv") -> str:
    return f"data:{mimetype};base64,{base64.b64encode(data).decode()}"


def append(c: LlamaStackClient, dataset_id: str, rows: list[dict[str, Any]]) -> None:
    # llama-stack-client 0.2.12 has no method for append-rows; its generic post sends the route.
    c.post(f"/v1/datasetio/append-rows/{dataset_id}", body={"rows": rows}, cast_to=httpx.Response)


def test_register_page_append_restart_unregister(server: ServerProcess) -> None:
    c = client(server)
    assert [d.identifier for d in c.datasets.list()] == ["from-config"]

    csv = c.datasets.register(purpose="eval/question-answer", source={"type": "uri", "uri": data_uri(CSV)})
    assert csv.identifier.startswith("dataset-") and csv.provider_id == "localfs"
    rows = c.datasets.register(
        purpose="eval/messages-answer", source={"type": "rows", "rows": ROWS}, dataset_id="chat"
    )
    assert rows.source.type == "rows"

    page = c.datasets.iterrows(csv.identifier, limit=5)
    assert [r["input_query"] for r in page.data] == [f"question {i}" for i in range(5)] and page.has_more
    page = c.datasets.iterrows(csv.identifier, start_index=10, limit=5)
    assert [r["expected_answer"] for r in page.data] == ["expected 10", "expected 11"] and not page.has_more
    assert len(c.datasets.iterrows(csv.identifier).data) == 12  # no limit: every row
    assert c.datasets.iterrows(csv.identifier, start_index=50, limit=5).data == []

    append(c, "chat", [{"messages": [{"role": "user", "content": "later"}], "answer": "x"}])
    append(c, csv.identifier, [{"input_query": "q12", "generated_answer": "g", "expected_answer": "e"}])
    server.restart()

    c = client(server)
    assert {d.identifier for d in c.datasets.list()} == {"from-config", "chat", csv.identifier}
    chat = c.datasets.iterrows("chat", start_index=2, limit=10)
    assert [r["answer"] for r in chat.data] == ["a2", "x"] and not chat.has_more
    tail = c.datasets.iterrows(csv.identifier, start_index=11, limit=1)
    assert tail.data[0]["expected_answer"] == "expected 11" and tail.has_more
    assert c.datasets.iterrows(csv.identifier, start_index=12).data[0]["input_query"] == "q12"
    assert c.datasets.retrieve("chat").purpose == "eval/messages-answer"

    c.datasets.unregister("chat")
    assert "chat" not in {d.identifier for d in c.datasets.list()}
    with pytest.raises(NotFoundError) as info:
        c.datasets.iterrows("chat")
    assert "chat" in str(info.value)


def test_a_files_api_file_is_a_source(server: ServerProcess, tmp_path: Path) -> None:
    c = client(server)
    uploaded = httpx.post(
        f"{server.url}/v1/openai/v1/files",
        data={"purpose": "assistants"},
        files={"file": ("qa.jsonl", QA_JSONL)},
        timeout=60,
    )
    assert uploaded.status_code == 200, uploaded.text
    file_id = uploaded.json()["id"]
    dataset = c.datasets.register(
        purpose="eval/question-answer", source={"type": "uri", "uri": f"files://{file_id}"}, dataset_id="qa"
    )
    page = c.datasets.iterrows(dataset.identifier, start_index=1, limit=1)
    assert page.data == [{"question": "3+3?", "answer": "6"}] and not page.has_more

    with pytest.raises(BadRequestError) as info:
        c.datasets.register(
            purpose="eval/question-answer", source={"type": "uri", "uri": "files://file-nope"}
        )
    assert "file-nope" in str(info.value) and "POST /v1/files" in str(info.value)


def _qa(uri: str) -> dict[str, Any]:
    return {"purpose": "eval/question-answer", "source": {"type": "uri", "uri": uri}}


@pytest.mark.parametrize(
    "body, words",
    [
        ({"purpose": "eval/everything", "source": {"type": "rows", "rows": []}}, ["purpose"]),
        ({"purpose": "eval/question-answer", "source": {"type": "table"}}, ["source"]),
        (_qa("https://x.test/a.csv"), ["source.uri", "https://", "POST /v1/files"]),
        (_qa("/no/such/file.csv"), ["source.uri", "does not exist"]),
        (_qa("data:image/png;base64,AA=="), ["source.uri", "image/png"]),
    ],
)
def test_bad_registrations_are_400s_naming_the_field(server: ServerProcess, body, words) -> None:
    response = httpx.post(f"{server.url}/v1/datasets", json=body, timeout=30)
    assert response.status_code == 400, response.text
    text = response.text
    for word in words:
        assert word in text


def test_bad_paging_and_unknown_ids(server: ServerProcess) -> None:
    for query in ("start_index=-1", "limit=-2", "limit=abc"):
        response = httpx.get(f"{server.url}/v1/datasetio/iterrows/from-config?{query}", timeout=30)
        assert response.status_code == 400, (query, response.text)
        assert query.split("=")[0] in response.text
    missing = httpx.get(f"{server.url}/v1/datasets/nope", timeout=30)
    assert missing.status_code == 404 and "nope" in missing.text and "from-config" in missing.text
    appended = httpx.post(f"{server.url}/v1/datasetio/append-rows/nope", json={"rows": [{}]}, timeout=30)
    assert appended.status_code == 404


def test_huggingface_and_localfs_side_by_side(
    start_lamina: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Llama Stack's provider choice by source (huggingface:// to remote::huggingface, the rest to
    inline::localfs), a local CSV through the datasets library, and a hub dataset failing at once
    (the hub is a closed loopback port: nothing leaves the machine)."""
    from lamina.testing.processes import free_port

    state = tmp_path / "state"
    config = run_config(state)
    config["providers"]["datasetio"].append(
        {"provider_id": "huggingface", "provider_type": "remote::huggingface", "config": {}}
    )
    server = start_lamina(config, env={"HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"})
    c = client(server)
    csv_path = tmp_path / "qa.csv"
    csv_path.write_bytes(CSV)
    hf = c.datasets.register(
        purpose="eval/question-answer",
        source={"type": "uri", "uri": f"huggingface://csv?data_files={csv_path}&split=train"},
    )
    assert hf.provider_id == "huggingface"
    page = c.datasets.iterrows(hf.identifier, start_index=11, limit=5)
    assert [r["input_query"] for r in page.data] == ["question 11"] and not page.has_more
    local = c.datasets.register(purpose="eval/question-answer", source={"type": "uri", "uri": str(csv_path)})
    assert local.provider_id == "localfs"

    hub = c.datasets.register(
        purpose="eval/messages-answer",
        source={"type": "uri", "uri": "huggingface://datasets/llamastack/simpleqa?split=train"},
    )
    started = time.monotonic()
    response = httpx.get(f"{server.url}/v1/datasetio/iterrows/{hub.identifier}?limit=10", timeout=60)
    assert time.monotonic() - started < 15  # the library alone waits ~24 s
    assert response.status_code == 502, response.text
    assert "llamastack/simpleqa" in response.text and "unreachable" in response.text


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def test_paging_through_a_large_csv_keeps_memory_flat(server: ServerProcess, tmp_path: Path) -> None:
    """A 600,000-row (about 30 MB) CSV read to the end, 10,000 rows a page: the server's peak resident
    set grows by far less than the file once warm (held whole as Python rows it would take several
    hundred MB). The 1 GB measurement is `hatch run bench datasets` (docs/benchmarks.md)."""
    path = tmp_path / "large.csv"
    with open(path, "w") as f:
        f.write("id,input_query,expected_answer\n")
        for base in range(0, 600_000, 50_000):
            rows = range(base, base + 50_000)
            f.write("".join(f'{i},"What is {i} plus {i}, exactly?",{2 * i}\n' for i in rows))
    c = client(server)
    source = {"type": "uri", "uri": str(path)}
    c.datasets.register(purpose="eval/question-answer", source=source, dataset_id="big")
    # Warm up: the row index (one scan), and a few pages through every worker thread's allocator.
    for start in (590_000, 0, 300_000, 10_000, 20_000, 30_000):
        c.datasets.iterrows("big", start_index=start, limit=10_000)
    before = _vm_hwm(server.pid)
    start, seen = 0, 0
    while True:
        page = c.datasets.iterrows("big", start_index=start, limit=10_000)
        seen += len(page.data)
        start += len(page.data)
        if not page.has_more:
            break
    assert seen == 600_000 and page.data[-1]["id"] == 599_999
    grown = _vm_hwm(server.pid) - before
    assert grown < 40 * 1024 * 1024, f"peak RSS grew by {grown / 2**20:.0f} MiB"
