"""Serve the default distribution from an installed venv and ask it one chat completion and one embedding.

``python offline_serve.py LAMINA_EXECUTABLE WORK_DIR`` prints one JSON object. test_wheels.py runs it
with the venv's own Python inside a network namespace that has nothing but loopback
(``unshare --net``), so the server, and anything it might try to download, cannot reach beyond
127.0.0.1; the client runs in the same namespace because the test process cannot reach into it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.request
from pathlib import Path

from lamina.testing.processes import ServerProcess, free_port


def network_cut() -> bool:
    """Whether a non-loopback address is unreachable (no route: only ``lo`` exists)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 53))  # TEST-NET-1: connect() on UDP only needs a route
        except OSError:
            return True
    return False


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=300) as resp:
        return json.loads(resp.read())


def main() -> None:
    lamina, work = sys.argv[1], Path(sys.argv[2])
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work / "home"),
        "LAMINA_HOME": str(work / "lamina-home"),
        "LAMINA_LOG_FORMAT": "json",
        # Belt and braces where the namespace is not available: nothing may be fetched.
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    out: dict = {"network_cut": network_cut()}
    server = ServerProcess(
        [lamina, "run", "--port", str(port)], port, log_path=work / "lamina.log", env=env, ready_timeout=180
    )
    started = time.monotonic()
    with server:
        out["ready_seconds"] = round(time.monotonic() - started, 1)
        chat = post(
            f"{server.url}/v1/chat/completions",
            {
                "model": "SmolLM2-135M-Instruct",
                "messages": [{"role": "user", "content": "Say hello."}],
                "max_tokens": 8,
            },
        )
        out["chat"] = {"content": chat["choices"][0]["message"]["content"], "usage": chat.get("usage")}
        embedding = post(f"{server.url}/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": ["hello"]})
        out["embedding_dims"] = len(embedding["data"][0]["embedding"])
    out["exit_code"] = server.proc.returncode if server.proc else None
    out["log_tail"] = server.log_tail(15)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
