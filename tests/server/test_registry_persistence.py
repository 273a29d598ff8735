"""Registered resources survive restarts, on SQLite and on PostgreSQL, even after a kill mid-write."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from lamina.testing.postgres import PostgresServer
from lamina.testing.processes import ServerProcess, free_port, lamina_server

pytestmark = pytest.mark.e2e


def _config(fake: ServerProcess, metadata_store: dict | None) -> dict:
    config = {
        "version": 2,
        "image_name": "persist",
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
            ]
        },
        "models": [{"model_id": "from-config", "provider_id": "fake", "provider_model_id": "ok"}],
    }
    if metadata_store:
        config["metadata_store"] = metadata_store
    return config


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def metadata_store(request: pytest.FixtureRequest) -> dict | None:
    if request.param == "sqlite":
        return None  # the default: ~/.lamina/<image_name>/registry.db
    pg: PostgresServer = request.getfixturevalue("postgres_server")
    return pg.kvstore_config(table_name=f"reg_{uuid.uuid4().hex[:10]}")


def _models(server: ServerProcess) -> dict[str, dict]:
    return {m["identifier"]: m for m in httpx.get(f"{server.url}/v1/models").json()["data"]}


def test_registrations_survive_a_restart(
    tmp_path: Path, fake_upstream: ServerProcess, metadata_store: dict | None
) -> None:
    config = _config(fake_upstream, metadata_store)
    port = free_port()
    with lamina_server(config, tmp_path, port=port) as server:
        created = httpx.post(
            f"{server.url}/v1/models",
            json={
                "model_id": "team/ok-model",
                "provider_id": "fake",
                "provider_model_id": "ok",
                "metadata": {"owner": "team"},
            },
        )
        assert created.status_code == 200, created.text
        first = _models(server)
    assert set(first) == {"from-config", "team/ok-model"}
    if metadata_store is None:
        assert (tmp_path / "home" / "persist" / "registry.db").exists()
    # Same state, restarted: the config model is re-registered idempotently, the API one is back.
    with lamina_server(config, tmp_path, port=port) as server:
        again = _models(server)
        assert again == first
        assert httpx.get(f"{server.url}/v1/models/team/ok-model").json()["metadata"] == {"owner": "team"}
        assert httpx.delete(f"{server.url}/v1/models/team/ok-model").status_code == 200
    with lamina_server(config, tmp_path, port=port) as server:
        assert set(_models(server)) == {"from-config"}


def test_a_config_change_updates_the_config_model(tmp_path: Path, fake_upstream: ServerProcess) -> None:
    config = _config(fake_upstream, None)
    with lamina_server(config, tmp_path) as server:
        assert _models(server)["from-config"]["provider_resource_id"] == "ok"
    config["models"][0]["provider_model_id"] = "echo"
    with lamina_server(config, tmp_path) as server:
        assert _models(server)["from-config"]["provider_resource_id"] == "echo"


def test_registering_an_existing_id_differently_is_409(tmp_path: Path, fake_upstream: ServerProcess) -> None:
    with lamina_server(_config(fake_upstream, None), tmp_path) as server:
        clash = httpx.post(
            f"{server.url}/v1/models",
            json={"model_id": "from-config", "provider_id": "fake", "provider_model_id": "echo"},
        )
        assert clash.status_code == 409, clash.text
        assert "from-config" in clash.json()["detail"]
        same = httpx.post(
            f"{server.url}/v1/models",
            json={"model_id": "from-config", "provider_id": "fake", "provider_model_id": "ok"},
        )
        assert same.status_code == 200, same.text


def test_killed_mid_write_the_registry_stays_readable(
    tmp_path: Path, fake_upstream: ServerProcess, metadata_store: dict | None
) -> None:
    """SIGKILL while registrations stream in: on restart every acknowledged model is there."""
    config = _config(fake_upstream, metadata_store)
    port = free_port()
    acknowledged: list[str] = []
    server = lamina_server(config, tmp_path, port=port).start()
    stop = threading.Event()

    def register() -> None:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            for i in range(10_000):
                if stop.is_set():
                    return
                try:
                    resp = client.post(
                        "/v1/models",
                        json={"model_id": f"m{i}", "provider_id": "fake", "provider_model_id": "ok"},
                    )
                except httpx.HTTPError:
                    return
                if resp.status_code == 200:
                    acknowledged.append(f"m{i}")

    writer = threading.Thread(target=register)
    try:
        writer.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 20 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert len(acknowledged) >= 20, "registrations never got going"
        assert server.proc is not None
        killed = server.proc.pid
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
    finally:
        stop.set()
        writer.join(10)
        server.stop()  # a no-op after the kill; stops the server if the test failed before it
    with lamina_server(config, tmp_path, port=port) as restarted:  # refuses if the port is still served
        assert restarted.pid != killed
        models = _models(restarted)
    assert set(acknowledged) <= set(models)
    assert all(m["provider_resource_id"] == "ok" for m in models.values())
