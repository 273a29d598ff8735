"""Batch inference in process: input order, bounded concurrency, one failing item fails the batch, every
item a batch call (the line executor, lamina.routers.batch_lines)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from pydantic import ValidationError

from lamina.apis.common import content_to_text
from lamina.apis.inference import (
    MAX_BATCH_SIZE,
    BatchChatCompletionRequest,
    BatchCompletionRequest,
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionMessage,
    CompletionRequest,
    CompletionResponse,
)
from lamina.apis.models import Model
from lamina.errors import UpstreamError
from lamina.request_context import WORK_CLASS
from lamina.routers.inference import BATCH_CONCURRENCY, InferenceRouter

MODEL = Model(identifier="m", provider_id="p")


class Models:
    def __init__(self, provider: Any) -> None:
        self.provider = provider

    async def resolve_typed(self, model_id: str, model_type: str) -> tuple[Model, Any]:
        return MODEL, self.provider


class EchoProvider:
    """Answers each item with its own text after a random delay; tracks concurrency."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.fail_on = fail_on
        self.active = 0
        self.peak = 0
        self.requests: list[Any] = []
        self.cancelled = 0
        self.work_classes: list[str] = []

    async def _work(self, text: str) -> None:
        self.work_classes.append(WORK_CLASS.get())
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(random.uniform(0, 0.01) if text != "slow" else 10)
            if text == self.fail_on:
                raise UpstreamError("p", "upstream exploded", upstream_status=500)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.active -= 1

    async def chat_completion(self, model: Model, request: ChatCompletionRequest) -> ChatCompletionResponse:
        self.requests.append(request)
        text = content_to_text(request.messages[-1].content)
        await self._work(text)
        return ChatCompletionResponse(completion_message=CompletionMessage(content=f"re: {text}"))

    async def completion(self, model: Model, request: CompletionRequest) -> CompletionResponse:
        self.requests.append(request)
        text = content_to_text(request.content)
        await self._work(text)
        return CompletionResponse(content=f"re: {text}", stop_reason="end_of_turn")


async def test_chat_batch_results_are_in_input_order_with_bounded_concurrency() -> None:
    provider = EchoProvider()
    router = InferenceRouter(Models(provider))
    request = BatchChatCompletionRequest(
        model_id="m",
        messages_batch=[[{"role": "user", "content": f"q{i}"}] for i in range(40)],
        sampling_params={"max_tokens": 5},
        tool_config={"tool_choice": "none"},
    )
    answer = await router.batch_chat_completion(request)
    assert [r.completion_message.content for r in answer.batch] == [f"re: q{i}" for i in range(40)]
    assert 1 < provider.peak <= BATCH_CONCURRENCY
    # Every item is a non-streamed request carrying the batch's shared fields.
    assert all(r.stream is False and r.sampling_params.max_tokens == 5 for r in provider.requests)
    assert all(r.tool_config.tool_choice == "none" for r in provider.requests)


async def test_completion_batch_results_are_in_input_order() -> None:
    provider = EchoProvider()
    router = InferenceRouter(Models(provider), batch_concurrency=3)
    request = BatchCompletionRequest(model_id="m", content_batch=[f"c{i}" for i in range(20)])
    answer = await router.batch_completion(request)
    assert [r.content for r in answer.batch] == [f"re: c{i}" for i in range(20)]
    assert provider.peak <= 3
    assert all(isinstance(r, CompletionRequest) and r.stream is False for r in provider.requests)


async def test_batch_items_are_batch_work_and_the_caller_stays_interactive() -> None:
    """Provider limits serve interactive calls first: a batch's items must say they are batch work."""
    provider = EchoProvider()
    router = InferenceRouter(Models(provider), batch_concurrency=4)
    chat = [[{"role": "user", "content": f"q{i}"}] for i in range(6)]
    await router.batch_chat_completion(BatchChatCompletionRequest(model_id="m", messages_batch=chat))
    await router.batch_completion(BatchCompletionRequest(model_id="m", content_batch=["a", "b", "c"]))
    assert provider.work_classes == ["batch"] * 9
    assert WORK_CLASS.get() == "interactive"
    await router.chat_completion(ChatCompletionRequest(model_id="m", messages=chat[0]))
    assert provider.work_classes[-1] == "interactive"


async def test_a_failing_item_fails_the_batch_with_its_index_and_status() -> None:
    provider = EchoProvider(fail_on="q5")
    router = InferenceRouter(Models(provider))
    batch = [[{"role": "user", "content": f"q{i}"}] for i in range(10)]
    batch[7] = [{"role": "user", "content": "slow"}]
    with pytest.raises(UpstreamError) as info:
        await router.batch_chat_completion(BatchChatCompletionRequest(model_id="m", messages_batch=batch))
    assert info.value.status == 502
    assert info.value.message.startswith("messages_batch[5]: provider 'p': upstream exploded")
    assert provider.cancelled >= 1 and provider.active == 0  # the slow item was cancelled, not awaited


async def test_an_unexpected_error_becomes_a_500_with_the_index() -> None:
    class Broken(EchoProvider):
        async def completion(self, model: Model, request: CompletionRequest) -> CompletionResponse:
            if request.content == "boom":
                raise KeyError("choices")
            return await super().completion(model, request)

    router = InferenceRouter(Models(Broken()))
    with pytest.raises(Exception) as info:
        await router.batch_completion(BatchCompletionRequest(model_id="m", content_batch=["a", "boom"]))
    assert info.value.status == 500 and info.value.message.startswith(
        "content_batch[1]: internal error: KeyError"
    )


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (
            BatchCompletionRequest,
            {"model_id": "m", "content_batch": ["x"] * (MAX_BATCH_SIZE + 1)},
            "content_batch",
        ),
        (BatchCompletionRequest, {"model_id": "m", "content_batch": []}, "content_batch"),
        (
            BatchChatCompletionRequest,
            {"model_id": "m", "messages_batch": [[{"role": "user", "content": "x"}]] * (MAX_BATCH_SIZE + 1)},
            "messages_batch",
        ),
        (BatchChatCompletionRequest, {"model_id": "m", "messages_batch": [[]]}, "messages_batch"),
    ],
)
def test_batch_size_limits_name_the_field(model: type, body: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate(body)
    assert info.value.errors()[0]["loc"][0] == field
