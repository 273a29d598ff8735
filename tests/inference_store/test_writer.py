"""The background writer and the router's recording, in process: nothing waits for the database.

"Does not slow the response" is shown by construction, not by timing: the store's insert blocks on
an event that is only set after the request has returned.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from structlog.testing import capture_logs

from lamina.apis.inference import (
    GetChatCompletionRequest,
    ListChatCompletionsRequest,
    OpenAIChatCompletionRequest,
)
from lamina.apis.models import Model
from lamina.errors import BadRequestError, NotFoundError
from lamina.providers.openai_stream_assembly import StreamAssembler
from lamina.routers.inference import InferenceRouter
from lamina.storage.inference_store import (
    CompletionRecord,
    CompletionWriter,
    Page,
    record_from_completion,
)


class MemoryStore:
    """An in-memory stand-in for InferenceStore (the methods the writer and the router call), whose
    insert can be held on an event and can be told to fail."""

    def __init__(self) -> None:
        self.rows: dict[str, CompletionRecord] = {}
        self.batches: list[list[str]] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.fail_ids: set[str] = set()

    @property
    def where(self) -> str:
        return "memory store"

    async def initialize(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def insert(self, records: list[CompletionRecord]) -> None:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if any(r.id in self.fail_ids for r in records):
            raise RuntimeError("disk full")
        self.batches.append([r.id for r in records])
        self.rows.update({r.id: r for r in records})

    async def get(self, completion_id: str) -> dict[str, Any] | None:
        record = self.rows.get(completion_id)
        return record.stored() if record else None

    async def list(self, *, after=None, limit=20, order="desc", model=None) -> Page:
        rows = sorted(self.rows.values(), key=lambda r: (r.created, r.id), reverse=order == "desc")
        return Page([r.stored() for r in rows[:limit]], has_more=len(rows) > limit)


def record(cid: str) -> CompletionRecord:
    return CompletionRecord(cid, 1, "m", {"id": cid, "created": 1, "model": "m", "choices": []}, [])


# -- the writer --------------------------------------------------------------------------------


async def test_queued_records_are_written_in_batches() -> None:
    store = MemoryStore()
    store.gate = asyncio.Event()
    writer = CompletionWriter(store, batch_size=4).start()
    writer.submit(record("first"))
    await store.entered.wait()  # the writer holds "first" in a blocked insert
    for i in range(9):
        assert writer.submit(record(f"r{i}"))
    store.gate.set()
    await writer.close()
    assert store.batches == [["first"], ["r0", "r1", "r2", "r3"], ["r4", "r5", "r6", "r7"], ["r8"]]
    assert writer.stats.written == 10 and writer.stats.dropped == 0 and writer.pending == {}


async def test_a_full_queue_drops_the_record_with_a_warning_and_counts_it() -> None:
    store = MemoryStore()
    store.gate = asyncio.Event()
    writer = CompletionWriter(store, queue_size=2).start()
    writer.submit(record("in-flight"))
    await store.entered.wait()
    assert writer.submit(record("q1")) and writer.submit(record("q2"))
    with capture_logs() as logs:
        assert writer.submit(record("overflow")) is False
    assert writer.stats.dropped == 1
    warning = next(e for e in logs if e["event"] == "inference_store_record_dropped")
    assert warning["log_level"] == "warning" and warning["completion_id"] == "overflow"
    assert "queue is full" in warning["reason"]
    store.gate.set()
    await writer.close()
    assert set(store.rows) == {"in-flight", "q1", "q2"}


async def test_close_flushes_everything_queued() -> None:
    store = MemoryStore()
    writer = CompletionWriter(store, batch_size=3).start()
    for i in range(20):
        writer.submit(record(f"r{i}"))
    assert store.rows == {}  # nothing written synchronously
    await writer.close()
    assert len(store.rows) == 20 and writer.stats.written == 20
    with capture_logs() as logs:
        assert writer.submit(record("late")) is False  # after close: dropped, and said so
    assert logs[0]["event"] == "inference_store_record_dropped" and "closed" in logs[0]["reason"]
    await writer.close()  # idempotent


async def test_close_gives_up_after_the_flush_timeout_and_counts_the_loss() -> None:
    store = MemoryStore()
    store.gate = asyncio.Event()  # never set: the database hangs
    writer = CompletionWriter(store, flush_timeout=0.2).start()
    writer.submit(record("a"))
    writer.submit(record("b"))
    with capture_logs() as logs:
        await writer.close()
    assert any(e["event"] == "inference_store_flush_timed_out" for e in logs)
    assert writer.stats.dropped == 2 and store.rows == {}


async def test_a_failing_batch_is_retried_record_by_record() -> None:
    store = MemoryStore()
    store.gate = asyncio.Event()
    store.fail_ids = {"bad"}
    writer = CompletionWriter(store).start()
    writer.submit(record("first"))
    await store.entered.wait()
    for cid in ("a", "bad", "b"):
        writer.submit(record(cid))
    store.gate.set()
    with capture_logs() as logs:
        await writer.close()
    assert set(store.rows) == {"first", "a", "b"}
    assert writer.stats.failed == 1 and writer.stats.written == 3
    failed = next(e for e in logs if e["event"] == "inference_store_write_failed")
    assert failed["completion_id"] == "bad" and "disk full" in failed["error"]


# -- the stream assembler ----------------------------------------------------------------------


def _chunk(delta: dict, finish: str | None = None, index: int = 0, **top: Any) -> dict:
    return {
        "id": "chatcmpl-s",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "up",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        **top,
    }


def test_the_assembler_rebuilds_content_tool_calls_finish_reason_and_usage() -> None:
    a = StreamAssembler("my-model")
    a.add(_chunk({"role": "assistant", "content": ""}))
    a.add(_chunk({"content": "Hel"}))
    a.add(_chunk({"content": "lo"}))
    a.add(_chunk({"content": "B"}, index=1))
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    a.add(_chunk({"tool_calls": [call]}, index=1))
    a.add(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}, index=1))
    a.add(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}, index=1))
    a.add(_chunk({}, "stop"))
    a.add(_chunk({}, "tool_calls", index=1))
    a.add({"id": "chatcmpl-s", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}})
    rec = record_from_completion(a.completion(), "my-model", [{"role": "user", "content": "hi"}])
    assert (
        rec is not None and rec.id == "chatcmpl-s" and rec.created == 1700000000 and rec.model == "my-model"
    )
    doc = rec.completion
    assert doc["object"] == "chat.completion" and doc["model"] == "my-model"
    assert doc["usage"] == {"prompt_tokens": 5, "completion_tokens": 2}
    first, second = doc["choices"]
    assert first["message"] == {"role": "assistant", "content": "Hello"} and first["finish_reason"] == "stop"
    assert second["message"]["content"] == "B" and second["finish_reason"] == "tool_calls"
    assert second["message"]["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    assert rec.input_messages == [{"role": "user", "content": "hi"}]


def test_a_stream_without_an_id_is_not_recorded() -> None:
    a = StreamAssembler("m")
    a.add({"choices": [{"index": 0, "delta": {"content": "x"}}]})
    assert a.completion() is None


# -- the router --------------------------------------------------------------------------------

MODEL = Model(identifier="fast", provider_id="p", provider_resource_id="upstream-name")


class FakeModels:
    def __init__(self, provider: Any) -> None:
        self.provider = provider

    async def resolve_typed(self, model_id: str, model_type: str) -> tuple[Model, Any]:
        return MODEL, self.provider


class FakeProvider:
    def __init__(self) -> None:
        self.n = 0

    async def openai_chat_completion(self, model: Model, request: OpenAIChatCompletionRequest) -> Any:
        self.n += 1
        cid = f"chatcmpl-{self.n}"
        if request.stream:
            return self._stream(cid)
        return {
            "id": cid,
            "object": "chat.completion",
            "created": 1700000000 + self.n,
            "model": model.identifier,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
            ],
        }

    async def _stream(self, cid: str) -> Any:
        for piece in ("a", "b", "c"):
            yield _chunk({"content": piece}, id=cid, created=1700000100 + self.n)
        yield _chunk({}, "stop", id=cid)


def _request(stream: bool = False) -> OpenAIChatCompletionRequest:
    return OpenAIChatCompletionRequest(
        model="fast", messages=[{"role": "user", "content": "hi", "name": "bob"}], stream=stream
    )


async def _collect(stream: Any) -> list[Any]:
    return [c async for c in stream]


async def test_a_blocked_store_does_not_hold_the_response() -> None:
    store = MemoryStore()
    store.gate = asyncio.Event()
    router = InferenceRouter(FakeModels(FakeProvider()))
    router.completions = CompletionWriter(store).start()
    answer = await router.openai_chat_completion(_request())
    chunks = await _collect(await router.openai_chat_completion(_request(stream=True)))
    # Both requests are answered in full while the store's insert is still blocked.
    await store.entered.wait()
    assert answer["id"] == "chatcmpl-1" and len(chunks) == 4
    assert store.rows == {} and not store.gate.is_set()
    # Until written, a completion is still found by id.
    got = await router.get_chat_completion(GetChatCompletionRequest(completion_id="chatcmpl-2"))
    assert got.choices[0]["message"]["content"] == "abc"
    store.gate.set()
    await router.completions.close()
    assert set(store.rows) == {"chatcmpl-1", "chatcmpl-2"}


async def test_router_stores_both_kinds_and_serves_them() -> None:
    store = MemoryStore()
    router = InferenceRouter(FakeModels(FakeProvider()))
    router.completions = CompletionWriter(store).start()
    await router.openai_chat_completion(_request())
    await _collect(await router.openai_chat_completion(_request(stream=True)))
    await router.completions.close()
    router.completions = CompletionWriter(store).start()
    listed = await router.list_chat_completions(ListChatCompletionsRequest())
    body = listed.model_dump()
    assert body["object"] == "list" and body["has_more"] is False
    assert [d["id"] for d in body["data"]] == ["chatcmpl-2", "chatcmpl-1"]
    assert (body["first_id"], body["last_id"]) == ("chatcmpl-2", "chatcmpl-1")
    streamed = body["data"][0]
    assert streamed["model"] == "fast" and streamed["object"] == "chat.completion"
    assert streamed["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": "abc"},
        "finish_reason": "stop",
        "logprobs": None,
    }
    assert streamed["input_messages"] == [{"role": "user", "content": "hi", "name": "bob"}]
    with pytest.raises(NotFoundError) as info:
        await router.get_chat_completion(GetChatCompletionRequest(completion_id="chatcmpl-404"))
    assert "chatcmpl-404" in info.value.message and info.value.status == 404
    await router.completions.close()


async def test_an_abandoned_or_failed_stream_is_not_stored() -> None:
    store = MemoryStore()
    router = InferenceRouter(FakeModels(FakeProvider()))
    router.completions = CompletionWriter(store).start()
    stream = await router.openai_chat_completion(_request(stream=True))
    await anext(stream)
    await stream.aclose()  # the client went away
    await router.completions.close()
    assert store.rows == {} and router.completions.stats.written == 0


async def test_empty_listing_has_empty_ids() -> None:
    router = InferenceRouter(FakeModels(FakeProvider()))
    router.completions = CompletionWriter(MemoryStore()).start()
    listed = await router.list_chat_completions(ListChatCompletionsRequest())
    assert listed.model_dump() == {
        "data": [],
        "has_more": False,
        "first_id": "",
        "last_id": "",
        "object": "list",
    }
    await router.completions.close()


class SeeingProvider(FakeProvider):
    """Records the requests it is handed (what would go upstream)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []

    async def openai_chat_completion(self, model: Model, request: OpenAIChatCompletionRequest) -> Any:
        self.seen.append(request.model_dump(exclude_unset=True))
        return await super().openai_chat_completion(model, request)


