"""The code interpreter through an agent turn: llama-stack-client 0.2.12's ``Agent`` helper against a
real ``lamina run`` with ``inline::code-interpreter`` (``builtin::code_interpreter``, a real
bubblewrap sandbox; skipped when bwrap cannot run here).

The model is the fake upstream (``lamina.testing.fake_openai``): no model here writes the code on
demand; a ``[[args:<JSON>]]`` directive in the user message scripts the arguments of the call it is
forced to make (``tool_choice`` required), and ``echo`` answers with the request it received, so the
test sees the sandbox's output reach the next model call.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator

import pytest
from llama_stack_client import LlamaStackClient
from llama_stack_client.lib.agents.agent import Agent

from lamina.testing.processes import ServerProcess, lamina_server


def _bwrap_runs() -> str | None:
    """Why bubblewrap cannot run here, or None when it can (it needs user namespaces)."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed"
    probe = subprocess.run(
        ["bwrap", "--ro-bind", "/", "/", "--unshare-all", "true"], capture_output=True, text=True, timeout=30
    )
    return None if probe.returncode == 0 else f"bwrap cannot run here: {probe.stderr.strip()[:200]}"


_WHY_NOT = _bwrap_runs()
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(_WHY_NOT is not None, reason=_WHY_NOT or "")]

SUM_OF_SQUARES = "print(sum(i * i for i in range(1, 11)))"


@pytest.fixture(scope="module")
def ls(
    fake_upstream: ServerProcess,
    tmp_path_factory: pytest.TempPathFactory,
    agents_run_config: Callable[..., dict],
) -> Iterator[LlamaStackClient]:
    work = tmp_path_factory.mktemp("agents-code")
    config = agents_run_config(fake_upstream, work / "agents.db")
    config["providers"]["tool_runtime"].append(
        {
            "provider_id": "code-interpreter",
            "provider_type": "inline::code-interpreter",
            "config": {"timeout_seconds": 30, "cpu_seconds": 5, "memory_mb": 256},
        }
    )
    with lamina_server(config, work) as lamina:
        yield LlamaStackClient(base_url=lamina.url, max_retries=0, timeout=120)


def test_an_agent_turn_runs_the_code_interpreter_and_the_model_reads_its_stdout(ls: LlamaStackClient) -> None:
    agent = Agent(
        ls,
        model="fake/echo",
        instructions="Compute with the code interpreter.",
        tools=["builtin::code_interpreter"],
        tool_config={"tool_choice": "required"},
    )
    session_id = agent.create_session("code")
    directive = "[[args:" + json.dumps({"code": SUM_OF_SQUARES}) + "]]"
    turn = agent.create_turn(
        messages=[{"role": "user", "content": f"The sum of the squares of 1..10? {directive}"}],
        session_id=session_id,
        stream=False,
    )
    assert [s.step_type for s in turn.steps] == ["inference", "tool_execution", "inference"]
    step = turn.steps[1]
    assert step.tool_calls[0].tool_name == "code_interpreter"
    assert step.tool_calls[0].arguments == {"code": SUM_OF_SQUARES}
    result = step.tool_responses[0]
    assert result.content == "completed\n[stdout]\n385\n\n[/stdout]", result.content
    sent = json.loads(turn.output_message.content)["messages"]  # what the second model call got
    assert sent[-1]["role"] == "tool" and "385" in sent[-1]["content"]
