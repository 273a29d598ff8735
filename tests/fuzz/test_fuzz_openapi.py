"""Schemathesis over every operation of /openapi.json, against a real ``lamina run`` (conftest.stack).

Schemathesis's own engine (what ``st run`` drives) runs the examples, coverage and fuzzing phases
with a fixed seed and a few examples per operation: no 5xx, every response matching its declared
status, content type and schema, and the server healthy afterwards. A ``before_call`` hook points
generated ids at what exists (the fake upstream's ``ok`` and the bundled SmolLM2, an uploaded file,
a vector store, a vector DB, the pii shield, the RAG tool) in part of the cases, so that fuzzed
requests reach the providers, and keeps ``max_tokens``, ``n`` and batches small: SmolLM2 decodes
slowly on two cores. DELETE operations run last, so the resources live through the other calls.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import engine
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER

from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

SEED = 20261206
MAX_EXAMPLES = 8
MAX_TOKENS = 4
MODELS = [None, "ok", "SmolLM2-135M-Instruct"]  # None: keep the generated (unknown) id
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
]


def _config(url: str) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "base-url": url,
            "workers": 2,
            "request-timeout": 120,
            "continue-on-failure": True,
            # Hypothesis's own health check on how many drawn inputs the schema filters out: a limit
            # of the generator on deeply nested unions (batch-chat-completion), not a server check.
            "suppress-health-check": ["filter_too_much"],
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )


# Ids of resources that exist (filled in by the test), swapped into about half of the generated
# cases so that fuzzed requests reach providers instead of stopping at a 404.
KNOWN: dict[str, Any] = {}


def _create_known(url: str) -> dict[str, Any]:
    files = {"file": ("fuzz.txt", b"Lamina fuzzes its own API.", "text/plain")}
    upload = httpx.post(f"{url}/v1/openai/v1/files", data={"purpose": "assistants"}, files=files)
    file_id = upload.json()["id"]
    store_body = {"name": "fuzz", "file_ids": [file_id]}
    store = httpx.post(f"{url}/v1/openai/v1/vector_stores", json=store_body, timeout=60)
    db = {"vector_db_id": "fuzz-db", "embedding_model": "all-MiniLM-L6-v2"}
    assert httpx.post(f"{url}/v1/vector-dbs", json=db, timeout=60).status_code == 200
    return {
        "file_id": file_id,
        "vector_store_id": store.json()["id"],
        "vector_db_id": "fuzz-db",
        "vector_db_ids": ["fuzz-db"],
        "shield_id": "pii",
        "identifier": "pii",
        "toolgroup_id": "builtin::rag",
        "tool_group_id": "builtin::rag",
        "tool_name": "knowledge_search",
    }


def _steer(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Known ids and real models (by a hash of the case: the same case picks the same); small outputs."""
    digest = zlib.crc32(repr((case.path_parameters, case.query, case.body)).encode())
    for values in (case.path_parameters, case.query, case.body):
        if not isinstance(values, dict):
            continue
        for field in ("model", "model_id"):
            pick = MODELS[digest % len(MODELS)]
            if pick is not None and isinstance(values.get(field), str):
                values[field] = pick
        for field, known in KNOWN.items():
            if field in values and digest % 2:
                values[field] = known
    body = case.body
    if not isinstance(body, dict):
        return
    for field in ("max_tokens", "max_completion_tokens"):
        if isinstance(body.get(field), int) and body[field] > MAX_TOKENS:
            body[field] = MAX_TOKENS
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
        del prompt[2:]  # each prompt of a list of prompts is one more completion
    params = body.get("sampling_params")
    if isinstance(params, dict) and isinstance(params.get("max_tokens"), int):
        params["max_tokens"] = min(params["max_tokens"], MAX_TOKENS)
    if isinstance(body.get("n"), int | float) and body["n"] > 2:
        body["n"] = 2  # n answers cost n decodes
    for field in ("content_batch", "messages_batch"):
        if isinstance(body.get(field), list):
            del body[field][2:]


def _describe(recorder: Any, case_id: str, failure: Any) -> str:
    case = recorder.cases[case_id].value
    body = json.dumps(case.body, default=repr)[:300] if case.body is not None else ""
    return f"{case.method.upper()} {case.formatted_path} query={case.query} body={body}: {failure.title}"


def _python_ast_bug(exc: BaseException) -> bool:
    """CPython 3.11's ``ast.parse`` failing deep in a stack ("AST constructor recursion depth mismatch"),
    reached when Hypothesis describes a lambda of a deeply nested strategy while *generating* a case
    (the chat schemas): no request was sent. Such an operation is still tested by the other phases."""
    if isinstance(exc, SystemError) and "AST constructor recursion depth mismatch" in str(exc):
        return True
    nested = [*getattr(exc, "exceptions", ()), exc.__cause__, exc.__context__]
    return any(e is not None and e is not exc and _python_ast_bug(e) for e in nested)


def run_fuzz(schema: Any) -> tuple[set[str], list[str]]:
    """Run every phase of ``schema`` (deletes last: the registered models and shields must outlive the
    calls that use them), with ``_steer`` on every case; the operations tested and the problems found."""
    tested: set[str] = set()
    problems: list[str] = []
    schemathesis.hook("before_call")(_steer)  # global only; unregistered below
    try:
        stream = [
            *engine.from_schema(schema.exclude(method="DELETE")).execute(),
            *engine.from_schema(schema.include(method="DELETE")).execute(),
        ]
    finally:
        GLOBAL_HOOK_DISPATCHER.unregister(_steer)
    for event in stream:
        if isinstance(event, events.ScenarioFinished) and event.label:
            if event.status is not Status.SKIP:
                tested.add(event.label)
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.status is Status.FAILURE and check.failure_info is not None:
                        problems.append(_describe(event.recorder, case_id, check.failure_info.failure))
        elif isinstance(event, events.NonFatalError) and not _python_ast_bug(event.value):
            problems.append(f"{event.label} ({event.phase}): {type(event.value).__name__}: {event.value}")
        elif isinstance(event, events.FatalError):
            raise event.exception
    return tested, problems


def test_every_operation_survives_fuzzing(stack: ServerProcess) -> None:
    KNOWN.update(_create_known(stack.url))
    schema = schemathesis.openapi.from_url(f"{stack.url}/openapi.json", config=_config(stack.url))
    operations = {op.ok().label for op in schema.get_all_operations()}
    tested, problems = run_fuzz(schema)
    assert not problems, "\n".join(problems)
    assert len(operations) >= 80
    assert sorted(operations - tested) == []
    assert httpx.get(f"{stack.url}/v1/health", timeout=10).json() == {"status": "OK", "providers_down": []}
