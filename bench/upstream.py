"""A minimal, fast OpenAI-compatible upstream for the gateway benchmark.

It is a bare ``asyncio.Protocol`` HTTP/1.1 server (keep-alive, ``Content-Length`` request bodies,
no pipelining needed) so that the upstream costs as little CPU as possible and the benchmark
measures the gateway, not the fake. It serves:

- ``GET /v1/models`` and ``GET /v1/health``: a model list with ``ok`` (readiness and Lamina's
  registration check)
- ``POST /v1/chat/completions``: a canned completion; with ``"stream": true`` server-sent events
  in HTTP chunked encoding, ``bench_chunks`` content chunks (default 8), ``bench_interval_ms``
  apart (default 0), then a ``stop`` chunk and ``[DONE]``.

Every streamed content chunk carries the wall-clock time (``time.time_ns()``, CLOCK_REALTIME, so
comparable across processes on one machine) taken immediately before the chunk is handed to the
socket, as the content text ``"t<ns> "``. A client subtracts it from its own receive time to get
the chunk's transit latency.

``--impl aiohttp`` serves the same bytes from an ordinary aiohttp application instead (a typical
Python upstream, much like ``lamina.testing.fake_openai``), to show how the gateway ratio depends
on how fast the upstream is.

Run it with ``python -m bench.upstream --port N [--impl fast|aiohttp]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time

MODELS = ["ok"]

_COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "ok",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the bench upstream."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11},
    },
    separators=(",", ":"),
).encode()
_MODELS = json.dumps(
    {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": "bench"} for m in MODELS],
    }
).encode()

_CHUNK_HEAD = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"ok","choices":[{"index":0,"delta":{"content":"t'
)
_CHUNK_TAIL = b' "},"finish_reason":null}]}\n\n'
_STOP_EVENT = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"ok","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
)
_DONE_EVENT = b"data: [DONE]\n\n"


def _response(status: str, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 "
        + status.encode()
        + b"\r\nContent-Type: "
        + content_type
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


_OK_COMPLETION = _response("200 OK", _COMPLETION)
_OK_MODELS = _response("200 OK", _MODELS)
_NOT_FOUND = _response("404 Not Found", b'{"error":{"message":"not found"}}')
_BAD_REQUEST = _response("400 Bad Request", b'{"error":{"message":"bad request"}}')
_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class UpstreamProtocol(asyncio.Protocol):
    """One keep-alive connection. Requests are handled one at a time, in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.streaming = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.streaming:
            self._process()

    def _process(self) -> None:
        while self.transport is not None and not self.streaming:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buf[:end]).split(b"\r\n")
            try:
                method, target, _version = lines[0].split(b" ", 2)
            except ValueError:
                self._send_and_close(_BAD_REQUEST)
                return
            length = 0
            close = False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection":
                    close = value.strip().lower() == b"close"
                elif name == b"transfer-encoding":
                    self._send_and_close(_response("411 Length Required", b"{}"))
                    return
            if len(self.buf) < end + 4 + length:
                return
            body = bytes(self.buf[end + 4 : end + 4 + length])
            del self.buf[: end + 4 + length]
            self._handle(method, target.split(b"?", 1)[0], body)
            if close and not self.streaming and self.transport is not None:
                self.transport.close()

    def _send_and_close(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)
            self.transport.close()

    def _handle(self, method: bytes, path: bytes, body: bytes) -> None:
        assert self.transport is not None
        if method == b"POST" and path == b"/v1/chat/completions":
            # the common case is decided without parsing JSON
            if b'"stream"' not in body:
                self.transport.write(_OK_COMPLETION)
                return
            try:
                doc = json.loads(body)
            except ValueError:
                self.transport.write(_BAD_REQUEST)
                return
            if not doc.get("stream"):
                self.transport.write(_OK_COMPLETION)
                return
            chunks = int(doc.get("bench_chunks", 8))
            interval = float(doc.get("bench_interval_ms", 0)) / 1000.0
            self.streaming = True
            self.transport.write(_STREAM_HEAD)
            if interval > 0:
                asyncio.get_running_loop().create_task(self._stream_paced(chunks, interval))
            else:
                self._stream_burst(chunks)
            return
        if method == b"GET" and path in (b"/v1/models", b"/v1/health"):
            self.transport.write(_OK_MODELS)
            return
        self.transport.write(_NOT_FOUND)

    def _send_chunk(self) -> None:
        assert self.transport is not None
        event = _CHUNK_HEAD + str(time.time_ns()).encode() + _CHUNK_TAIL
        self.transport.write(_http_chunk(event))

    def _finish_stream(self) -> None:
        if self.transport is not None:
            self.transport.write(_http_chunk(_STOP_EVENT) + _http_chunk(_DONE_EVENT) + b"0\r\n\r\n")
        self.streaming = False
        if self.buf:
            self._process()

    def _stream_burst(self, chunks: int) -> None:
        for _ in range(chunks):
            self._send_chunk()
        self._finish_stream()

    async def _stream_paced(self, chunks: int, interval: float) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(chunks):
            if self.transport is None:
                return
            self._send_chunk()
            # pace against the start, so that the send cost does not accumulate
            delay = start + (i + 1) * interval - loop.time()
            await asyncio.sleep(max(delay, 0))
        self._finish_stream()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, host, port, backlog=1024, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def make_aiohttp_app():
    """The same upstream as an aiohttp application (slower: aiohttp's own per-request cost)."""
    from aiohttp import web

    async def models(request: web.Request) -> web.Response:
        return web.Response(body=_MODELS, content_type="application/json")

    async def chat(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        doc = json.loads(raw) if b'"stream"' in raw else {}
        if not doc.get("stream"):
            return web.Response(body=_COMPLETION, content_type="application/json")
        chunks = int(doc.get("bench_chunks", 8))
        interval = float(doc.get("bench_interval_ms", 0)) / 1000.0
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(chunks):
            await resp.write(_CHUNK_HEAD + str(time.time_ns()).encode() + _CHUNK_TAIL)
            if interval > 0:
                await asyncio.sleep(max(start + (i + 1) * interval - loop.time(), 0))
        await resp.write(_STOP_EVENT + _DONE_EVENT)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1/health", models)
    app.router.add_post("/v1/chat/completions", chat)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="A minimal, fast OpenAI-compatible upstream for benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--impl", choices=["fast", "aiohttp"], default="fast")
    args = parser.parse_args()
    if args.impl == "aiohttp":
        from aiohttp import web

        web.run_app(make_aiohttp_app(), host=args.host, port=args.port, access_log=None, print=None)
    else:
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