async def test_store_false_keeps_a_completion_out_of_the_store_and_is_not_sent_upstream() -> None:
    store, provider = MemoryStore(), SeeingProvider()
    router = InferenceRouter(FakeModels(provider))
    router.completions = CompletionWriter(store).start()
    for stream in (False, True):
        hi = [{"role": "user", "content": "hi"}]
        request = OpenAIChatCompletionRequest.model_validate(
            {"model": "fast", "messages": hi, "stream": stream, "store": False}
        )
        answer = await router.openai_chat_completion(request)
        if stream:
            assert len(await _collect(answer)) == 4
    kept = OpenAIChatCompletionRequest.model_validate(
        {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "store": True}
    )
    await router.openai_chat_completion(kept)
    await router.completions.close()
    assert set(store.rows) == {"chatcmpl-3"}  # only the one that asked to be stored
    assert all("store" not in body for body in provider.seen)


async def test_a_store_that_is_not_a_boolean_is_a_400_naming_it() -> None:
    router = InferenceRouter(FakeModels(FakeProvider()))
    request = OpenAIChatCompletionRequest.model_validate(
        {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "store": "no"}
    )
    with pytest.raises(BadRequestError) as info:
        await router.openai_chat_completion(request)
    assert info.value.status == 400 and info.value.param == "store"
