"""What one SQLite KV operation costs in hand-offs to aiosqlite's thread.

Every hand-off is a queue put, a wake-up of the thread and a wake-up of the event loop (a self-pipe
write): about 30-100 µs of CPU each on the 2-core test VM, more than the query. An agent turn reads
the agent, the session and the session's turns before it runs, so a read is paid several times per
request. The real store, counted at ``aiosqlite.Connection._execute``, where every operation of the
connection and its cursors goes to the thread.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lamina.storage.config import SqliteKVStoreConfig
from lamina.storage.sqlite import SqliteKVStore


async def test_a_read_is_one_hand_off_to_the_sqlite_thread(tmp_path: Path) -> None:
    store = SqliteKVStore(SqliteKVStoreConfig(db_path=str(tmp_path / "kv.db")))
    await store.initialize()
    try:
        for key in ("a:1", "a:2", "b:1"):
            await store.set(key, key.upper())
        conn = store.conn
        real = conn._execute
        handoffs: list[str] = []

        async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
            handoffs.append(getattr(fn, "__name__", repr(fn)))
            return await real(fn, *args, **kwargs)

        conn._execute = counting  # type: ignore[method-assign]
        assert await store.get("a:2") == "A:2"
        assert len(handoffs) == 1, handoffs
        assert await store.get("missing") is None
        assert len(handoffs) == 2, handoffs
        handoffs.clear()
        assert await store.items_in_range("a:", "a:\xff") == [("a:1", "A:1"), ("a:2", "A:2")]
        assert len(handoffs) == 1, handoffs
        # A write is one statement on an autocommit connection: one hand-off, no commit() after it
        # (a request quota increments once per request).
        handoffs.clear()
        await store.set("c:1", "C")
        assert len(handoffs) == 1, handoffs
        handoffs.clear()
        assert await store.increment("n", 2, datetime.now(UTC) + timedelta(hours=1)) == 2
        assert len(handoffs) == 1, handoffs
    finally:
        await store.close()
