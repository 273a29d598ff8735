"""Interactive calls first: a queue of batch calls does not hold back a client's request.

A Stack is built in-process from a run config whose provider has ``limits``, and served over HTTP on
127.0.0.1 by the same app ``lamina run`` serves (``create_app``), in front of the scripted fake upstream
(a real process; a fake because its ``[[delay:S]]`` directive makes a call slow on demand and its log
says in which order calls arrived). The batch calls are made in-process inside ``batch_work()``, as
a batch executor makes them: no route starts batch work yet (the Batches API of issue 16 will). The
interactive request goes through HTTP like any client's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from lamina.apis.inference import OpenAIChatCompletionRequest
from lamina.config import parse_run_config
from lamina.plugins import PluginManager
from lamina.request_context import batch_work
from lamina.server.app import create_app
from lamina.specs import Api
from lamina.stack import Stack
from lamina.testing.processes import ServerProcess, fake_openai_server


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with fake_openai_server(tmp_path_factory.mktemp("interactive-first")) as server:
        yield server


@pytest.fixture
async def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: ServerProcess):
    """``await serve(limits)``: (stack, base URL) of a started in-process server."""
    monkeypatch.setenv("LAMINA_HOME", str(tmp_path / "home"))
    runners: list[web.AppRunner] = []

    async def start(limits: dict[str, Any]) -> tuple[Stack, str]:
        doc = {
            "version": 2,
            "image_name": "interactive-first",
            "providers": {
                "inference": [
                    {
                        "provider_id": "up",
                        "provider_type": "remote::vllm",
                        "config": {"url": f"{upstream.url}/v1"},
                        "limits": limits,
                    }
                ]
            },
            "models": [{"model_id": "ok", "provider_id": "up", "provider_model_id": "ok"}],
        }
        pm = PluginManager(strict=True, allow=("openai_compat",), deny=(), trace=False).load_entry_points()
        stack = Stack.build(parse_run_config(doc, source="run.yaml", env={}), pm)
        runner = web.AppRunner(create_app(stack))
        await runner.setup()  # starts the stack
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return stack, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


def chat(tag: str, name: str, delay: float) -> dict[str, Any]:
    text = f"[[script:{tag}]] [[delay:{delay}]] {name}"
    return {"model": "ok", "messages": [{"role": "user", "content": text}], "max_tokens": 4}


async def upstream_log(session: aiohttp.ClientSession, upstream: ServerProcess, tag: str) -> list[str]:
    async with session.get(f"{upstream.url}/_fake/log", params={"tag": tag}) as resp:
        return [entry["text"].rsplit(" ", 1)[-1] for entry in await resp.json()]


async def run_batch_and_one_interactive(
    stack: Stack, url: str, upstream: ServerProcess, batch_delay: float
) -> tuple[list[str], int]:
    """Four batch calls queued in-process, then one interactive HTTP request once the first batch call
    reached the upstream; the order the upstream saw them, and the interactive request's status."""
    tag = uuid.uuid4().hex
    router = stack.routers[Api.inference]

    async def batch_call(i: int) -> Any:
        request = OpenAIChatCompletionRequest.model_validate(chat(tag, f"batch{i}", batch_delay))
        return await router.openai_chat_completion(request)

    async with aiohttp.ClientSession() as session:
        with batch_work():  # the tasks copy the context: their calls are batch work
            batches = [asyncio.create_task(batch_call(i)) for i in range(4)]
        for _ in range(200):
            if await upstream_log(session, upstream, tag):
                break
            await asyncio.sleep(0.05)
        async with session.post(f"{url}/v1/chat/completions", json=chat(tag, "interactive", 0)) as resp:
            status = resp.status
            await resp.read()
        await asyncio.wait_for(asyncio.gather(*batches), 60)
        return await upstream_log(session, upstream, tag), status


async def test_an_interactive_request_is_served_before_queued_batch_calls(serve, upstream) -> None:
    stack, url = await serve({"max_concurrent": 1})
    order, status = await run_batch_and_one_interactive(stack, url, upstream, batch_delay=0.5)
    assert status == 200
    # batch0 held the only slot; the interactive request came after the other three batch calls were
    # queued, and went next.
    assert order == ["batch0", "interactive", "batch1", "batch2", "batch3"]


async def test_with_a_batch_share_an_interactive_request_waits_for_no_batch_call(serve, upstream) -> None:
    stack, url = await serve({"max_concurrent": 2, "batch_max_share": 0.5})
    order, status = await run_batch_and_one_interactive(stack, url, upstream, batch_delay=1.0)
    assert status == 200
    # Batch work runs one call at a time (half of two slots); the other slot was free for the client.
    assert order == ["batch0", "interactive", "batch1", "batch2", "batch3"]
    limiter_gate = stack.impls[Api.inference]["up"]._lamina_limiter.gate
    assert limiter_gate.in_flight == 0


async def test_without_limits_the_provider_is_called_directly(serve) -> None:
    stack, _url = await serve({})
    served = stack.impls[Api.inference]["up"]
    assert type(served) is type(stack.providers[Api.inference]["up"].impl)
    assert served is stack.providers[Api.inference]["up"].impl
