"""The HTTP server itself: inspect routes, errors, request ids, body limits, provider data, shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from lamina import __version__
from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e


def fake_config(fake: ServerProcess, **server: object) -> dict:
    return {
        "version": 2,
        "image_name": "server-test",
        "providers": {
            "inference": [
                {
                    "provider_id": "fake",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{fake.url}/v1", "api_token": "sk-configured-secret", "timeout": 30},
                },
                {
                    "provider_id": "oai",
                    "provider_type": "remote::openai",
                    "config": {"api_key": "sk-openai-secret", "base_url": f"{fake.url}/v1"},
                },
            ]
        },
        "models": [
            {"model_id": "ok", "provider_id": "fake"},
            {"model_id": "echo", "provider_id": "fake"},
            {"model_id": "stall", "provider_id": "fake"},
            {"model_id": "oai-echo", "provider_id": "oai", "provider_model_id": "echo"},
        ],
        "server": server,
    }


@pytest.fixture
def server(start_lamina, fake_upstream: ServerProcess) -> ServerProcess:
    return start_lamina(fake_config(fake_upstream, max_request_body_bytes=4096))


def test_health_and_version(server: ServerProcess) -> None:
    assert httpx.get(f"{server.url}/v1/health").json() == {"status": "OK", "providers_down": []}
    assert httpx.get(f"{server.url}/v1/health/ready").json() == {"status": "OK", "providers_down": []}
    assert httpx.get(f"{server.url}/v1/version").json() == {"version": __version__}


def test_inspect_routes_lists_every_route_with_its_provider_types(server: ServerProcess) -> None:
    routes = httpx.get(f"{server.url}/v1/inspect/routes").json()["data"]
    by_key = {(r["method"], r["route"]): r for r in routes}
    chat = by_key[("POST", "/v1/inference/chat-completion")]
    assert chat["provider_types"] == ["remote::openai", "remote::vllm"]
    for key in [
        ("GET", "/v1/models/{model_id}"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/openai/v1/embeddings"),
        ("GET", "/v1/providers/{provider_id}"),
    ]:
        assert key in by_key, key


def test_openapi_is_generated_from_the_same_declarations(server: ServerProcess) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    routes = httpx.get(f"{server.url}/v1/inspect/routes").json()["data"]
    for route in routes:
        assert route["method"].lower() in spec["paths"][route["route"]], route
    chat = spec["paths"]["/v1/inference/chat-completion"]["post"]
    assert "requestBody" in chat and "text/event-stream" in json.dumps(chat["responses"])


def test_providers_are_listed_with_secrets_redacted(server: ServerProcess) -> None:
    providers = httpx.get(f"{server.url}/v1/providers").json()["data"]
    assert [(p["api"], p["provider_id"], p["provider_type"]) for p in providers] == [
        ("inference", "fake", "remote::vllm"),
        ("inference", "oai", "remote::openai"),
    ]
    text = json.dumps(providers)
    assert "sk-configured-secret" not in text and "sk-openai-secret" not in text
    assert providers[0]["config"]["api_token"] == "********"
    assert providers[0]["health"]["status"] == "OK"
    one = httpx.get(f"{server.url}/v1/providers/fake").json()
    assert one["provider_id"] == "fake"
    missing = httpx.get(f"{server.url}/v1/providers/nope")
    assert missing.status_code == 404 and "fake, oai" in missing.json()["detail"]


def test_request_id_is_returned_and_logged(server: ServerProcess) -> None:
    mine = httpx.get(f"{server.url}/v1/models", headers={"X-Request-ID": "trace-123"})
    assert mine.headers["X-Request-ID"] == "trace-123"
    generated = httpx.get(f"{server.url}/v1/models").headers["X-Request-ID"]
    assert len(generated) == 32
    unsafe = httpx.get(f"{server.url}/v1/models", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["X-Request-ID"] != "bad id\twith spaces"
    with httpx.stream(
        "POST",
        f"{server.url}/v1/chat/completions",
        headers={"X-Request-ID": "stream-9"},
        json={"model": "ok", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    ) as r:
        assert r.headers["X-Request-ID"] == "stream-9"
        r.read()
    time.sleep(0.2)
    logged = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    assert any(e.get("request_id") == "trace-123" and e.get("path") == "/v1/models" for e in logged)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"model_id": "ok", "messages": "hello"}', 400, "messages"),
        (
            b'{"model_id": "ok", "messages": [{"role": "wizard", "content": "x"}]}',
            400,
            "messages[0]: Input tag 'wizard'",
        ),
        (
            b'{"model_id": "ok", "messages": [], "sampling_params": {"max_tokens": "many"}}',
            400,
            "sampling_params.max_tokens",
        ),
    ],
)
def test_bad_requests_are_400_naming_the_problem(
    server: ServerProcess, body: bytes, status: int, words: str
) -> None:
    resp = httpx.post(
        f"{server.url}/v1/inference/chat-completion",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == status, resp.text
    assert words in resp.json()["detail"]
    assert resp.json()["error"]["message"] == resp.json()["detail"]


def test_unknown_route_and_wrong_method(server: ServerProcess) -> None:
    missing = httpx.get(f"{server.url}/v1/nothing-here")
    assert missing.status_code == 404 and "/v1/inspect/routes" in missing.json()["detail"]
    wrong = httpx.delete(f"{server.url}/v1/health")
    assert wrong.status_code == 405 and "DELETE" in wrong.json()["detail"]


def test_body_over_the_limit_is_413_and_the_server_keeps_serving(server: ServerProcess) -> None:
    big = {"model_id": "ok", "messages": [{"role": "user", "content": "x" * 10_000}]}
    resp = httpx.post(f"{server.url}/v1/inference/chat-completion", json=big)
    assert resp.status_code == 413
    assert "max_request_body_bytes" in resp.json()["detail"]
    assert httpx.get(f"{server.url}/v1/health").status_code == 200


def test_provider_data_header_overrides_the_configured_key(server: ServerProcess) -> None:
    body = {"model": "oai-echo", "messages": [{"role": "user", "content": "hi"}]}

    def sent_auth(headers: dict[str, str]) -> str:
        resp = httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=headers)
        assert resp.status_code == 200, resp.text
        return json.loads(resp.json()["choices"][0]["message"]["content"])["_authorization"]

    assert sent_auth({}) == "Bearer sk-openai-secret"
    data = json.dumps({"openai_api_key": "sk-caller"})
    assert sent_auth({"X-LlamaStack-Provider-Data": data}) == "Bearer sk-caller"
    bad = httpx.post(
        f"{server.url}/v1/chat/completions", json=body, headers={"X-LlamaStack-Provider-Data": "not json"}
    )
    assert bad.status_code == 400 and "X-LlamaStack-Provider-Data" in bad.json()["detail"]


def test_graceful_shutdown_closes_open_streams(start_lamina, fake_upstream: ServerProcess) -> None:
    server = start_lamina(fake_config(fake_upstream, shutdown_timeout=3))
    body = {"model": "stall", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=30) as resp:
        lines = resp.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        assert "choices" in first
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        rest = [line for line in lines if line.startswith("data: ")]
    assert json.loads(rest[-1][6:])["error"]["message"].startswith("the server is shutting down")
    assert server.proc.wait(10) == 0
    assert time.monotonic() - started < 5


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lamina.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_cli_routes(tmp_path: Path, fake_upstream: ServerProcess) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(fake_config(fake_upstream)))
    result = _cli("routes", str(config), "--json")
    assert result.returncode == 0, result.stderr
    routes = {(r["method"], r["route"]): r for r in json.loads(result.stdout)}
    assert routes[("POST", "/v1/inference/completion")]["provider_types"] == [
        "remote::openai",
        "remote::vllm",
    ]
    assert ("DELETE", "/v1/models/{model_id}") in routes
    table = _cli("routes", str(config)).stdout
    assert "POST    /v1/inference/chat-completion" in table


def test_cli_run_without_a_config_or_default_distribution_says_what_to_pass() -> None:
    """With no default distribution installed (here: disabled), `lamina run` says what to pass."""
    result = _cli("run", env={"LAMINA_DISABLE_PLUGINS": "lamina-distribution-local"})
    assert result.returncode == 2
    assert "lamina run path/to/run.yaml" in result.stderr


def test_cli_run_with_an_unknown_provider_type_names_it_and_the_installed_ones(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        "version: 2\nproviders:\n  inference:\n  - provider_id: x\n"
        "    provider_type: remote::nonesuch\n    config: {}\n"
    )
    result = _cli("run", str(config), env={"LAMINA_HOME": str(tmp_path)})
    assert result.returncode != 0
    assert f"{config}: providers.inference[0].provider_type" in result.stderr
    assert "remote::nonesuch" in result.stderr and "remote::vllm" in result.stderr


def test_cli_run_with_a_bad_config_names_file_key_and_expectation(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        "version: 2\nproviders:\n  inference:\n  - provider_id: x\n"
        "    provider_type: remote::vllm\n    config: {url: 'localhost:8000'}\n"
    )
    result = _cli("run", str(config), env={"LAMINA_HOME": str(tmp_path)})
    assert result.returncode != 0
    assert f"{config}: providers.inference[0].config.url" in result.stderr
    assert "http://" in result.stderr


def test_ctrl_c_while_plugins_load_exits_130_without_a_traceback(monkeypatch, capsys) -> None:
    """Ctrl-C before the server runs (plugin loading takes ~0.3 s) used to print a traceback."""
    import lamina.logging
    from lamina import cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_pm", interrupted)
    # Logging set up under capsys would keep writing to its stream after the test closed it.
    monkeypatch.setattr(lamina.logging, "configure_logging", lambda: None)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 130
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("api_key", True),
        ("api_token", True),
        ("hf_token", True),
        ("token", True),
        ("db_password", True),
        ("client_secret", True),
        ("max_tokens", False),
        ("default_max_tokens", False),
        ("tokenizer_path", False),
        ("url", False),
    ],
)
def test_provider_config_redaction_hides_secrets_not_token_counts(key: str, secret: bool) -> None:
    from lamina.routers.inspect import REDACTED, redact

    shown = redact({key: 1024 if "tokens" in key else "value"})[key]
    assert (shown == REDACTED) is secret
