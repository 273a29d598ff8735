"""Llama Stack's telemetry API through llama-stack-client 0.2.12 against a real ``lamina run``.

The server runs the inline::meta-reference telemetry provider (sqlite trace store in a file of the
test's), inline::localfs for datasetio, and remote::vllm in front of the fake OpenAI upstream
(``fake_upstream``: every completion reports 5 prompt and 3 completion tokens).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import llama_stack_client
import pytest
from llama_stack_client import LlamaStackClient

from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e


def run_config(state: Path, fake: ServerProcess) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "telemetry-e2e",
        "providers": {
            "inference": [
                {
                    "provider_id": "fake",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{fake.url}/v1", "timeout": 10.0},
                }
            ],
            "datasetio": [
                {
                    "provider_id": "localfs",
                    "provider_type": "inline::localfs",
                    "config": {"kvstore": {"type": "sqlite", "db_path": str(state / "datasetio.db")}},
                }
            ],
            "telemetry": [
                {
                    "provider_id": "meta-reference",
                    "provider_type": "inline::meta-reference",
                    "config": {
                        "sinks": "sqlite",
                        "sqlite_db_path": str(state / "trace_store.db"),
                        "capture_content": True,
                    },
                }
            ],
        },
        "metadata_store": {"type": "sqlite", "db_path": str(state / "registry.db")},
        "models": [{"model_id": "fake-ok", "provider_id": "fake", "provider_model_id": "ok"}],
        "datasets": [
            {
                "dataset_id": "spans",
                "purpose": "eval/question-answer",
                "source": {"type": "rows", "rows": []},
            }
        ],
    }


@pytest.fixture
def server(
    start_lamina: Callable[..., ServerProcess], fake_upstream: ServerProcess, tmp_path: Path
) -> ServerProcess:
    return start_lamina(run_config(tmp_path / "state", fake_upstream))


def client(server: ServerProcess) -> LlamaStackClient:
    return LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)


def _now() -> datetime:
    return datetime.now(UTC)


def _event(trace_id: str, span_id: str, **fields: Any) -> dict[str, Any]:
    return {"trace_id": trace_id, "span_id": span_id, "timestamp": _now(), **fields}


def _log_a_client_trace(c: LlamaStackClient, session: str) -> tuple[str, str, str]:
    """A trace the client records itself: a root span, a child with a log line, both ended."""
    trace_id, root, child = uuid.uuid4().hex, uuid.uuid4().hex[:16], uuid.uuid4().hex[:16]
    ttl = 3600
    start = {"type": "span_start", "name": "client-turn"}
    c.telemetry.log_event(
        event=_event(
            trace_id, root, type="structured_log", payload=start, attributes={"session_id": session}
        ),
        ttl_seconds=ttl,
    )
    child_start = {"type": "span_start", "name": "client-step", "parent_span_id": root}
    c.telemetry.log_event(
        event=_event(trace_id, child, type="structured_log", payload=child_start, attributes={"step": "one"}),
        ttl_seconds=ttl,
    )
    log_line = {"type": "unstructured_log", "message": "thinking", "severity": "info"}
    c.telemetry.log_event(event=_event(trace_id, child, **log_line), ttl_seconds=ttl)
    end = {"type": "span_end", "status": "ok"}
    c.telemetry.log_event(
        event=_event(trace_id, child, type="structured_log", payload=end, attributes={"output": "done"}),
        ttl_seconds=ttl,
    )
    root_end = {"type": "span_end", "status": "error"}
    c.telemetry.log_event(
        event=_event(trace_id, root, type="structured_log", payload=root_end), ttl_seconds=ttl
    )
    return trace_id, root, child


def test_logged_spans_are_queried_exported_and_kept_across_a_restart(server: ServerProcess) -> None:
    c = client(server)
    session = f"session-{uuid.uuid4().hex[:8]}"
    trace_id, root, child = _log_a_client_trace(c, session)

    traces = c.telemetry.query_traces(attribute_filters=[{"key": "session_id", "op": "eq", "value": session}])
    assert [(t.trace_id, t.root_span_id) for t in traces] == [(trace_id, root)]
    assert traces[0].end_time is not None
    assert (
        c.telemetry.query_traces(attribute_filters=[{"key": "session_id", "op": "ne", "value": session}])
        == []
    )

    got = c.telemetry.get_trace(trace_id)
    assert got.root_span_id == root
    span = c.telemetry.get_span(child, trace_id=trace_id)
    assert span.parent_span_id == root and span.name == "client-step"
    assert span.attributes == {"step": "one", "output": "done"}

    tree = c.telemetry.get_span_tree(root)
    assert set(tree) == {root, child}
    assert tree[root].status == "error" and tree[child].status == "ok"
    shallow = c.telemetry.get_span_tree(root, max_depth=1, attributes_to_return=["session_id"])
    assert list(shallow) == [root] and shallow[root].attributes == {"session_id": session}

    spans = c.telemetry.query_spans(
        attribute_filters=[{"key": "session_id", "op": "eq", "value": session}],
        attributes_to_return=["output"],
    )
    assert [(s.span_id, s.attributes) for s in spans] == [(child, {"output": "done"})]

    c.telemetry.save_spans_to_dataset(
        attribute_filters=[{"key": "session_id", "op": "eq", "value": session}],
        attributes_to_save=["step", "output"],
        dataset_id="spans",
    )
    rows = c.datasets.iterrows("spans").data
    assert [(r["span_id"], r["name"], r["step"], r["output"], r["trace_id"]) for r in rows] == [
        (child, "client-step", "one", "done", trace_id)
    ]

    # Unknown ids are 404s naming them; bad fields 400s naming the field.
    with pytest.raises(llama_stack_client.NotFoundError, match="trace 'feedbeef'"):
        c.telemetry.get_trace("feedbeef")
    with pytest.raises(llama_stack_client.NotFoundError, match="span 'feedbeef'"):
        c.telemetry.get_span("feedbeef", trace_id=trace_id)
    with pytest.raises(llama_stack_client.NotFoundError, match="span 'feedbeef'"):
        c.telemetry.get_span_tree("feedbeef")
    with pytest.raises(llama_stack_client.BadRequestError, match="order_by: 'size' is not a trace field"):
        c.telemetry.query_traces(order_by=["size"])
    with pytest.raises(llama_stack_client.BadRequestError, match=r"dataset_id: .*no-such"):
        c.telemetry.save_spans_to_dataset(
            attribute_filters=[], attributes_to_save=["x"], dataset_id="no-such"
        )
    with pytest.raises(llama_stack_client.NotFoundError, match="no open span"):
        end = {"type": "span_end", "status": "ok"}
        c.telemetry.log_event(
            event=_event(trace_id, child, type="structured_log", payload=end), ttl_seconds=60
        )

    server.restart()
    c = client(server)
    assert c.telemetry.get_trace(trace_id).root_span_id == root
    assert set(c.telemetry.get_span_tree(root)) == {root, child}


def query_metrics(server: ServerProcess, name: str, **body: Any) -> httpx.Response:
    # llama-stack-client 0.2.12 has no method for POST /v1/telemetry/metrics/{metric_name}.
    return httpx.post(f"{server.url}/v1/telemetry/metrics/{name}", json=body, timeout=30)


def test_logged_metric_events_answer_query_metrics(server: ServerProcess) -> None:
    c = client(server)
    start = int(time.time()) - 1
    for value, model in ((3, "m1"), (4, "m1"), (10, "m2")):
        c.telemetry.log_event(
            event=_event(
                uuid.uuid4().hex,
                uuid.uuid4().hex[:16],
                type="metric",
                metric="my_tokens",
                value=value,
                unit="tokens",
                attributes={"model_id": model},
            ),
            ttl_seconds=3600,
        )
    resp = query_metrics(server, "my_tokens", start_time=start, granularity="1h")
    assert resp.status_code == 200, resp.text
    by_model = {s["labels"][0]["value"]: s["values"] for s in resp.json()["data"]}
    assert sum(v["value"] for v in by_model["m1"]) == 7 and sum(v["value"] for v in by_model["m2"]) == 10
    only = query_metrics(
        server,
        "my_tokens",
        start_time=start,
        query_type="instant",
        label_matchers=[{"name": "model_id", "value": "m2", "operator": "="}],
    ).json()["data"]
    assert [[v["value"] for v in s["values"]] for s in only] == [[10.0]]

    bad = query_metrics(server, "my_tokens", start_time=start, granularity="1 fortnight")
    assert bad.status_code == 400 and "granularity" in bad.json()["detail"]


def test_a_chat_completions_trace_spans_and_token_metrics(server: ServerProcess) -> None:
    c = client(server)
    start = int(time.time()) - 1
    for _ in range(2):
        c.inference.chat_completion(
            model_id="fake-ok",
            messages=[{"role": "user", "content": "hello"}],
            sampling_params={"max_tokens": 8},
        )
    model = [{"key": "gen_ai.request.model", "op": "eq", "value": "fake-ok"}]
    deadline = time.monotonic() + 20  # the server span ends just after the answer is written
    while (
        len(traces := c.telemetry.query_traces(attribute_filters=model)) < 2 and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert len(traces) == 2
    spans = c.telemetry.query_spans(
        attribute_filters=model, attributes_to_return=["gen_ai.usage.input_tokens"]
    )
    # Each trace's inference span (and any other span the tracing puts the usage on) reports 5.
    assert {s.trace_id for s in spans} == {t.trace_id for t in traces}
    assert {s.attributes["gen_ai.usage.input_tokens"] for s in spans} == {5}
    tree = c.telemetry.get_span_tree(traces[0].root_span_id)
    assert traces[0].root_span_id in tree and len(tree) >= 2
    # The telemetry API's own requests (the queries above) are not in the store.
    for listed in c.telemetry.query_traces():
        root = c.telemetry.get_span(listed.root_span_id, trace_id=listed.trace_id)
        assert not str(root.attributes.get("url.path", "")).startswith("/v1/telemetry/"), root

    resp = query_metrics(
        server,
        "prompt_tokens",
        start_time=start,
        query_type="instant",
        label_matchers=[{"name": "model_id", "value": "fake-ok"}],
    )
    assert resp.status_code == 200, resp.text
    [series] = resp.json()["data"]
    assert {lab["name"]: lab["value"] for lab in series["labels"]} == {
        "model_id": "fake-ok",
        "provider_id": "fake",
    }
    assert series["values"][0]["value"] == 10.0
