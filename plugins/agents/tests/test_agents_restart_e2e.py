"""Sessions survive a restart of the real ``lamina run``; a turn a crash interrupted reads as failed.

The fake upstream stands in for the model (see test_agents_e2e.py): its ``slow`` model holds a turn
open for 5 s, long enough to kill the server mid-turn.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_stack_client import LlamaStackClient

from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

HI = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_session_survives_a_restart(
    fake_upstream: ServerProcess,
    start_lamina: Callable[..., ServerProcess],
    tmp_path: Path,
    agents_run_config: Callable[..., dict],
    request: pytest.FixtureRequest,
    kind: str,
) -> None:
    store: Any = tmp_path / "agents.db"
    if kind == "postgres":  # the same KV config Llama Stack's run.yaml uses
        pg = request.getfixturevalue("postgres_server")
        store = {"type": "postgres", "host": pg.host, "port": pg.port, "db": pg.db, "user": pg.user}
        store["table_name"] = f"agents_{tmp_path.name[-8:].replace('-', '_')}"
    server = start_lamina(agents_run_config(fake_upstream, store))
    ls = LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)
    agent_id = ls.agents.create(agent_config={"model": "fake/ok", "instructions": "x"}).agent_id
    session_id = ls.agents.session.create(agent_id, session_name="kept").session_id
    turn = ls.agents.turn.create(session_id, agent_id=agent_id, messages=HI, stream=False)
    server.restart()
    session = ls.agents.session.retrieve(session_id, agent_id=agent_id)
    assert session.session_name == "kept"
    assert [t.turn_id for t in session.turns] == [turn.turn_id]
    assert session.turns[0].output_message.content == turn.output_message.content
    step = session.turns[0].steps[0]
    got = ls.agents.steps.retrieve(
        step.step_id, agent_id=agent_id, session_id=session_id, turn_id=turn.turn_id
    )
    assert got.step.api_model_response.content == turn.output_message.content
    assert httpx.get(f"{server.url}/v1/agents/{agent_id}").json()["agent_config"]["instructions"] == "x"
    # and the session goes on: the next turn runs after the restart
    more = ls.agents.turn.create(session_id, agent_id=agent_id, messages=HI, stream=False)
    assert (
        len(ls.agents.session.retrieve(session_id, agent_id=agent_id).turns) == 2
        and more.output_message.content
    )


def test_a_turn_interrupted_by_a_crash_reads_as_failed_after_the_restart(
    fake_upstream: ServerProcess,
    start_lamina: Callable[..., ServerProcess],
    tmp_path: Path,
    agents_run_config: Callable[..., dict],
) -> None:
    server = start_lamina(agents_run_config(fake_upstream, tmp_path / "agents.db"))
    ls = LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)
    agent_id = ls.agents.create(agent_config={"model": "fake/slow", "instructions": "x"}).agent_id
    session_id = ls.agents.session.create(agent_id, session_name="crash").session_id
    started = threading.Event()
    seen: list[str] = []

    def turn() -> None:
        url = f"{server.url}/v1/agents/{agent_id}/session/{session_id}/turn"
        try:
            with httpx.stream("POST", url, json={"messages": HI, "stream": True}, timeout=30) as resp:
                for line in resp.iter_lines():
                    seen.append(line)
                    if "turn_start" in line:
                        started.set()
        except httpx.HTTPError:
            pass  # the server dies under it

    thread = threading.Thread(target=turn, daemon=True)
    thread.start()
    assert started.wait(20), f"no turn_start: {seen}"
    # The turn is stored as running: its session lists it while the model call hangs (slow: 5 s).
    running = ls.agents.session.retrieve(session_id, agent_id=agent_id).turns
    assert len(running) == 1 and running[0].completed_at is None
    server.kill()
    thread.join(20)
    server.start()
    turn_after: Any = ls.agents.session.retrieve(session_id, agent_id=agent_id).turns[0]
    assert turn_after.completed_at is not None
    assert turn_after.output_message.content.startswith(
        "turn failed: the server stopped while this turn was running"
    )
    # the session is usable again (a turn left running would block it)
    again = ls.agents.turn.create(session_id, agent_id=agent_id, messages=HI, stream=False)
    assert again.output_message.content


def test_a_client_that_leaves_mid_stream_leaves_the_turn_failed_not_running(
    fake_upstream: ServerProcess,
    start_lamina: Callable[..., ServerProcess],
    tmp_path: Path,
    agents_run_config: Callable[..., dict],
) -> None:
    server = start_lamina(agents_run_config(fake_upstream, tmp_path / "agents.db"))
    ls = LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)
    agent_id = ls.agents.create(agent_config={"model": "fake/slow", "instructions": "x"}).agent_id
    session_id = ls.agents.session.create(agent_id, session_name="gone").session_id
    url = f"{server.url}/v1/agents/{agent_id}/session/{session_id}/turn"
    with httpx.stream("POST", url, json={"messages": HI, "stream": True}, timeout=30) as resp:
        for line in resp.iter_lines():
            if "turn_start" in line:
                break  # leave while the model call hangs (slow: 5 s)
    # The server notices when it next writes (after the 5 s model call); "does not hang" bound: 30 s.
    deadline = time.monotonic() + 30
    turn: Any = None
    while time.monotonic() < deadline:
        turn = ls.agents.session.retrieve(session_id, agent_id=agent_id).turns[0]
        if turn.completed_at is not None:
            break
        time.sleep(0.5)
    assert turn.completed_at is not None, "the turn is still running 30 s after its client left"
    assert turn.output_message.content == (
        "turn failed: the client closed the connection (or the server shut down) before the turn ended"
    )
