"""Agents, sessions and turns in the provider's KV store (``persistence_store``).

Keys (values are JSON):

- ``agent:<agent_id>``: the ``Agent``;
- ``session:<agent_id>:<session_id>``: ``{session_id, session_name, started_at}``;
- ``turn:<session_id>:<seq>:<turn_id>``: a ``TurnRecord``, ``seq`` zero-padded so a prefix scan returns
  a session's turns in order; ``turnid:<turn_id>`` points at it.

A turn is written when it starts (``status`` running), after every step, and when it ends (completed,
awaiting_input or failed), so its steps are readable while it runs and a crash leaves it on disk;
``fail_interrupted`` marks such turns failed when the provider starts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from lamina.apis.agents import Agent, Turn
from lamina.storage.kvstore import KVStore

RUNNING, AWAITING, COMPLETED, FAILED = "running", "awaiting_input", "completed", "failed"


class SessionRecord(BaseModel):
    session_id: str
    session_name: str
    started_at: datetime


class TurnRecord(BaseModel):
    """A turn as stored: the wire ``Turn`` plus what the loop needs to continue or explain it."""

    key: str = ""
    turn: Turn
    status: str = RUNNING
    error: str | None = None
    transcript: list[dict[str, Any]] = Field(default_factory=list)  # OpenAI messages the turn added
    iterations_done: int = 0
    pending_step_id: str | None = None  # the tool_execution step client tools' results complete
    pending_calls: list[dict[str, Any]] = Field(default_factory=list)
    toolgroups: list[Any] | None = None  # the turn's own tool groups and tool_config (a resume uses them)
    tool_config: dict[str, Any] | None = None


def _end(prefix: str) -> str:
    return prefix + "\xff"


class AgentsStore:
    def __init__(self, kv: KVStore) -> None:
        self.kv = kv

    # -- agents ------------------------------------------------------------------------------------

    async def put_agent(self, agent: Agent) -> None:
        await self.kv.set(f"agent:{agent.agent_id}", agent.model_dump_json())

    async def get_agent(self, agent_id: str) -> Agent | None:
        raw = await self.kv.get(f"agent:{agent_id}")
        return Agent.model_validate_json(raw) if raw else None

    async def list_agents(self) -> list[Agent]:
        agents = [
            Agent.model_validate_json(v) for v in await self.kv.values_in_range("agent:", _end("agent:"))
        ]
        return sorted(agents, key=lambda a: a.created_at)

    async def delete_agent(self, agent_id: str) -> None:
        for session in await self.list_sessions(agent_id):
            await self.delete_session(agent_id, session.session_id)
        await self.kv.delete(f"agent:{agent_id}")

    # -- sessions ----------------------------------------------------------------------------------

    async def put_session(self, agent_id: str, session: SessionRecord) -> None:
        await self.kv.set(f"session:{agent_id}:{session.session_id}", session.model_dump_json())

    async def get_session(self, agent_id: str, session_id: str) -> SessionRecord | None:
        raw = await self.kv.get(f"session:{agent_id}:{session_id}")
        return SessionRecord.model_validate_json(raw) if raw else None

    async def list_sessions(self, agent_id: str) -> list[SessionRecord]:
        prefix = f"session:{agent_id}:"
        sessions = [
            SessionRecord.model_validate_json(v) for v in await self.kv.values_in_range(prefix, _end(prefix))
        ]
        return sorted(sessions, key=lambda s: s.started_at)

    async def delete_session(self, agent_id: str, session_id: str) -> None:
        for record in await self.list_turns(session_id):
            await self.kv.delete(record.key)
            await self.kv.delete(f"turnid:{record.turn.turn_id}")
        await self.kv.delete(f"session:{agent_id}:{session_id}")

    # -- turns -------------------------------------------------------------------------------------

    async def new_turn_key(self, session_id: str, turn_id: str) -> str:
        prefix = f"turn:{session_id}:"
        count = len(await self.kv.keys_in_range(prefix, _end(prefix)))
        return f"{prefix}{count:08d}:{turn_id}"

    async def put_turn(self, record: TurnRecord, *, new: bool = False) -> None:
        """Write the turn; ``new``: its first write, which also writes the ``turnid:`` pointer (the key
        never changes, and a turn is written after every step: a pointer written each time doubled the
        store's work per step)."""
        await self.kv.set(record.key, record.model_dump_json())
        if new:
            await self.kv.set(f"turnid:{record.turn.turn_id}", record.key)

    async def get_turn(self, turn_id: str) -> TurnRecord | None:
        key = await self.kv.get(f"turnid:{turn_id}")
        raw = await self.kv.get(key) if key else None
        return TurnRecord.model_validate_json(raw) if raw else None

    async def list_turns(self, session_id: str) -> list[TurnRecord]:
        prefix = f"turn:{session_id}:"
        return [
            TurnRecord.model_validate_json(v) for v in await self.kv.values_in_range(prefix, _end(prefix))
        ]

    async def fail_interrupted(self) -> int:
        """Mark every turn left running (the process died mid-turn) failed, with the reason."""
        count = 0
        for key, raw in await self.kv.items_in_range("turn:", _end("turn:")):
            record = TurnRecord.model_validate_json(raw)
            if record.status != RUNNING:
                continue
            mark_failed(
                record,
                "the server stopped while this turn was running (crash or kill); its steps so far are kept: "
                "run the turn again",
            )
            await self.kv.set(key, record.model_dump_json())
            count += 1
        return count


def mark_failed(record: TurnRecord, reason: str) -> None:
    record.status = FAILED
    record.error = reason
    record.turn.completed_at = datetime.now(UTC)
    record.turn.output_message.content = f"turn failed: {reason}"
    record.turn.output_message.tool_calls = []
