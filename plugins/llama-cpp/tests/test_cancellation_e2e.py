"""A failed, cancelled or abandoned request stops all of its work (issue 10, items 3 and 4).

Through a real ``lamina run`` serving the bundled SmolLM2 on inline::llama-cpp, with one llama.cpp
slot: if a generation outlived its request, the next request would wait behind it for minutes
(3000 tokens on 2 cores), so "the next request is answered promptly" proves the work stopped.
The provider's health (GET /v1/providers/llama-cpp) reports ``inflight``: admitted generations
whose llama.cpp thread has not returned yet.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from lamina.testing.processes import ServerProcess, lamina_server

pytestmark = pytest.mark.e2e

MODEL = "SmolLM2-135M-Instruct"
# Prompts whose greedy answer is thousands of tokens (checked: a chat asked to "count from 1 to
# 5000" stops at 20; this one counts on with commas, as does a completion of "1, 2, 3,").
LONG = "Write the numbers from 1 to 1000, one per line, with no other text."
COUNTING = "Count from 1 to 5000, separating the numbers with commas.\n1, 2, 3,"
LONG_TOKENS = 3000  # minutes of generation on this machine: it must never run to the end
PROMPT_WAIT = 20.0  # "promptly": a 4-token answer on a free slot takes a second or two


def _config(**provider_config: Any) -> dict:
    return {
        "version": 2,
        "image_name": "llama-cpp-cancel",
        "server": {"shutdown_timeout": 1},
        "providers": {
            "inference": [
                {"provider_id": "llama-cpp", "provider_type": "inline::llama-cpp", "config": provider_config}
            ]
        },
    }


def _start(tmp: Any) -> ServerProcess:
    srv = lamina_server(_config(parallel=1, max_queue=1, max_n=4), tmp).start()
    small = httpx.post(f"{srv.url}/v1/openai/v1/chat/completions", json=_small(), timeout=120)
    assert small.status_code == 200, small.text  # loaded and warm
    return srv


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = _start(tmp_path_factory.mktemp("llama-cpp-cancel"))
    try:
        yield srv
    finally:
        srv.stop()


def _small() -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}


def _inflight(server: ServerProcess) -> int:
    resp = httpx.get(f"{server.url}/v1/providers/llama-cpp", timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["health"]["inflight"]


def _eventually(check: Callable[[], bool], what: str, timeout: float = PROMPT_WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} not within {timeout}s"
        time.sleep(0.2)


def _served_promptly(server: ServerProcess) -> None:
    """The next request gets the (only) llama.cpp slot at once: nothing is generating any more."""
    _eventually(lambda: _inflight(server) == 0, "inflight back to 0")
    started = time.monotonic()
    ok = httpx.post(f"{server.url}/v1/openai/v1/chat/completions", json=_small(), timeout=PROMPT_WAIT)
    assert ok.status_code == 200, ok.text
    assert time.monotonic() - started < PROMPT_WAIT


GREEDY = {"temperature": 0}  # the same long answer every time (sampled, it is sometimes short)
NATIVE_LONG = {"sampling_params": {"max_tokens": LONG_TOKENS, "strategy": {"type": "greedy"}}}
SHAPES: dict[str, tuple[str, dict]] = {
    "openai-chat": (
        "/v1/openai/v1/chat/completions",
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": LONG}],
            "max_tokens": LONG_TOKENS,
            **GREEDY,
        },
    ),
    "openai-completion": (
        "/v1/openai/v1/completions",
        {"model": MODEL, "prompt": COUNTING, "max_tokens": LONG_TOKENS, **GREEDY},
    ),
    "native-chat": (
        "/v1/inference/chat-completion",
        {"model_id": MODEL, "messages": [{"role": "user", "content": LONG}], **NATIVE_LONG},
    ),
    "native-completion": (
        "/v1/inference/completion",
        {"model_id": MODEL, "content": COUNTING, **NATIVE_LONG},
    ),
    "batch-chat": (
        "/v1/inference/batch-chat-completion",
        {
            "model_id": MODEL,
            "messages_batch": [[{"role": "user", "content": LONG}], [{"role": "user", "content": LONG}]],
            **NATIVE_LONG,
        },
    ),
    "batch-completion": (
        "/v1/inference/batch-completion",
        {"model_id": MODEL, "content_batch": [COUNTING, COUNTING + " 4,"], **NATIVE_LONG},
    ),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_client_that_goes_away_stops_its_non_streamed_generation(server: ServerProcess, shape: str) -> None:
    path, body = SHAPES[shape]
    try:  # the client gives up after 3 s and closes the connection
        resp = httpx.post(f"{server.url}{path}", json=body, timeout=httpx.Timeout(30, read=3))
    except httpx.ReadTimeout:
        pass
    else:
        pytest.fail(f"answered before the client gave up: {resp.status_code} {resp.text[:300]}")
    _served_promptly(server)


def test_n_and_max_tokens_are_bounded_by_config(server: ServerProcess) -> None:
    url = f"{server.url}/v1/openai/v1/chat/completions"
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
    too_many = httpx.post(url, json={**chat, "n": 128, "max_tokens": 4}, timeout=30)
    assert too_many.status_code == 400, too_many.text
    error = too_many.json()["error"]
    assert error["param"] == "n" and "max_n" in error["message"]

    for raw in ("1e12", "1000000000000"):  # as a float literal too: pydantic reads 1e12 as an int
        huge = httpx.post(
            url,
            content=json.dumps(chat)[:-1] + f', "max_tokens": {raw}}}',
            headers={"content-type": "application/json"},
            timeout=30,
        )
        assert huge.status_code == 400, huge.text
        error = huge.json()["error"]  # the server's bound on any request comes first
        assert error["param"] == "max_tokens" and "server.request_bounds.max_tokens" in error["message"]
    # Under the server's bound, over the model's context: the provider's own bound names its setting.
    over_context = httpx.post(url, json={**chat, "max_tokens": 20_000}, timeout=30)
    assert over_context.status_code == 400, over_context.text
    error = over_context.json()["error"]
    assert error["param"] == "max_tokens" and "context_length" in error["message"]

    # A completion of several prompts is one llama.cpp task per prompt: each takes a slot.
    completions = f"{server.url}/v1/openai/v1/completions"
    three_prompts = {"model": MODEL, "prompt": ["a", "b", "c"], "max_tokens": 2}
    three = httpx.post(completions, json=three_prompts, timeout=30)
    assert three.status_code == 400, three.text
    assert three.json()["error"]["param"] == "prompt" and "3 prompts" in three.json()["error"]["message"]
    two = httpx.post(completions, json={"model": MODEL, "prompt": ["a", "b"], "max_tokens": 2}, timeout=60)
    assert two.status_code == 200, two.text
    assert [c["index"] for c in two.json()["choices"]] == [0, 1]

    native = httpx.post(
        f"{server.url}/v1/inference/chat-completion",
        json={"model_id": MODEL, "messages": chat["messages"], "sampling_params": {"max_tokens": 10**12}},
        timeout=30,
    )
    assert native.status_code == 400, native.text
    assert "max_tokens" in native.json()["error"]["message"]
    _served_promptly(server)


def test_n_choices_are_admitted_together_or_refused_at_once(server: ServerProcess) -> None:
    """Capacity 2 (parallel 1 + max_queue 1): with one slot held, n=2 gets 503 and starts nothing."""
    stream_body = {**SHAPES["openai-chat"][1], "stream": True}
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with httpx.stream(
            "POST", f"{server.url}/v1/openai/v1/chat/completions", json=stream_body, timeout=60
        ) as resp:
            lines = resp.iter_lines()  # kept: a dropped iterator closes the connection
            next(line for line in lines if line.startswith("data:"))
            holding.set()
            release.wait(60)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert holding.wait(60)
        refused = httpx.post(
            f"{server.url}/v1/openai/v1/chat/completions",
            json={**SHAPES["openai-chat"][1], "n": 2, "max_tokens": 50},
            timeout=30,
        )
        assert refused.status_code == 503, refused.text
        assert "busy" in refused.json()["error"]["message"]
        assert _inflight(server) == 1  # the stream only: no choice of the refused request started
    finally:
        release.set()
        thread.join(60)
    _served_promptly(server)


def test_a_failed_batch_item_stops_the_other_items(server: ServerProcess) -> None:
    image = {"type": "image", "image": {"url": {"uri": "data:image/png;base64,AAAA"}}}
    resp = httpx.post(
        f"{server.url}/v1/inference/batch-chat-completion",
        json={
            "model_id": MODEL,
            "messages_batch": [
                [{"role": "user", "content": LONG}],
                [{"role": "user", "content": [image]}],
            ],
            **NATIVE_LONG,
        },
        timeout=60,
    )
    assert 400 <= resp.status_code < 600 and resp.status_code != 200, resp.text
    assert "messages_batch[1]" in resp.json()["error"]["message"]
    _served_promptly(server)


def test_sigterm_stops_a_process_with_generation_in_flight(tmp_path: Any) -> None:
    srv = _start(tmp_path)
    path, body = SHAPES["openai-chat"]

    def wait_for_answer() -> None:
        try:
            httpx.post(f"{srv.url}{path}", json=body, timeout=120)
        except httpx.HTTPError:
            pass  # the server went away: that is the point

    threading.Thread(target=wait_for_answer, daemon=True).start()
    _eventually(lambda: _inflight(srv) == 1, "the generation admitted")
    started = time.monotonic()
    code = srv.stop(timeout=60)  # SIGTERM, then SIGKILL after 60 s
    assert code is not None and code >= 0, f"killed (exit {code}): SIGTERM did not stop it:\n{srv.log_tail()}"
    assert time.monotonic() - started < 30
