"""The chat completions table, on SQLite and on a real PostgreSQL: records, keyset pagination, config."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError

from lamina.errors import BadRequestError
from lamina.storage.inference_store import (
    DEFAULT_DB_NAME,
    CompletionRecord,
    InferenceStore,
    PostgresInferenceStoreConfig,
    SqliteInferenceStoreConfig,
    inference_store_config,
    open_inference_store,
)


def completion(cid: str, created: int, model: str = "m1", text: str = "hi") -> CompletionRecord:
    doc = {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    return CompletionRecord(cid, created, model, doc, [{"role": "user", "content": f"say {text}"}])


async def test_insert_get_and_replace(store: InferenceStore) -> None:
    assert await store.get("nope") is None
    await store.insert([completion("c1", 100, text="héllo ✓")])
    got = await store.get("c1")
    assert got["id"] == "c1" and got["created"] == 100 and got["model"] == "m1"
    assert got["choices"][0]["message"]["content"] == "héllo ✓"
    assert got["usage"]["total_tokens"] == 4
    assert got["input_messages"] == [{"role": "user", "content": "say héllo ✓"}]
    # An id seen again (an upstream that reuses ids) replaces the record.
    await store.insert([completion("c1", 101, model="m2", text="again")])
    got = await store.get("c1")
    assert got["created"] == 101 and got["model"] == "m2"
    assert got["choices"][0]["message"]["content"] == "again"
    page = await store.list()
    assert [r["id"] for r in page.rows] == ["c1"]


async def test_a_batch_is_one_insert_and_ids_may_repeat_within_it(store: InferenceStore) -> None:
    await store.insert([completion(f"b{i}", 10 + i) for i in range(50)] + [completion("b0", 9, text="last")])
    page = await store.list(limit=100, order="asc")
    assert len(page.rows) == 50 and not page.has_more
    assert page.rows[0]["id"] == "b0" and page.rows[0]["choices"][0]["message"]["content"] == "last"


async def _fill(store: InferenceStore) -> list[CompletionRecord]:
    # Several completions share a second: the id must break the tie, or pages would skip/repeat rows.
    records = [
        completion(f"id-{i:02d}", 1000 + i // 3, model="m1" if i % 2 == 0 else "m2") for i in range(13)
    ]
    shuffled = records[5:] + records[:5]
    await store.insert(shuffled[:7])
    await store.insert(shuffled[7:])
    return records


def _key(r: CompletionRecord) -> tuple[int, str]:
    return (r.created, r.id)


async def test_default_listing_is_newest_first_with_20_a_page(store: InferenceStore) -> None:
    records = await _fill(store)
    page = await store.list()
    assert [r["id"] for r in page.rows] == [r.id for r in sorted(records, key=_key, reverse=True)]
    assert page.has_more is False


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("limit", [1, 2, 5, 13, 100])
async def test_pages_walk_every_row_once_in_order(store: InferenceStore, order: str, limit: int) -> None:
    records = await _fill(store)
    expected = [r.id for r in sorted(records, key=_key, reverse=order == "desc")]
    seen: list[str] = []
    after = None
    while True:
        page = await store.list(after=after, limit=limit, order=order)
        assert len(page.rows) <= limit
        seen += [r["id"] for r in page.rows]
        if not page.has_more:
            break
        assert len(page.rows) == limit
        after = page.rows[-1]["id"]
    assert seen == expected


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_model_filter_pages_within_the_model(store: InferenceStore, order: str) -> None:
    records = await _fill(store)
    expected = [r.id for r in sorted(records, key=_key, reverse=order == "desc") if r.model == "m2"]
    first = await store.list(model="m2", limit=4, order=order)
    assert [r["id"] for r in first.rows] == expected[:4] and first.has_more
    rest = await store.list(model="m2", after=first.rows[-1]["id"], limit=4, order=order)
    assert [r["id"] for r in rest.rows] == expected[4:] and not rest.has_more
    assert all(r["model"] == "m2" for r in first.rows + rest.rows)
    assert (await store.list(model="unknown")).rows == []


async def test_has_more_is_exact_at_the_boundary(store: InferenceStore) -> None:
    await _fill(store)
    assert (await store.list(limit=13)).has_more is False
    assert (await store.list(limit=12)).has_more is True
    last = (await store.list(order="asc", limit=13)).rows[-1]["id"]
    page = await store.list(order="asc", after=last)
    assert page.rows == [] and page.has_more is False


async def test_an_unknown_cursor_is_a_400_naming_after(store: InferenceStore) -> None:
    await _fill(store)
    with pytest.raises(BadRequestError) as info:
        await store.list(after="chatcmpl-missing")
    assert info.value.param == "after" and "chatcmpl-missing" in info.value.message


async def test_concurrent_reads_during_writes(store: InferenceStore) -> None:
    async def write(n: int) -> None:
        await store.insert([completion(f"w{n}-{i}", 5000 + i) for i in range(10)])

    async def read() -> int:
        return len((await store.list(limit=100)).rows)

    results = await asyncio.gather(*(write(n) for n in range(5)), *(read() for _ in range(5)))
    assert all(0 <= r <= 50 for r in results[5:])
    assert len((await store.list(limit=100)).rows) == 50


async def test_the_table_survives_reopening(store_section: dict, tmp_path: Path) -> None:
    config = inference_store_config(store_section, tmp_path)
    first = await open_inference_store(config)
    try:
        await first.insert([completion("keep", 7)])
    finally:
        await first.close()
    second = await open_inference_store(config)
    try:
        assert (await second.get("keep"))["created"] == 7
    finally:
        await second.close()


async def test_the_owner_is_kept_in_the_completions_row(store: InferenceStore) -> None:
    """Access control reads a stored completion's owner from its row (no separate owner record); the
    completion as the API returns it does not show it."""
    alice = {"principal": "alice", "attributes": {"roles": ["user"]}}
    record = completion("own", 5)
    record.owner = alice
    await store.insert([record, completion("nobody", 6)])
    assert await store.owner_of("own") == alice
    assert await store.owner_of("nobody") is None  # made with auth off
    assert await store.owner_of("missing") is None
    assert "owner" not in await store.get("own")
    assert all("owner" not in row for row in (await store.list()).rows)
    replaced = completion("own", 7)
    replaced.owner = {"principal": "bob", "attributes": {}}
    await store.insert([replaced])  # an upstream reusing an id: the new record, with its owner
    assert (await store.owner_of("own"))["principal"] == "bob"


async def test_a_table_made_before_the_owner_column_gets_it_on_opening(
    store_section: dict, tmp_path: Path
) -> None:
    """A store written by an older Lamina (no owner column) opens, keeps its rows (without an owner)
    and stores owners from then on; opening again changes nothing."""
    config = inference_store_config(store_section, tmp_path)
    old = await open_inference_store(config)
    try:
        await old._execute(f"ALTER TABLE {old.table} DROP COLUMN owner", [])
        await old._execute(
            f"INSERT INTO {old.table} (id, created, model, completion, input_messages) "
            f"VALUES ({', '.join(old._p(i) for i in range(1, 6))})",
            ["old", 1, "m1", '{"id": "old"}', "[]"],
        )
    finally:
        await old.close()
    for _ in range(2):
        reopened = await open_inference_store(config)
        try:
            assert (await reopened.get("old"))["id"] == "old"
            assert await reopened.owner_of("old") is None
            record = completion("new", 2)
            record.owner = {"principal": "alice", "attributes": {}}
            await reopened.insert([record])
            assert (await reopened.owner_of("new"))["principal"] == "alice"
        finally:
            await reopened.close()


# -- config ------------------------------------------------------------------------------------


def test_no_section_means_sqlite_in_the_state_dir(tmp_path: Path) -> None:
    config = inference_store_config(None, tmp_path)
    assert isinstance(config, SqliteInferenceStoreConfig)
    assert config.db_path == str(tmp_path / DEFAULT_DB_NAME)
    assert inference_store_config({"type": "sqlite"}, tmp_path).db_path == str(tmp_path / DEFAULT_DB_NAME)


def test_llama_stack_sections_validate(tmp_path: Path) -> None:
    sqlite = inference_store_config({"type": "sqlite", "db_path": "/x/inference_store.db"}, tmp_path)
    assert sqlite.db_path == "/x/inference_store.db"
    pg = inference_store_config(
        {"type": "postgres", "host": "db", "port": 5433, "db": "ls", "user": "u", "password": "p"}, tmp_path
    )
    assert isinstance(pg, PostgresInferenceStoreConfig) and (pg.host, pg.port, pg.table_name) == (
        "db",
        5433,
        "chat_completions",
    )


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"type": "mysql"}, "type"),
        ({"type": "postgres"}, "user"),
        ({"type": "postgres", "user": "u", "port": 0}, "port"),
        ({"type": "sqlite", "table_name": "x; drop"}, "table_name"),
        ({"type": "sqlite", "db_pth": "typo"}, "db_pth"),
    ],
)
def test_bad_sections_name_the_field(section: dict, field: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        inference_store_config(section, tmp_path)
    assert field in str(info.value)


async def test_a_bad_section_stops_start_up_naming_the_file_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lamina.config import parse_run_config
    from lamina.errors import ConfigError
    from lamina.plugins import load_plugin_manager
    from lamina.stack import Stack

    monkeypatch.setenv("LAMINA_HOME", str(tmp_path))
    doc = {
        "version": 2,
        "providers": {
            "inference": [
                {
                    "provider_id": "v",
                    "provider_type": "remote::vllm",
                    "config": {"url": "http://127.0.0.1:9/v1"},
                }
            ]
        },
        "inference_store": {"type": "postgres", "host": "db"},
    }
    stack = Stack.build(parse_run_config(doc, source="run.yaml", env={}), load_plugin_manager())
    with pytest.raises(ConfigError) as info:
        await stack.start()
    await stack.shutdown()
    assert str(info.value) == "run.yaml: inference_store.user: required, but missing"
