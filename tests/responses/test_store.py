"""The responses table on SQLite and on a real PostgreSQL: records, keyset pages, input items, concurrency.

Listings and input item pages are checked against the openai SDK's own types (what a client parses).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from openai.types.responses import Response as OpenAIResponse
from openai.types.responses import ResponseItemList
from pydantic import ValidationError

from lamina.apis.responses import (
    FileSearchCall,
    FileSearchResult,
    FunctionCall,
    FunctionCallOutput,
    InputMessage,
    McpApprovalRequest,
    McpCall,
    OutputMessage,
    OutputText,
    ResponseObject,
    Usage,
)
from lamina.errors import BadRequestError, NotFoundError
from lamina.storage.kvstore import StorageError
from lamina.storage.responses_store import (
    PostgresResponsesStoreConfig,
    ResponsesStore,
    SqliteResponsesStoreConfig,
    open_responses_store,
    responses_store_config,
)


def response(rid: str, created_at: int, model: str = "m1", text: str = "Paris.") -> ResponseObject:
    return ResponseObject(
        id=rid,
        created_at=created_at,
        model=model,
        status="completed",
        output=[
            McpCall(
                id=f"mcp_{rid}", server_label="geo", name="capital", arguments='{"c":"FR"}', output="Paris"
            ),
            OutputMessage(id=f"msg_out_{rid}", content=[OutputText(text=text)]),
        ],
        text={"format": {"type": "json_schema", "name": "a", "schema": {"type": "object"}}},
        usage=Usage(input_tokens=7, output_tokens=3, total_tokens=10),
    )


def inputs(rid: str, n: int = 1) -> list:
    return [
        InputMessage(id=f"msg_{rid}_{i}", role="user", content=[{"type": "input_text", "text": f"q{i}"}])
        for i in range(n)
    ]


MESSAGES = [{"role": "user", "content": "q0"}, {"role": "assistant", "content": "Paris."}]


async def test_store_get_replace_and_delete(store: ResponsesStore) -> None:
    with pytest.raises(NotFoundError, match=r"'resp_nope'.*store=false"):
        await store.get("resp_nope")
    await store.store(response("resp_1", 100, text="héllo ✓"), inputs("r1", 2), MESSAGES)
    got = await store.get("resp_1")
    assert got.response == response("resp_1", 100, text="héllo ✓")
    assert got.response.text.format.json_schema == {"type": "object"}  # the "schema" alias round-trips
    assert [i.id for i in got.input_items] == ["msg_r1_0", "msg_r1_1"]
    assert got.messages == MESSAGES
    # the same id again replaces the row
    await store.store(response("resp_1", 101, model="m2", text="again"), inputs("r1b"), [])
    got = await store.get("resp_1")
    assert got.response.model == "m2" and got.response.output[1].content[0].text == "again"
    assert [i.id for i in got.input_items] == ["msg_r1b_0"] and got.messages == []
    assert [r.id for r in (await store.list()).data] == ["resp_1"]
    await store.delete("resp_1")
    with pytest.raises(NotFoundError):
        await store.get("resp_1")
    with pytest.raises(NotFoundError, match="resp_1"):
        await store.delete("resp_1")


async def test_a_continuation_keeps_its_conversation_when_what_it_continued_is_deleted(
    store: ResponsesStore,
) -> None:
    first = response("resp_a", 100)
    await store.store(first, inputs("a"), MESSAGES)
    previous = await store.get("resp_a")
    # the chain is resolved at write time: the continuation stores the earlier items and conversation
    chained = [*previous.input_items, *previous.response.output, *inputs("b")]
    conversation = [*previous.messages, {"role": "user", "content": "q0 again"}]
    await store.store(
        response("resp_b", 101).model_copy(update={"previous_response_id": "resp_a"}), chained, conversation
    )
    await store.delete("resp_a")
    kept = await store.get("resp_b")
    assert kept.response.previous_response_id == "resp_a"
    assert kept.messages == conversation
    page = await store.list_input_items("resp_b", order="asc")
    assert [i.id for i in page.data] == ["msg_a_0", "mcp_resp_a", "msg_out_resp_a", "msg_b_0"]


async def _fill(store: ResponsesStore) -> list[str]:
    """13 responses, three per second (same created_at): stored order breaks the ties."""
    ids = []
    for i in range(13):
        rid = f"resp_{12 - i:02d}"  # ids sort against the stored order: ties must not follow the id
        await store.store(response(rid, 1000 + i // 3, model="m1" if i % 2 == 0 else "m2"), inputs(rid), [])
        ids.append(rid)
    return ids


async def test_listing_is_newest_first_and_same_second_responses_keep_their_stored_order(
    store: ResponsesStore,
) -> None:
    ids = await _fill(store)
    page = await store.list()
    assert [r.id for r in page.data] == ids[::-1]
    assert page.has_more is False and page.first_id == ids[-1] and page.last_id == ids[0]
    assert [r.id for r in (await store.list(order="asc")).data] == ids
    # each listed response carries its input and reads as an openai Response
    theirs = OpenAIResponse.model_validate(page.data[0].model_dump(mode="json", by_alias=True))
    assert theirs.output_text == "Paris." and theirs.usage.total_tokens == 10
    assert [i.id for i in page.data[0].input] == [f"msg_{ids[-1]}_0"]


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("model", [None, "m2"])
async def test_pages_cover_every_response_once(store: ResponsesStore, order: str, model: str | None) -> None:
    ids = await _fill(store)
    expected = [rid for i, rid in enumerate(ids) if model is None or (i % 2 == 1)]
    expected = expected if order == "asc" else expected[::-1]
    seen: list[str] = []
    after = None
    while True:
        page = await store.list(after=after, limit=4, order=order, model=model)
        seen += [r.id for r in page.data]
        assert all(r.model == (model or r.model) for r in page.data)
        if not page.has_more:
            break
        assert len(page.data) == 4 and page.last_id == page.data[-1].id
        after = page.last_id
    assert seen == expected


async def test_an_unknown_cursor_is_a_400_naming_it(store: ResponsesStore) -> None:
    await _fill(store)
    with pytest.raises(BadRequestError, match="after: no stored response has id 'resp_zz'") as err:
        await store.list(after="resp_zz")
    assert err.value.param == "after"


async def _with_items(store: ResponsesStore) -> list[str]:
    items = [
        InputMessage(id="msg_1", role="system", content=[{"type": "input_text", "text": "be brief"}]),
        InputMessage(id="msg_2", role="user", content=[{"type": "input_text", "text": "Message A"}]),
        OutputMessage(id="msg_3", content=[OutputText(text="ok")]),
        FunctionCall(id="fc_4", call_id="call_1", name="f", arguments="{}", status="completed"),
        FunctionCallOutput(id="fco_5", call_id="call_1", output="42", status="completed"),
        FileSearchCall(
            id="fs_6",
            queries=["q"],
            results=[FileSearchResult(file_id="file-1", filename="a.txt", text="passage", score=0.5)],
        ),
        McpApprovalRequest(id="mcpr_7", server_label="geo", name="capital", arguments="{}"),
        InputMessage(id="msg_8", role="user", content=[{"type": "input_text", "text": "Message C"}]),
    ]
    await store.store(response("resp_i", 5), items, [])
    return [i.id for i in items]


async def test_input_items_page_both_ways_and_read_in_the_openai_sdk(store: ResponsesStore) -> None:
    ids = await _with_items(store)
    page = await store.list_input_items("resp_i")  # OpenAI's default: the latest first, 20 a page
    assert [i.id for i in page.data] == ids[::-1] and page.has_more is False
    theirs = ResponseItemList.model_validate(page.model_dump(mode="json", by_alias=True))
    assert [i.id for i in theirs.data] == ids[::-1]
    assert theirs.first_id == "msg_8" and theirs.last_id == "msg_1"

    asc = await store.list_input_items("resp_i", order="asc", limit=3)
    assert [i.id for i in asc.data] == ids[:3] and asc.has_more
    nxt = await store.list_input_items("resp_i", order="asc", limit=3, after=asc.last_id)
    assert [i.id for i in nxt.data] == ids[3:6] and nxt.has_more
    last = await store.list_input_items("resp_i", order="asc", limit=3, after=nxt.last_id)
    assert [i.id for i in last.data] == ids[6:] and not last.has_more
    before = await store.list_input_items("resp_i", order="desc", before="fc_4")
    assert [i.id for i in before.data] == ["msg_8", "mcpr_7", "fs_6", "fco_5"]
    window = await store.list_input_items("resp_i", order="asc", after="msg_2", before="fco_5")
    assert [i.id for i in window.data] == ["msg_3", "fc_4"]


async def test_file_search_results_are_listed_only_when_included(store: ResponsesStore) -> None:
    await _with_items(store)
    plain = await store.list_input_items("resp_i", order="asc")
    assert plain.data[5].results is None
    asked = await store.list_input_items("resp_i", order="asc", include=["file_search_call.results"])
    assert asked.data[5].results[0].text == "passage"


async def test_bad_input_item_cursors_name_the_field(store: ResponsesStore) -> None:
    await _with_items(store)
    with pytest.raises(BadRequestError, match="after: response 'resp_i' has no input item with id 'x'"):
        await store.list_input_items("resp_i", after="x")
    with pytest.raises(BadRequestError, match="before:") as err:
        await store.list_input_items("resp_i", before="y")
    assert err.value.param == "before"
    with pytest.raises(NotFoundError, match="resp_none"):
        await store.list_input_items("resp_none")


async def test_concurrent_writers_deleters_and_readers(store: ResponsesStore) -> None:
    await asyncio.gather(*(store.store(response(f"resp_{i:03d}", i), inputs(f"c{i}"), []) for i in range(60)))
    results = await asyncio.gather(
        *(store.delete(f"resp_{i:03d}") for i in range(0, 60, 2)),
        *(store.store(response(f"resp_{i:03d}", 100 + i), inputs(f"d{i}"), []) for i in range(60, 90)),
        *(store.list(limit=100) for _ in range(10)),
        *(store.get(f"resp_{i:03d}") for i in range(1, 60, 2)),
    )
    assert all(r.response.id == f"resp_{2 * k + 1:03d}" for k, r in enumerate(results[-30:]))
    page = await store.list(limit=100, order="asc")
    assert [r.id for r in page.data] == [f"resp_{i:03d}" for i in [*range(1, 60, 2), *range(60, 90)]]


async def test_a_failed_write_never_undoes_a_concurrent_one(store: ResponsesStore) -> None:
    """Two coroutines share SQLite's one connection: a failing statement's rollback must not take a
    concurrent write (already executed, not yet committed) with it."""

    async def broken(i: int) -> None:
        with pytest.raises(StorageError):  # NOT NULL fails: this write rolls back
            await store._execute(f"INSERT INTO {store.table} (id) VALUES ({store._p(1)})", [f"bad_{i}"])

    writes = [store.store(response(f"resp_{i:03d}", i), inputs(f"w{i}"), []) for i in range(40)]
    # each failing statement runs just before a write: its rollback comes before that write's commit
    await asyncio.gather(
        *(w for pair in zip((broken(i) for i in range(40)), writes, strict=True) for w in pair)
    )
    page = await store.list(limit=100)
    assert len(page.data) == 40


async def test_two_stores_on_one_database_are_two_replicas(store_section: dict, tmp_path: Path) -> None:
    config = responses_store_config(store_section, tmp_path / "default.db")
    a, b = await open_responses_store(config), await open_responses_store(config)
    try:
        await asyncio.gather(
            *(
                s.store(response(f"resp_{i:03d}", i), inputs(f"x{i}"), [])
                for i in range(40)
                for s in [(a, b)[i % 2]]
            )
        )
        assert len((await a.list(limit=100)).data) == 40
        await b.delete("resp_000")
        with pytest.raises(NotFoundError):
            await a.get("resp_000")
    finally:
        await a.close()
        await b.close()


def test_config_is_llama_stacks_sql_store_section(tmp_path: Path) -> None:
    default = responses_store_config(None, tmp_path / "responses_store.db")
    assert isinstance(default, SqliteResponsesStoreConfig)
    assert (
        default.db_path == str(tmp_path / "responses_store.db") and default.table_name == "openai_responses"
    )
    pg = responses_store_config(
        {"type": "postgres", "host": "127.0.0.1", "db": "x", "user": "u", "password": "p"}, tmp_path
    )
    assert isinstance(pg, PostgresResponsesStoreConfig) and pg.table_name == "openai_responses"
    with pytest.raises(ValidationError, match="table_name"):
        responses_store_config({"type": "sqlite", "table_name": "x; drop"}, tmp_path)
    with pytest.raises(ValidationError, match="sqlite"):
        responses_store_config({"type": "mongo"}, tmp_path)


async def test_an_unreachable_postgres_names_the_store(tmp_path: Path) -> None:
    from lamina.testing.processes import free_port

    config = responses_store_config(
        {"type": "postgres", "host": "127.0.0.1", "port": free_port(), "user": "u"}, tmp_path
    )
    with pytest.raises(StorageError, match=r"cannot open the postgres responses store u@127\.0\.0\.1"):
        await open_responses_store(config)
