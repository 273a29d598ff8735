"""The `local` distribution: listed, printable, served by `lamina run` with no argument, offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from openai import OpenAI

from lamina.config import load_run_config_text
from lamina.testing.processes import ServerProcess, free_port

HERE = Path(__file__).parent


def _lamina(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lamina.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_distributions_lists_local_as_the_default_with_its_providers() -> None:
    out = _lamina("distributions")
    assert out.returncode == 0, out.stderr
    assert "local (default)" in out.stdout
    assert "inference: inline::llama-cpp, inline::sentence-transformers" in out.stdout
    assert "vector_io: inline::faiss" in out.stdout and "files: inline::localfs" in out.stdout
    assert (
        "tool_runtime: inline::rag-runtime, inline::code-interpreter, remote::model-context-protocol"
        in out.stdout
    )
    assert "safety: inline::rules, inline::prompt-guard, inline::llama-guard" in out.stdout


def test_show_prints_a_run_config_a_user_can_copy(tmp_path: Path) -> None:
    out = _lamina("distributions", "show", "local")
    assert out.returncode == 0, out.stderr
    doc = yaml.safe_load(out.stdout)
    assert doc["image_name"] == "local" and doc["version"] == 2
    config = load_run_config_text(out.stdout, source="shown", env={"LAMINA_PARALLEL": "3"})
    llama = config.providers["inference"][0]
    assert llama.provider_type == "inline::llama-cpp" and str(llama.config["parallel"]) == "3"
    # the copy runs as a file too
    copy = tmp_path / "run.yaml"
    copy.write_text(out.stdout)
    port = free_port()
    env = {**os.environ, "LAMINA_HOME": str(tmp_path / "home")}
    argv = [sys.executable, "-m", "lamina.cli", "run", str(copy), "--port", str(port)]
    with ServerProcess(argv, port, log_path=tmp_path / "copy.log", env=env) as server:
        assert httpx.get(f"{server.url}/v1/health").json()["status"] == "OK"


def test_unknown_distribution_names_the_installed_ones() -> None:
    out = _lamina("distributions", "show", "nope")
    assert out.returncode != 0 and "local" in out.stderr


@pytest.mark.e2e
def test_lamina_run_with_no_argument_serves_local(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "LAMINA_HOME": str(tmp_path / "home")}
    argv = [sys.executable, "-m", "lamina.cli", "run", "--port", str(port)]
    started = time.perf_counter()
    with ServerProcess(argv, port, log_path=tmp_path / "lamina.log", env=env) as server:
        ready = time.perf_counter() - started
        print(f"start-up to first 200 on /v1/health: {ready:.2f}s")  # recorded by bench, not asserted
        models = {m["identifier"]: m for m in httpx.get(f"{server.url}/v1/models").json()["data"]}
        assert models["SmolLM2-135M-Instruct"]["model_type"] == "llm"
        assert models["all-MiniLM-L6-v2"]["model_type"] == "embedding"
        assert models["all-MiniLM-L6-v2"]["metadata"]["embedding_dimension"] == 384
        client = OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0, timeout=120)
        chat = client.chat.completions.create(
            model="SmolLM2-135M-Instruct", messages=[{"role": "user", "content": "Hi!"}], max_tokens=8
        )
        assert chat.choices[0].message.content
    assert (tmp_path / "home" / "local" / "registry.db").exists()  # state under $LAMINA_HOME/local


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux unshare is not installed")
def test_local_distribution_works_with_the_network_off(tmp_path: Path) -> None:
    """The whole stack inside a network namespace that has only loopback (`unshare -n`)."""
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:  # unprivileged: try a user namespace too
        prefix = ["unshare", "-rn"]
    else:
        prefix = ["unshare", "-n"]
    out = subprocess.run(
        [*prefix, sys.executable, str(HERE / "offline_check.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,  # SmolLM2 answers a response and two model calls of an agent turn on 2 busy cores
    )
    assert out.returncode == 0, out.stdout + out.stderr + (tmp_path / "offline-lamina.log").read_text()
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["internet_reachable"] is False
    assert {"SmolLM2-135M-Instruct", "all-MiniLM-L6-v2"} <= set(seen["models"])
    assert seen["chat"] and seen["embedding_dimension"] == 384
    assert seen["file_status"] == ["completed"]
    assert seen["top_hit"]["filename"] == "lighthouse.md" and "Ada Brandt" in seen["top_hit"]["text"]
    assert {"builtin::rag", "builtin::code_interpreter"} <= set(seen["toolgroups"])
    if shutil.which("bwrap"):
        assert seen["code_interpreter"]["content"] == "completed\n[stdout]\n5050\n\n[/stdout]", seen
    else:  # started without it (require_sandbox: false); the call says what to install
        assert "apt-get install bubblewrap" in seen["code_interpreter"], seen
    shields = seen["shields"]
    assert shields["pii"]["violation"]["metadata"]["violation_type"].startswith("pii:")
    assert shields["prompt-guard"]["violation"]["violation_level"] == "error"
    assert shields["llama-guard"] == {"violation": None}  # the JSON-constrained local model judged it
    assert seen["moderation"]["flagged"] and seen["moderation"]["categories"]["pii/email"]
    # issue 13 item 4: the Responses API and an agent with builtin::rag, offline, on SmolLM2
    response = seen["response"]
    assert response["status"] in ("completed", "incomplete") and response["text"], response
    assert response["output_tokens"] <= 8 and response["stored_text"] == response["text"]
    turn = seen["agent_turn"]
    assert turn["steps"][:2] == ["inference", "tool_execution"] and turn["tool"] == "knowledge_search", turn
    assert "330 metres" in turn["result"], turn
    # MCP is served (no group registered: users add theirs) and needs no network to start
    assert "remote::model-context-protocol" in seen["tool_providers"]
    assert not any(g.startswith("mcp::") for g in seen["toolgroups"])


def test_the_rag_tool_does_not_fetch_document_urls() -> None:
    """Server-side request forgery: the shipped config must not fetch the URLs clients name."""
    from lamina_distribution_local.run_config import RUN_CONFIG
    from lamina_rag_runtime.config import RagToolRuntimeConfig

    config = load_run_config_text(RUN_CONFIG, source="local", env={})
    [rag] = [p for p in config.providers["tool_runtime"] if p.provider_type == "inline::rag-runtime"]
    assert RagToolRuntimeConfig.model_validate(rag.config).allow_remote_urls is False
