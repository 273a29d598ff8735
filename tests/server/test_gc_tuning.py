"""``server.gc``: `lamina run` freezes its start-up heap and raises the generation-0 threshold once the
stack has started (lamina.server.gc_tuning), as configured; a request still works after it."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import httpx
import pytest

from lamina.config import ServerConfig
from lamina.server import gc_tuning
from lamina.testing.processes import ServerProcess, lamina_server


def _config(upstream: ServerProcess, server: dict | None = None) -> dict:
    return {
        "version": "2",
        "image_name": "gc",
        "providers": {
            "inference": [
                {
                    "provider_id": "vllm",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{upstream.url}/v1"},
                }
            ]
        },
        "models": [{"model_id": "m", "provider_id": "vllm", "provider_model_id": "ok"}],
        **({"server": server} if server else {}),
    }


def _events(server: ServerProcess) -> list[dict]:
    lines = server.log_path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def _chat(server: ServerProcess) -> None:
    response = httpx.post(
        f"{server.url}/v1/openai/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def test_lamina_run_freezes_the_started_heap(tmp_path: Path, fake_upstream: ServerProcess) -> None:
    with lamina_server(_config(fake_upstream), tmp_path) as server:
        _chat(server)
        events = _events(server)
    names = [e.get("event") for e in events]
    tuned = events[names.index("gc_tuned")]
    # After the stack's start: its providers are up when the heap is frozen.
    assert names.index("provider_started") < names.index("gc_tuned") < names.index("serving")
    assert tuned["frozen_objects"] > 10_000  # a started stack's objects, not an empty interpreter's
    assert tuned["thresholds"][0] == 7000


def test_the_settings_come_from_the_run_config(tmp_path: Path, fake_upstream: ServerProcess) -> None:
    config = _config(fake_upstream, {"gc": {"freeze": False, "gen0_threshold": 1234}})
    with lamina_server(config, tmp_path) as server:
        _chat(server)
        tuned = next(e for e in _events(server) if e.get("event") == "gc_tuned")
    assert tuned["frozen_objects"] == 0
    assert tuned["thresholds"][0] == 1234


def test_apply_in_process_and_the_config_is_checked() -> None:
    before = gc.get_threshold()
    try:
        gc_tuning.apply(gc_tuning.GcConfig(freeze=True, gen0_threshold=5000))
        assert gc.get_threshold() == (5000, *before[1:])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    with pytest.raises(ValueError, match="gen0_threshold"):
        ServerConfig(gc={"gen0_threshold": 0})
    with pytest.raises(ValueError, match="freez"):
        ServerConfig(gc={"freez": True})
