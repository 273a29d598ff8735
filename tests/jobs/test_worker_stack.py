"""A worker's stack (lamina.worker_stack): the providers of a server's run config started elsewhere to run
its work items. It reads the registry the server wrote and writes nothing back, runs no job manager and
no refresh loops, and starts only the providers of the APIs asked for (and their dependencies).

The upstream is a real process (the fake OpenAI server); the server's stack is a real one, in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from lamina.apis.inference import OpenAIChatCompletionRequest
from lamina.apis.models import RegisterModelRequest
from lamina.config import RunConfig
from lamina.errors import ConfigError
from lamina.plugins import load_plugin_manager
from lamina.specs import Api
from lamina.stack import Stack
from lamina.testing.processes import ServerProcess, fake_openai_server
from lamina.worker_stack import build_worker_stack, start_worker_stack, worker_apis


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with fake_openai_server(tmp_path_factory.mktemp("fake")) as server:
        yield server


def config(fake: ServerProcess, state: Path) -> dict[str, Any]:
    def sqlite(name: str) -> dict[str, str]:
        return {"type": "sqlite", "db_path": str(state / name)}

    return {
        "image_name": "worker-tests",
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
            ],
            "files": [
                {
                    "provider_id": "localfs",
                    "provider_type": "inline::localfs",
                    "config": {"storage_dir": str(state / "files"), "metadata_store": sqlite("files.db")},
                }
            ],
            "batches": [
                {
                    "provider_id": "reference",
                    "provider_type": "inline::reference",
                    "config": {"kvstore": sqlite("b.db")},
                }
            ],
        },
        "metadata_store": sqlite("registry.db"),
        "models": [{"model_id": "ok", "provider_id": "fake", "provider_model_id": "ok"}],
    }


@pytest.fixture
async def server(
    fake: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Stack]:
    monkeypatch.setenv("LAMINA_HOME", str(tmp_path / "home"))
    stack = Stack.build(RunConfig.model_validate(config(fake, tmp_path)), load_plugin_manager())
    await stack.start()
    try:
        yield stack
    finally:
        await stack.shutdown()


def chat(model: str) -> OpenAIChatCompletionRequest:
    return OpenAIChatCompletionRequest.model_validate(
        {"model": model, "messages": [{"role": "user", "content": "hi"}], "store": False}
    )


async def test_a_worker_serves_the_servers_models_from_its_registry_and_writes_nothing(server: Stack) -> None:
    # The server drops a run-config model and adds one at run time: the worker must not bring the first
    # back (it registers nothing) and must route the second (it reads the shared registry).
    await server.models.remove("ok")
    await server.models.register_model(
        RegisterModelRequest(model_id="late", provider_id="fake", provider_model_id="ok")
    )
    shipped = server.config.model_dump(mode="json")  # what an executor ships to its workers
    worker = await start_worker_stack(shipped, apis=["inference"], state_dir=server.config.state_dir())
    try:
        assert worker.jobs is None and worker.refreshers == {}
        assert sorted(a.value for a in worker_apis(worker)) == ["inference"]  # no files, no batches
        answer = await worker_apis(worker)[Api.inference].openai_chat_completion(chat("late"))
        assert answer["choices"][0]["message"]["content"] == "Hello from the fake upstream."
        with pytest.raises(KeyError, match="files API is not served by this stack"):
            worker_apis(worker)[Api.files]
    finally:
        await worker.shutdown()
    ids = {m.identifier for m in await server.models.list()}
    assert "late" in ids and "ok" not in ids


async def test_a_worker_for_every_api_starts_every_provider_without_a_job_manager(server: Stack) -> None:
    worker = await start_worker_stack(server.config, state_dir=server.config.state_dir())
    try:
        assert sorted(a.value for a in worker_apis(worker)) == ["batches", "files", "inference"]
        assert worker.jobs is None  # the batches provider started without one: it never runs jobs here
    finally:
        await worker.shutdown()


def test_a_worker_asked_for_an_api_nobody_serves_names_it(fake: ServerProcess, tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"asked for the safety API, which no provider .* \(configured: batches, files, inference\)",
    ):
        build_worker_stack(config(fake, tmp_path), apis=["safety"])
    # Dependencies come along: batches needs inference and files.
    stack = build_worker_stack(config(fake, tmp_path), apis=["batches"])
    assert sorted(a.value for a in stack.providers) == ["batches", "files", "inference"]
