"""lamina.testing.tool_type_proxy (the agents conformance run's proxy): what it rewrites, and a real relay."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from lamina.testing.processes import free_port
from lamina.testing.tool_type_proxy import json_schema_types, rewrite_body, serve

SCHEMA = {
    "type": "object",
    "properties": {"liquid_name": {"type": "str"}, "celcius": {"type": "bool"}, "n": {"type": "int"}},
    "required": ["liquid_name"],
}


def test_python_type_names_become_json_schema_types_and_nothing_else_changes() -> None:
    assert json_schema_types(SCHEMA) == {
        "type": "object",
        "properties": {
            "liquid_name": {"type": "string"},
            "celcius": {"type": "boolean"},
            "n": {"type": "integer"},
        },
        "required": ["liquid_name"],
    }
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "type: str"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": SCHEMA}}],
    }
    rewritten = json.loads(rewrite_body(json.dumps(body).encode()))
    assert rewritten["tools"][0]["function"]["parameters"]["properties"]["liquid_name"] == {"type": "string"}
    assert rewritten["messages"] == body["messages"] and rewritten["tools"][0]["type"] == "function"
    assert rewrite_body(b"not json") == b"not json"
    assert rewrite_body(b'{"model": "m"}') == b'{"model": "m"}'


class _Echo(BaseHTTPRequestHandler):
    """An upstream that answers a POST with its body in two chunks of a stream."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(body) + len(b"data: \n\n")))
        self.end_headers()
        self.wfile.write(b"data: ")
        self.wfile.flush()
        self.wfile.write(body + b"\n\n")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def proxied() -> Iterator[str]:
    upstream = ThreadingHTTPServer(("127.0.0.1", free_port()), _Echo)
    proxy = serve(free_port(), f"http://127.0.0.1:{upstream.server_address[1]}")
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (upstream, proxy)]
    for thread in threads:
        thread.start()
    try:
        yield f"http://127.0.0.1:{proxy.server_address[1]}"
    finally:
        for server in (proxy, upstream):
            server.shutdown()
            server.server_close()


def test_the_proxy_relays_a_rewritten_request_and_the_upstreams_stream(proxied: str) -> None:
    body = {"model": "m", "tools": [{"type": "function", "function": {"name": "f", "parameters": SCHEMA}}]}
    response = httpx.post(f"{proxied}/v1/chat/completions", json=body, timeout=10)
    assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
    assert response.text.startswith("data: ")
    seen = json.loads(response.text.removeprefix("data: "))
    assert seen["tools"][0]["function"]["parameters"]["properties"]["n"] == {"type": "integer"}
