"""Start-up behaves one way whatever the upstream does, and health/readiness say which providers are down.

Each test runs a real ``lamina run``. The upstreams: the scripted fake OpenAI server (reachable, and
it does not serve ``nonesuch``), a loopback port nobody listens on (down), and a bare socket server
that accepts connections and never answers (silent; no real server behaves like that on purpose, so
a socket stands in for a hung one).
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lamina.testing.processes import ServerProcess, free_port

pytestmark = pytest.mark.e2e


def config(url: str, models: list[dict], provider_id: str = "up") -> dict:
    return {
        "version": 2,
        "image_name": "startup-test",
        "providers": {
            "inference": [
                {"provider_id": provider_id, "provider_type": "remote::vllm", "config": {"url": url}},
            ]
        },
        "models": [{"provider_id": provider_id, **m} for m in models],
    }


@pytest.fixture
def silent_upstream() -> Iterator[str]:
    """A loopback socket that accepts connections, reads, and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


def _health(server: ServerProcess) -> tuple[dict, httpx.Response, dict]:
    health = httpx.get(f"{server.url}/v1/health", timeout=10)
    assert health.status_code == 200, health.text
    ready = httpx.get(f"{server.url}/v1/health/ready", timeout=10)
    provider = httpx.get(f"{server.url}/v1/providers/up", timeout=10)
    assert provider.status_code == 200, provider.text
    return health.json(), ready, provider.json()


def test_a_reachable_upstream_lacking_a_configured_model_starts_and_reports_the_provider_down(
    start_lamina, fake_upstream: ServerProcess
) -> None:
    """It used to refuse to start. Now it starts, the provider is unhealthy (naming the model), the
    readiness route answers 503 naming the provider, and the upstream's other models still work."""
    server = start_lamina(
        config(
            f"{fake_upstream.url}/v1",
            [{"model_id": "ok"}, {"model_id": "missing", "provider_model_id": "nonesuch"}],
        )
    )
    health, ready, provider = _health(server)
    assert health["status"] == "OK"
    assert [p["provider_id"] for p in health["providers_down"]] == ["up"]
    assert "nonesuch" in health["providers_down"][0]["message"]
    assert ready.status_code == 503 and "'up'" in ready.json()["detail"], ready.text
    assert provider["health"]["status"] == "Error" and "nonesuch" in provider["health"]["message"]
    listed = httpx.get(f"{server.url}/v1/providers", timeout=10).json()["data"]
    assert [p["health"]["status"] for p in listed if p["provider_id"] == "up"] == ["Error"]
    chat = {"model": "ok", "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(f"{server.url}/v1/chat/completions", json=chat, timeout=30).status_code == 200
    waiting = httpx.post(f"{server.url}/v1/chat/completions", json={**chat, "model": "missing"}, timeout=30)
    assert waiting.status_code == 503, waiting.text
    assert "provider 'up'" in waiting.json()["detail"] and "nonesuch" in waiting.json()["detail"]


def test_a_silent_upstream_does_not_delay_start_up_and_requests_to_it_fail_fast_naming_it(
    start_lamina, silent_upstream: str
) -> None:
    """It used to wait 5 s per configured model (25 s here). Now start-up is bounded, the provider
    is reported down, and a request routed to it fails at once with a 502 naming the provider
    instead of waiting out the 300 s read timeout."""
    models = [{"model_id": f"m{i}", "provider_model_id": "ok"} for i in range(5)]
    started = time.monotonic()
    server = start_lamina(config(silent_upstream, models))
    assert time.monotonic() - started < 15, "start-up waited on the silent upstream"
    health, ready, provider = _health(server)
    assert [p["provider_id"] for p in health["providers_down"]] == ["up"]
    assert ready.status_code == 503
    assert provider["health"]["status"] == "Error"
    chat = {"model": "m0", "messages": [{"role": "user", "content": "hi"}]}
    resp = httpx.post(f"{server.url}/v1/chat/completions", json=chat, timeout=60)
    assert resp.status_code == 502, resp.text
    assert "provider 'up'" in resp.json()["detail"] and "did not answer" in resp.json()["detail"]
    port = silent_upstream.rsplit(":", 1)[1].split("/")[0]
    assert port not in resp.text and port not in ready.text, "the upstream's address reached a client"


def test_a_down_upstream_starts_and_the_provider_recovers_in_the_background(
    start_lamina, tmp_path: Path
) -> None:
    """Nothing listens on the upstream's port at start-up; once a server comes up there, the
    background retry marks the provider healthy, readiness turns 200 and requests are served."""
    port = free_port()
    server = start_lamina(config(f"http://127.0.0.1:{port}/v1", [{"model_id": "ok"}]))
    health, ready, provider = _health(server)
    assert [p["provider_id"] for p in health["providers_down"]] == ["up"]
    assert ready.status_code == 503
    argv = [sys.executable, "-m", "lamina.testing.fake_openai", "--port", str(port)]
    with ServerProcess(argv, port, log_path=tmp_path / "late-upstream.log", ready_path="/v1/models"):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if httpx.get(f"{server.url}/v1/health/ready", timeout=10).status_code == 200:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the provider never recovered:\n{server.log_tail()}")
        health, ready, provider = _health(server)
        assert health["providers_down"] == [] and provider["health"]["status"] == "OK"
        assert "cannot connect" in provider["health"]["last_error"]  # why it was down, kept for operators
        chat = {"model": "ok", "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(f"{server.url}/v1/chat/completions", json=chat, timeout=30).status_code == 200


def test_a_silent_ollama_server_does_not_delay_start_up(start_lamina, silent_upstream: str) -> None:
    """remote::ollama with Llama Stack's raise_on_connect_error: false used to wait on the silent
    server at start-up (its first listing had no bound, then 5 s per model); now the start-up is
    bounded and the provider is reported down."""
    url = silent_upstream.removesuffix("/v1")
    run_config = config(url, [{"model_id": f"m{i}", "provider_model_id": "llama3.2:3b"} for i in range(5)])
    run_config["providers"]["inference"][0].update(
        provider_type="remote::ollama", config={"url": url, "raise_on_connect_error": False}
    )
    started = time.monotonic()
    server = start_lamina(run_config)
    assert time.monotonic() - started < 15, "start-up waited on the silent server"
    health, ready, provider = _health(server)
    assert [p["provider_id"] for p in health["providers_down"]] == ["up"]
    assert ready.status_code == 503 and provider["health"]["status"] == "Error"
    assert "did not answer" in provider["health"]["message"]
    assert url not in provider["health"]["message"] and url not in ready.text
