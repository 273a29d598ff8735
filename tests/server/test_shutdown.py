"""Graceful shutdown of a real ``lamina run``: in-flight requests answered, prompt exit, quiet Ctrl-C.

A request is held in flight while the signal arrives by the scripted fake OpenAI upstream (its
``slow`` model answers after 5 s) or by a long generation of the bundled model on llama.cpp.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e


def slow_config(fake: ServerProcess, shutdown_timeout: float) -> dict:
    return {
        "version": 2,
        "image_name": "shutdown-test",
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
            ]
        },
        "models": [{"model_id": "slow", "provider_id": "fake"}, {"model_id": "ok", "provider_id": "fake"}],
        "server": {"shutdown_timeout": shutdown_timeout},
    }


def _post_in_background(url: str, body: dict) -> tuple[threading.Thread, dict]:
    """POST from a thread; the outcome (response or exception) lands in the returned dict."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["response"] = httpx.post(url, json=body, timeout=60)
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_sigterm_cuts_an_in_flight_request_with_a_503_and_exits_within_the_grace_period(
    start_lamina, fake_upstream: ServerProcess
) -> None:
    """The upstream needs 5 s; the grace period is 1 s. The client gets a 503 saying why (it used to
    get the connection closed without a response after twice the grace period), and the process
    exits 0 well before the upstream would have answered."""
    server = start_lamina(slow_config(fake_upstream, shutdown_timeout=1))
    body = {"model": "slow", "messages": [{"role": "user", "content": "hi"}]}
    thread, outcome = _post_in_background(f"{server.url}/v1/chat/completions", body)
    time.sleep(1.0)  # the request is now waiting on the upstream
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(20)
    elapsed = time.monotonic() - started
    thread.join(20)
    assert code == 0, server.log_tail()
    assert elapsed < 1 + 3.5, f"exit took {elapsed:.1f}s with shutdown_timeout=1:\n{server.log_tail()}"
    assert "response" in outcome, f"no HTTP response: {outcome.get('error')!r}\n{server.log_tail()}"
    response = outcome["response"]
    assert response.status_code == 503, response.text
    detail = response.json()["detail"]
    assert "shutting down" in detail and "shutdown_timeout" in detail


def test_sigterm_lets_an_in_flight_request_finish_within_the_grace_period(
    start_lamina, fake_upstream: ServerProcess
) -> None:
    """With a grace period longer than the upstream's 5 s, the in-flight request completes normally,
    and no new work is taken meanwhile: a new request finds nothing listening (or, if it raced the
    signal, a 503 saying the server is shutting down)."""
    server = start_lamina(slow_config(fake_upstream, shutdown_timeout=15))
    body = {"model": "slow", "messages": [{"role": "user", "content": "hi"}]}
    thread, outcome = _post_in_background(f"{server.url}/v1/chat/completions", body)
    time.sleep(1.0)
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    try:
        late = httpx.post(f"{server.url}/v1/chat/completions", json={**body, "model": "ok"}, timeout=10)
    except httpx.TransportError:
        pass
    else:
        assert late.status_code == 503 and "shutting down" in late.json()["detail"], late.text
    code = server.proc.wait(20)
    elapsed = time.monotonic() - started
    thread.join(20)
    assert code == 0, server.log_tail()
    assert outcome["response"].status_code == 200, outcome["response"].text
    assert elapsed < 10, f"exit took {elapsed:.1f}s although the request ended after ~4s"


def prompt_guard_config() -> dict:
    return {
        "version": 2,
        "image_name": "ctrl-c-test",
        "apis": ["safety"],
        "providers": {
            "safety": [
                {
                    "provider_id": "prompt-guard",
                    "provider_type": "inline::prompt-guard",
                    "config": {"guard_type": "injection"},
                }
            ]
        },
        "shields": [{"shield_id": "prompt-guard", "provider_shield_id": "Prompt-Guard-86M"}],
    }


def test_ctrl_c_to_the_process_group_exits_without_a_traceback(start_lamina, tmp_path: Path) -> None:
    """SIGINT to the whole process group, as a terminal sends it on Ctrl-C: the server and its
    prompt-guard worker process stop without printing a traceback or KeyboardInterrupt."""
    server = start_lamina(prompt_guard_config())
    shield = {"shield_id": "prompt-guard", "messages": [{"role": "user", "content": "Hello there"}]}
    assert httpx.post(f"{server.url}/v1/safety/run-shield", json=shield, timeout=60).status_code == 200
    os.killpg(server.proc.pid, signal.SIGINT)  # ServerProcess starts lamina in its own session/group
    code = server.proc.wait(20)
    output = server.log_path.read_text(errors="replace")
    assert code == 0, output[-3000:]
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]


def test_sigterm_during_a_llama_cpp_generation_exits_within_the_grace_period(start_lamina) -> None:
    """A long llama.cpp generation runs in a worker thread that cancellation cannot stop. The client
    gets a 503 after the 1 s grace period, and the process exits without waiting for the thread (it
    used to drop the request and then wait for the generation to end before exiting)."""
    config = {
        "version": 2,
        "image_name": "shutdown-llama-cpp",
        "providers": {
            "inference": [{"provider_id": "llama-cpp", "provider_type": "inline::llama-cpp", "config": {}}]
        },
        "server": {"shutdown_timeout": 1},
    }
    server = start_lamina(config)
    body = {
        "model": "SmolLM2-135M-Instruct",
        "messages": [{"role": "user", "content": "Count from 1 to 5000, separated by commas."}],
        "max_tokens": 1500,
        "ignore_eos": True,  # llama.cpp's own field: the generation runs to max_tokens (tens of seconds)
    }
    warm = {**body, "max_tokens": 2}
    assert httpx.post(f"{server.url}/v1/chat/completions", json=warm, timeout=120).status_code == 200
    thread, outcome = _post_in_background(f"{server.url}/v1/chat/completions", body)
    time.sleep(2.0)  # generating now: 1500 tokens take far longer than the grace period here
    assert "response" not in outcome, "the generation ended before the signal; the test proves nothing"
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(120)
    elapsed = time.monotonic() - started
    thread.join(20)
    assert code == 0, server.log_tail()
    assert elapsed < 1 + 5, f"exit took {elapsed:.1f}s with shutdown_timeout=1:\n{server.log_tail()}"
    assert "response" in outcome, f"no HTTP response: {outcome.get('error')!r}"
    assert outcome["response"].status_code == 503, outcome["response"].text
