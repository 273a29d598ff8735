"""A pass-through HTTP proxy that rewrites Python type names in tool parameter schemas to JSON Schema's.

For the agents conformance run (docs/conformance.md, "Agents and Responses"): llama-stack 0.2.12 sends a
tool's parameters to an OpenAI-compatible upstream with Python type names (``"type": "str"``), which a
server that holds calls to the schema cannot use. In front of the upstream, this proxy rewrites the
``type`` values ``str``, ``int``, ``float``, ``bool``, ``list`` and ``dict`` inside each
``tools[].function.parameters`` of a JSON request body to ``string``, ``integer``, ``number``,
``boolean``, ``array`` and ``object``, and changes nothing else; answers (streams included) are relayed
as they arrive.

    python -m lamina.testing.tool_type_proxy --port 18435 --upstream http://127.0.0.1:18431

Standard library only; one thread per connection. A test tool, not for production traffic.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from lamina.apis.tools import JSON_SCHEMA_TYPES

_HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}


def json_schema_types(schema: Any) -> Any:
    """``schema`` with every ``"type": <Python type name>`` replaced by the JSON Schema type."""
    if isinstance(schema, dict):
        return {
            key: JSON_SCHEMA_TYPES.get(value, value)
            if key == "type" and isinstance(value, str)
            else json_schema_types(value)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [json_schema_types(item) for item in schema]
    return schema


def rewrite_body(body: bytes) -> bytes:
    """A chat request body with its tools' parameter schemas rewritten; any other body unchanged."""
    try:
        request = json.loads(body)
    except ValueError:
        return body
    tools = request.get("tools") if isinstance(request, dict) else None
    if not isinstance(tools, list):
        return body
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and "parameters" in function:
            function["parameters"] = json_schema_types(function["parameters"])
    return json.dumps(request).encode()


def make_handler(upstream: str) -> type[BaseHTTPRequestHandler]:
    target = urlsplit(upstream)
    host, port = target.hostname or "127.0.0.1", target.port or 80

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = rewrite_body(self.rfile.read(length)) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            if body is not None:
                headers["Content-Length"] = str(len(body))
            connection = http.client.HTTPConnection(host, port, timeout=600)
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                self.send_response(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                while chunk := answer.read1(65536):  # a stream's events as they come
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            finally:
                connection.close()

        do_GET = do_POST = do_PUT = do_DELETE = _relay

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"tool_type_proxy: {format % args}\n")

    return Handler


def serve(port: int, upstream: str, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """The proxy's server, bound (call ``serve_forever``, and ``shutdown`` from another thread)."""
    return ThreadingHTTPServer((host, port), make_handler(upstream))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lamina.testing.tool_type_proxy", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--upstream", required=True, help="the upstream's base URL, e.g. http://127.0.0.1:18431"
    )
    args = parser.parse_args(argv)
    serve(args.port, args.upstream).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
