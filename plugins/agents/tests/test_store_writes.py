"""How many writes a turn costs in the agents store: the turn is written after every step, so each
write there is paid once per step (7 times for a turn with 3 tool calls), on a real SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from lamina.apis.agents import Turn
from lamina.apis.inference import CompletionMessage
from lamina.storage.config import SqliteKVStoreConfig
from lamina.storage.kvstore import open_kvstore
from lamina_agents.store import COMPLETED, AgentsStore, TurnRecord


async def test_a_turn_written_again_writes_its_row_only_and_stays_readable_by_id(tmp_path: Path) -> None:
    kv = await open_kvstore(SqliteKVStoreConfig(db_path=str(tmp_path / "agents.db")))
    written: list[str] = []
    real_set = kv.set

    async def counting_set(key: str, value: str, expiration: datetime | None = None) -> None:
        written.append(key.split(":")[0])
        await real_set(key, value, expiration)

    kv.set = counting_set  # type: ignore[method-assign]
    try:
        store = AgentsStore(kv)
        turn = Turn(
            turn_id="t1",
            session_id="s1",
            input_messages=[],
            steps=[],
            output_message=CompletionMessage(content=""),
            started_at=datetime.now(UTC),
        )
        record = TurnRecord(key=await store.new_turn_key("s1", "t1"), turn=turn)
        await store.put_turn(record, new=True)
        assert written == ["turn", "turnid"]
        for _ in range(7):  # one write per step
            await store.put_turn(record)
        record.status = COMPLETED
        await store.put_turn(record)
        assert written == ["turn", "turnid"] + ["turn"] * 8
        stored = await store.get_turn("t1")
        assert stored is not None and stored.status == COMPLETED
        assert [r.turn.turn_id for r in await store.list_turns("s1")] == ["t1"]
    finally:
        await kv.close()
