"""A request of n choices whose one choice fails stops the others (issue 10, item 3).

Against ``ollama_stub.py`` (no Ollama server can run here): of the two upstream calls of an n=2
request, the first goes to the stub's ``fault-slow`` model (it answers after 30 s) and the second
to ``fault-500``; the failure must cancel the slow call instead of leaving it running.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ollama_stub
import pytest
from aiohttp.test_utils import TestServer
from test_adapter import make_provider, model, url

from lamina.apis.inference import OpenAIChatCompletionRequest, OpenAICompletionRequest
from lamina.errors import UpstreamError


@pytest.fixture
async def slow_stub() -> Any:
    server = TestServer(ollama_stub.make_app(slow_seconds=30.0), host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


@pytest.mark.parametrize("shape", ["chat", "completion"])
async def test_a_failed_choice_cancels_the_other_choices(slow_stub: TestServer, shape: str) -> None:
    provider = await make_provider(url(slow_stub), timeout=60.0)
    real_call = provider.client.call
    outcomes: list[str] = []

    async def call(method: str, path: str, body: Any = None, **kwargs: Any) -> dict:
        tag = "fault-slow:latest" if not outcomes else "fault-500:latest"
        outcomes.append("started")
        try:
            return await real_call(method, path, {**body, "model": tag}, **kwargs)
        except asyncio.CancelledError:
            outcomes.append(f"{tag} cancelled")
            raise

    provider.client.call = call  # type: ignore[method-assign]
    try:
        if shape == "chat":
            request: Any = OpenAIChatCompletionRequest(
                model="x", messages=[{"role": "user", "content": "hi"}], n=2
            )
            coro = provider.openai_chat_completion(model(), request)
        else:
            request = OpenAICompletionRequest(model="x", prompt="hi", n=2)
            coro = provider.openai_completion(model(), request)
        with pytest.raises(UpstreamError, match="HTTP 500"):
            await asyncio.wait_for(coro, 20)
        assert "fault-slow:latest cancelled" in outcomes, outcomes
    finally:
        await provider.shutdown()
