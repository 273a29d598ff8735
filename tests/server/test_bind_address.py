"""Where ``lamina run`` listens: loopback unless told otherwise, with a warning when exposed without auth."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from lamina.server.app import is_loopback
from lamina.testing.processes import ServerProcess, lamina_server


def _other_loopback_address() -> str:
    """127.0.0.2: on the machine's own loopback interface, but not the address a default server binds.

    A server bound to 127.0.0.1 does not accept connections there; one bound to all interfaces
    does. That shows the bind address without sending anything to a non-loopback address.
    """
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.2", 0))
        except OSError:
            pytest.skip("127.0.0.2 is not usable here, so the bind address cannot be told apart")
    return "127.0.0.2"


def _reachable(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=5):
            return True
    except OSError:
        return False


def _config(upstream: ServerProcess) -> dict:
    return {
        "version": "2",
        "image_name": "bind",
        "providers": {
            "inference": [
                {
                    "provider_id": "vllm",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{upstream.url}/v1"},
                }
            ]
        },
    }


def _events(server: ServerProcess) -> list[dict]:
    lines = server.log_path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_default_bind_is_loopback_only(tmp_path: Path, fake_upstream: ServerProcess) -> None:
    outside = _other_loopback_address()
    with lamina_server(_config(fake_upstream), tmp_path) as server:
        assert _reachable("127.0.0.1", server.port)
        assert not _reachable(outside, server.port)
        events = _events(server)
    assert "server_exposed_without_auth" not in [e.get("event") for e in events]
    serving = next(e for e in events if e.get("event") == "serving")
    assert serving["url"] == f"http://127.0.0.1:{server.port}"


def test_host_all_interfaces_exposes_with_a_warning(tmp_path: Path, fake_upstream: ServerProcess) -> None:
    outside = _other_loopback_address()
    with lamina_server(_config(fake_upstream), tmp_path, extra_args=["--host", "0.0.0.0"]) as server:
        assert _reachable(outside, server.port)
        events = _events(server)
    warning = next(e for e in events if e.get("event") == "server_exposed_without_auth")
    assert warning["level"] == "warning" and warning["host"] == "0.0.0.0"
    assert "server.auth" in warning["hint"]


def test_server_host_in_the_config_exposes_too(tmp_path: Path, fake_upstream: ServerProcess) -> None:
    outside = _other_loopback_address()
    config = {**_config(fake_upstream), "server": {"host": "0.0.0.0"}}
    with lamina_server(config, tmp_path) as server:
        assert _reachable(outside, server.port)
        events = _events(server)
    assert "server_exposed_without_auth" in [e.get("event") for e in events]


def test_exposed_with_auth_does_not_warn(tmp_path: Path, fake_upstream: ServerProcess) -> None:
    auth = {"provider_type": "api_keys", "config": {"bootstrap_admin_key": "x" * 32}}
    config = {**_config(fake_upstream), "server": {"host": "0.0.0.0", "auth": auth}}
    with lamina_server(config, tmp_path) as server:
        assert _reachable("127.0.0.1", server.port)
        events = _events(server)
    assert "server_exposed_without_auth" not in [e.get("event") for e in events]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.2", False),
        ("example.internal", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected
