"""Stored OpenAI responses: one SQL row per response, on SQLite (aiosqlite) or PostgreSQL (asyncpg).

The config is Llama Stack's SQL store config for an agents provider's ``responses_store``
(``type: sqlite`` with ``db_path``; ``type: postgres`` with host, port, db, user, password), read as
the inference store reads its own, with ``table_name`` defaulting to ``openai_responses`` (Llama
Stack's table). One table, no ORM::

    seq (autoincrement) PRIMARY KEY, id TEXT UNIQUE, created_at BIGINT, model TEXT,
    response TEXT (JSON: the response object), input TEXT (JSON: its input items),
    messages TEXT (JSON: the chat conversation after the run)
    index (created_at, seq), index (model, created_at, seq)

**Each row is self-contained: a continued chain is resolved at write time.** A response made with
``previous_response_id`` is stored with the previous response's input items and output items before
its own input (what ``input_items`` lists, as OpenAI and Llama Stack list it), and with the whole
chat conversation the model saw (``messages``, what the next ``previous_response_id`` continues).
So deleting a response is one row's delete and never breaks a response that continued it, a
continuation reads one row, and replicas writing the same table never coordinate. The cost is that a
chain of n responses stores its early items n times; a row is bounded by what the model accepts as
context, since the whole conversation is replayed to the model on every continuation anyway.

Listing pages by keyset on (created_at, seq): ``after`` names a response id, whose key is looked up,
and the page holds the rows strictly beyond it in the listing order. ``seq`` (assigned by the
database) orders responses created in the same second by when they were stored, so "newest first"
holds within a second too. Storing an id again replaces the row (and keeps its place).

Every write is one statement. On SQLite the store's single connection is shared by every coroutine,
so a write and its commit (or rollback) hold a lock: one coroutine's failed write can never roll
back another's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from lamina.apis.responses import (
    FileSearchCall,
    InputItem,
    InputItemList,
    ListResponsesResponse,
    ResponseObject,
    ResponseWithInput,
)
from lamina.errors import BadRequestError, NotFoundError
from lamina.storage.config import PostgresSqlStoreConfig, SqliteSqlStoreConfig, sql_store_config
from lamina.storage.sql_table import Backend, PostgresTable, SqliteTable, SqlTable, open_table

DEFAULT_TABLE = "openai_responses"
DEFAULT_DB_NAME = "responses_store.db"
Order = Literal["asc", "desc"]
INCLUDE_FILE_SEARCH_RESULTS = "file_search_call.results"

_INPUT_ITEMS = TypeAdapter(list[InputItem])


class SqliteResponsesStoreConfig(SqliteSqlStoreConfig):
    table_name: str = Field(default=DEFAULT_TABLE, description="Table holding the responses.")


class PostgresResponsesStoreConfig(PostgresSqlStoreConfig):
    table_name: str = Field(default=DEFAULT_TABLE, description="Table holding the responses.")


ResponsesStoreConfig = Annotated[
    SqliteResponsesStoreConfig | PostgresResponsesStoreConfig, Field(discriminator="type")
]


def responses_store_config(
    raw: Any, default_db: Path
) -> SqliteResponsesStoreConfig | PostgresResponsesStoreConfig:
    """Validate a ``responses_store`` section (None: SQLite at ``default_db``).

    Raises pydantic's ValidationError on a bad section; the caller names the run config file and key.
    """
    return sql_store_config(SqliteResponsesStoreConfig, PostgresResponsesStoreConfig, raw, default_db)


# -- records -----------------------------------------------------------------------------------


@dataclass
class StoredResponse:
    """One stored response: what ``get`` returns and what ``previous_response_id`` continues."""

    response: ResponseObject
    input_items: list[Any] = field(default_factory=list)  # InputItem models, ids assigned
    messages: list[dict[str, Any]] = field(default_factory=list)  # OpenAI chat messages

    def with_input(self) -> ResponseWithInput:
        """The response as the list route returns it (with its input items)."""
        return ResponseWithInput.model_validate(
            {**self.response.model_dump(by_alias=True), "input": self.input_items}
        )


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _dump_items(items: list[Any]) -> list[Any]:
    return [i.model_dump(mode="json", by_alias=True) if isinstance(i, BaseModel) else i for i in items]


def _record(response: str, input_items: str, messages: str) -> StoredResponse:
    return StoredResponse(
        ResponseObject.model_validate_json(response),
        _INPUT_ITEMS.validate_json(input_items),
        json.loads(messages),
    )


def strip_file_search_results(items: list[Any], include: list[str] | None) -> list[Any]:
    """``items`` with file search results dropped unless ``include`` asks for them (OpenAI's rule)."""
    if include and INCLUDE_FILE_SEARCH_RESULTS in include:
        return items
    return [
        i.model_copy(update={"results": None}) if isinstance(i, FileSearchCall) and i.results else i
        for i in items
    ]


def _not_found(response_id: str) -> NotFoundError:
    return NotFoundError(
        f"no stored response has id {response_id!r}: it was deleted, created with store=false, or "
        f"never existed; list the stored ones with GET /v1/openai/v1/responses",
        param="response_id",
    )


def _unknown_cursor(after: str) -> BadRequestError:
    return BadRequestError(
        f"after: no stored response has id {after!r}; pass the id of a listed response (the last_id "
        f"of the previous page)",
        param="after",
    )


# -- the store ---------------------------------------------------------------------------------


class ResponsesStore(SqlTable):
    """The responses table. Methods raise NotFoundError (404) / BadRequestError (400) for the caller's
    mistakes and StorageError when the database fails."""

    what = "responses store"

    def _schema_for(self, backend: Backend) -> list[str]:
        if backend == "sqlite":
            return self._schema("INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT")
        return self._schema("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "TEXT")

    def _schema(self, seq: str, id_type: str) -> list[str]:
        t = self.table
        return [
            f"CREATE TABLE IF NOT EXISTS {t} (seq {seq}, id {id_type} NOT NULL UNIQUE, "
            f"created_at BIGINT NOT NULL, model TEXT NOT NULL, response TEXT NOT NULL, "
            f"input TEXT NOT NULL, messages TEXT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {t}_created_seq ON {t} (created_at, seq)",
            f"CREATE INDEX IF NOT EXISTS {t}_model_created_seq ON {t} (model, created_at, seq)",
        ]

    async def store(
        self, response: ResponseObject, input_items: list[Any], messages: list[dict[str, Any]]
    ) -> None:
        """Store (or replace, by id) a response with every input item it was given (the continued
        chain's first) and the chat conversation after it (without the request's instructions)."""
        p = self._p
        await self._execute(
            f"INSERT INTO {self.table} (id, created_at, model, response, input, messages) "
            f"VALUES ({p(1)}, {p(2)}, {p(3)}, {p(4)}, {p(5)}, {p(6)}) ON CONFLICT (id) DO UPDATE SET "
            f"created_at = excluded.created_at, model = excluded.model, response = excluded.response, "
            f"input = excluded.input, messages = excluded.messages",
            [
                response.id,
                response.created_at,
                response.model,
                response.model_dump_json(by_alias=True),
                _dumps(_dump_items(input_items)),
                _dumps(messages),
            ],
        )

    async def get(self, response_id: str) -> StoredResponse:
        """The stored response; NotFoundError naming the id when there is none."""
        rows = await self._fetch(
            f"SELECT response, input, messages FROM {self.table} WHERE id = {self._p(1)}", [response_id]
        )
        if not rows:
            raise _not_found(response_id)
        return _record(*rows[0])

    async def delete(self, response_id: str) -> None:
        """Delete the response; NotFoundError when there is none. Responses that continued it keep
        their own copies of the conversation."""
        if await self._execute(f"DELETE FROM {self.table} WHERE id = {self._p(1)}", [response_id]) == 0:
            raise _not_found(response_id)

    async def list(
        self, *, after: str | None = None, limit: int = 50, model: str | None = None, order: Order = "desc"
    ) -> ListResponsesResponse:
        """Up to ``limit`` responses by creation in ``order`` (of one ``model``), after the response
        ``after``; each with its input items."""
        params: list[Any] = []
        conds: list[str] = []
        if model is not None:
            params.append(model)
            conds.append(f"model = {self._p(len(params))}")
        if after is not None:
            found = await self._fetch(
                f"SELECT created_at, seq FROM {self.table} WHERE id = {self._p(1)}", [after]
            )
            if not found:
                raise _unknown_cursor(after)
            params += list(found[0])
            op = "<" if order == "desc" else ">"
            conds.append(f"(created_at, seq) {op} ({self._p(len(params) - 1)}, {self._p(len(params))})")
        params.append(limit + 1)  # one more than asked tells whether there is a next page
        where = f" WHERE {' AND '.join(conds)}" if conds else ""
        direction = "DESC" if order == "desc" else "ASC"
        rows = await self._fetch(
            f"SELECT response, input, messages FROM {self.table}{where} "
            f"ORDER BY created_at {direction}, seq {direction} LIMIT {self._p(len(params))}",
            params,
        )
        data = [_record(*r).with_input() for r in rows[:limit]]
        return ListResponsesResponse(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            has_more=len(rows) > limit,
        )

    async def list_input_items(
        self,
        response_id: str,
        *,
        after: str | None = None,
        before: str | None = None,
        include: list[str] | None = None,
        limit: int = 20,
        order: Order = "desc",
    ) -> InputItemList:
        """A page of the items the response was given, in ``order`` (desc: the latest first), strictly
        after the item ``after`` and/or before the item ``before`` (item ids, in that order)."""
        items = (await self.get(response_id)).input_items
        if order == "desc":
            items = items[::-1]
        ids = [getattr(i, "id", None) for i in items]
        start, end = 0, len(items)
        for name, cursor in (("after", after), ("before", before)):
            if cursor is None:
                continue
            if cursor not in ids:
                raise BadRequestError(
                    f"{name}: response {response_id!r} has no input item with id {cursor!r}; pass the id of "
                    f"one of its listed input items",
                    param=name,
                )
            if name == "after":
                start = ids.index(cursor) + 1
            else:
                end = ids.index(cursor)
        window = items[start:end]
        page = strip_file_search_results(window[:limit], include)
        return InputItemList(
            data=page,
            first_id=getattr(page[0], "id", None) if page else None,
            last_id=getattr(page[-1], "id", None) if page else None,
            has_more=len(window) > limit,
        )


class SqliteResponsesStore(SqliteTable, ResponsesStore):
    pass


class PostgresResponsesStore(PostgresTable, ResponsesStore):
    pass


async def open_responses_store(
    config: SqliteResponsesStoreConfig | PostgresResponsesStoreConfig,
) -> ResponsesStore:
    """Create and initialise the store ``config.type`` names (table and indexes created if missing)."""
    return await open_table(SqliteResponsesStore, PostgresResponsesStore, config)
