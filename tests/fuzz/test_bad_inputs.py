"""Inputs that once crashed a handler (500): each is now a 400 naming the field, and the server serves on.

Found by fuzzing /openapi.json (issue 10); each runs against a real ``lamina run`` (conftest.stack).
"""

from __future__ import annotations

import httpx
import pytest

from lamina.testing.processes import ServerProcess

SMOLLM = "SmolLM2-135M-Instruct"  # registered by the llama-cpp plugin

pytestmark = pytest.mark.e2e


def _post(server: ServerProcess, path: str, body: object, **kwargs) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=120, **kwargs)


def _assert_400(resp: httpx.Response, field: str, *words: str) -> str:
    assert resp.status_code == 400, resp.text
    detail = resp.json()["detail"]
    assert field in detail, detail
    for word in words:
        assert word in detail, detail
    assert "pydantic" not in detail and "errors.pydantic.dev" not in detail, detail
    return detail


@pytest.mark.parametrize("path", ["/v1/openai/v1/vector_stores", "/v1/vector_stores"])
def test_empty_embedding_model_is_a_400(stack: ServerProcess, path: str) -> None:
    resp = _post(stack, path, {"embedding_model": ""})
    _assert_400(resp, "embedding_model")
    assert resp.json()["error"]["param"] == "embedding_model"


def test_an_empty_file_id_for_a_new_vector_store_is_a_400(stack: ServerProcess) -> None:
    """It used to create the store and fail the file in the background, with pydantic's text as last_error."""
    _assert_400(_post(stack, "/v1/openai/v1/vector_stores", {"file_ids": [""]}), "file_ids[0]")


def test_empty_vector_db_id_in_rag_query_is_a_400(stack: ServerProcess) -> None:
    resp = _post(stack, "/v1/tool-runtime/rag-tool/query", {"content": "hi", "vector_db_ids": [""]})
    _assert_400(resp, "vector_db_ids[0]")


def test_multipart_part_name_with_a_control_character_is_a_400(stack: ServerProcess) -> None:
    boundary = "fuzzboundary"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="purpose"\r\n\r\n'
        "assistants\r\n"
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="fi\x01le"; filename="a.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
        "hello\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    resp = httpx.post(
        f"{stack.url}/v1/openai/v1/files",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=30,
    )
    _assert_400(resp, "multipart")


@pytest.mark.parametrize("top_k", [6, 20])
def test_logprobs_top_k_over_the_provider_limit_is_a_400_naming_the_maximum(
    stack: ServerProcess, top_k: int
) -> None:
    params = {"max_tokens": 2}
    one = {"model_id": SMOLLM, "content": "Hi", "sampling_params": params, "logprobs": {"top_k": top_k}}
    _assert_400(_post(stack, "/v1/inference/completion", one), "logprobs.top_k", "5")
    batch = {k: v for k, v in one.items() if k != "content"} | {"content_batch": ["Hi", "Yo"]}
    _assert_400(_post(stack, "/v1/inference/batch-completion", batch), "logprobs.top_k", "5")


def test_logprobs_top_k_within_the_limit_still_answers(stack: ServerProcess) -> None:
    body = {
        "model_id": SMOLLM,
        "content": "Hi",
        "sampling_params": {"max_tokens": 2},
        "logprobs": {"top_k": 5},
    }
    resp = _post(stack, "/v1/inference/completion", body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["logprobs"], resp.text


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deeply_nested_json_is_a_400(stack: ServerProcess, depth: int) -> None:
    raw = '{"model_id": "ok", "messages": ' + "[" * depth + "]" * depth + "}"
    resp = httpx.post(
        f"{stack.url}/v1/inference/chat-completion",
        content=raw.encode(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    _assert_400(resp, "nested", "deep")
    assert httpx.get(f"{stack.url}/v1/health", timeout=10).json() == {"status": "OK", "providers_down": []}


def test_an_explicit_null_max_tokens_gets_the_providers_default(stack: ServerProcess) -> None:
    """``"max_tokens": null`` is unset: llama-cpp's default_max_tokens (8 here) applies, not the context."""
    body = {
        "model": SMOLLM,
        "messages": [{"role": "user", "content": "Count from one to one hundred."}],
        "max_tokens": None,
        "max_completion_tokens": None,
        "temperature": 0,
    }
    resp = _post(stack, "/v1/openai/v1/chat/completions", body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"]["completion_tokens"] <= 8, resp.text
