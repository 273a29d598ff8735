"""A stub Ollama server speaking Ollama's native wire format (docs/api.md of ollama/ollama).

It exists because no Ollama server can be installed or run in this test environment. It is not a
model: answers are deterministic functions of the request, so tests can check what the adapter
sent and how it translated what came back.

Routes (as Ollama): ``GET /api/tags``, ``GET /api/ps``, ``GET /api/version``, ``POST /api/show``,
``POST /api/chat``, ``POST /api/generate``, ``POST /api/embed``, ``POST /api/pull`` (non-streaming:
adds the model), ``DELETE /api/delete``. Stub controls: ``GET /_stub/requests`` (every request body
received, in order), ``DELETE /_stub/requests`` (forget them) and ``GET /_stub/image.png`` (an
image to reference by URL).

Behaviour:

- chat answers ``Hello from <model>! You said: <last user text>``; after a ``tool`` message it
  answers ``The tool said: <content>``; with ``tools`` and a user turn it calls the first tool with
  arguments built from its JSON schema (strings ``"Paris"``, integers 42, booleans true); with a
  JSON-schema ``format`` it answers a JSON object built from the schema the same way.
- generate answers `` continued by <model>.`` after the prompt (``raw`` or not).
- one word = one token: ``options.num_predict`` cuts the answer (``done_reason: "length"``),
  ``options.stop`` cuts at the first stop string; counts are words.
- streams are NDJSON, a word a line, then a ``done: true`` line with the durations and counts.
- embed returns unit vectors hashed from character bigrams (384 dims for all-minilm, 768 for
  nomic-embed-text), ``dimensions`` shortens them; ``truncate: false`` with more than 256 words is
  Ollama's 400 "input length exceeds the context length".
- an unknown model is Ollama's 404 ``model "x" not found, try pulling it first``; ``tools`` sent
  to ``notools`` is Ollama's 400 ``... does not support tools``.

Fault models (listed by /api/tags like the others): ``fault-500`` (HTTP 500 ``{"error": ...}``),
``fault-badjson`` (a body or stream line that is not JSON), ``fault-cut`` (two lines, then the
connection closes without ``done: true``), ``fault-slow`` (waits ``slow_seconds`` before answering),
``fault-stall`` (one line, then silence), ``fault-midstream`` (one line, then an ``{"error"}`` line).

Run it alone with ``python ollama_stub.py --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import time
from typing import Any

from aiohttp import web

LLM = {"family": "llama", "families": ["llama"], "parameter_size": "3.2B", "quantization_level": "Q4_K_M"}
BERT = {"family": "bert", "families": ["bert"], "parameter_size": "23M", "quantization_level": "F16"}
NOMIC = {
    "family": "nomic-bert",
    "families": ["nomic-bert"],
    "parameter_size": "137M",
    "quantization_level": "F16",
}
DEFAULT_MODELS: dict[str, dict[str, Any]] = {
    "llama3.2:3b": LLM,
    "qwen3:0.6b": {**LLM, "family": "qwen3", "families": ["qwen3"]},
    "notools:latest": LLM,
    "all-minilm:latest": BERT,
    "nomic-embed-text:latest": NOMIC,
    **{f"fault-{k}:latest": LLM for k in ("500", "badjson", "cut", "slow", "stall", "midstream")},
}
EMBED_DIMS = {"bert": 384, "nomic-bert": 768}
CONTEXT_WORDS = 256
IMAGE_BYTES = b"\x89PNG stub image"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def _with_tag(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _example(schema: Any, name: str = "") -> Any:
    """A value matching a (simple) JSON schema."""
    if not isinstance(schema, dict):
        return "stub"
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {k: _example(v, k) for k, v in props.items()}
    if kind == "array":
        return [_example(schema.get("items"), name)]
    if kind == "integer":
        return 42
    if kind == "number":
        return 4.2
    if kind == "boolean":
        return True
    return "Paris" if name in ("city", "location") or not name else "stub"


def _cut(text: str, options: dict[str, Any]) -> tuple[list[str], str]:
    """The answer's words after stop strings and num_predict, and the done_reason."""
    for stop in options.get("stop") or []:
        if stop and stop in text:
            text = text[: text.index(stop)]
    words = [w for w in text.replace(" ", " \0").split("\0") if w]
    limit = options.get("num_predict")
    if isinstance(limit, int) and 0 <= limit < len(words):
        return words[:limit], "length"
    return words, "stop"


def _stats(prompt_words: int, eval_words: int) -> dict[str, Any]:
    return {
        "total_duration": 5_000_000 + eval_words * 1_000_000,
        "load_duration": 1_000_000,
        "prompt_eval_count": prompt_words,
        "prompt_eval_duration": prompt_words * 100_000,
        "eval_count": eval_words,
        "eval_duration": eval_words * 1_000_000,
    }


def _vector(text: str, dims: int) -> list[float]:
    vec = [0.0] * dims
    padded = f" {text.lower()} "
    for i in range(len(padded) - 1):
        digest = hashlib.blake2b(padded[i : i + 2].encode(), digest_size=4).digest()
        vec[int.from_bytes(digest, "little") % dims] += 1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


class OllamaStub:
    def __init__(self, slow_seconds: float = 5.0, chunk_delay: float = 0.0) -> None:
        self.slow_seconds = slow_seconds
        self.chunk_delay = chunk_delay
        self.models: dict[str, dict[str, Any]] = dict(DEFAULT_MODELS)
        self.requests: list[dict[str, Any]] = []

    # -- helpers -------------------------------------------------------------------------------

    def _find(self, name: str) -> str | None:
        wanted = _with_tag(name)
        return wanted if wanted in self.models else None

    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        return web.json_response({"error": message}, status=status)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        body = await request.json()
        self.requests.append({"path": request.path, "body": body})
        return body

    async def _fault(self, model: str) -> str | None:
        if model.startswith("fault-slow"):
            await asyncio.sleep(self.slow_seconds)
            return None
        return next(
            (k for k in ("500", "badjson", "cut", "stall", "midstream") if model.startswith(f"fault-{k}")),
            None,
        )

    async def _stream(
        self, request: web.Request, lines: list[dict[str, Any]], fault: str | None
    ) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        for i, line in enumerate(lines):
            if fault == "badjson" and i == 1:
                await resp.write(b'{"model": "fault-badjson", "message": {"content": \n')
                return resp
            if fault == "cut" and i == 2:
                request.transport.close()  # the connection drops without the done:true line
                return resp
            if fault == "stall" and i == 1:
                await asyncio.sleep(3600)
            if fault == "midstream" and i == 1:
                await resp.write(json.dumps({"error": "stub: the model runner crashed"}).encode() + b"\n")
                return resp
            await resp.write(json.dumps(line).encode() + b"\n")
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
        await resp.write_eof()
        return resp

    async def _answer(
        self, request: web.Request, body: dict[str, Any], pieces: list[dict[str, Any]], final: dict[str, Any]
    ) -> web.StreamResponse:
        """Stream ``pieces`` then ``final`` as NDJSON, or merge them into one object."""
        fault = await self._fault(body["model"])
        if fault == "500":
            return self._error(500, "stub: upstream exploded")
        if body.get("stream", True):
            return await self._stream(request, [*pieces, final], fault)
        if fault == "badjson":
            return web.Response(status=200, text="<html>not json</html>", content_type="application/json")
        if fault in ("cut", "stall", "midstream"):
            await asyncio.sleep(self.slow_seconds if fault == "stall" else 0)
            request.transport.close()
            return web.Response(status=200)
        return web.json_response(final)

    # -- model management ----------------------------------------------------------------------

    async def tags(self, request: web.Request) -> web.Response:
        models = []
        for name, details in self.models.items():
            digest = hashlib.sha256(name.encode()).hexdigest()
            models.append(
                {
                    "name": name,
                    "model": name,
                    "modified_at": "2025-06-01T10:00:00.000000Z",
                    "size": 1_000_000 + len(name),
                    "digest": digest,
                    "details": {"parent_model": "", "format": "gguf", **details},
                }
            )
        return web.json_response({"models": models})

    async def ps(self, request: web.Request) -> web.Response:
        return web.json_response({"models": []})

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "0.9.6-stub"})

    async def show(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        name = self._find(str(body.get("model") or body.get("name") or ""))
        if name is None:
            return self._error(404, f"model '{body.get('model')}' not found")
        details = self.models[name]
        arch = details["family"]
        info: dict[str, Any] = {"general.architecture": arch, f"{arch}.context_length": 8192}
        if arch in EMBED_DIMS:
            info[f"{arch}.embedding_length"] = EMBED_DIMS[arch]
        else:
            info[f"{arch}.embedding_length"] = 3072
        capabilities = ["embedding"] if arch in EMBED_DIMS else ["completion", "tools"]
        return web.json_response(
            {"details": details, "model_info": info, "capabilities": capabilities, "modified_at": _now()}
        )

    async def pull(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        self.models[_with_tag(str(body.get("model") or body.get("name")))] = LLM
        return web.json_response({"status": "success"})

    async def delete(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        name = self._find(str(body.get("model") or body.get("name") or ""))
        if name is None:
            return self._error(404, f"model '{body.get('model')}' not found")
        del self.models[name]
        return web.Response(status=200)

    # -- inference -----------------------------------------------------------------------------

    def _check_model(self, body: dict[str, Any]) -> web.Response | None:
        if not isinstance(body.get("model"), str) or not body["model"]:
            return self._error(400, "model is required")
        if self._find(body["model"]) is None:
            return self._error(404, f'model "{body["model"]}" not found, try pulling it first')
        return None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        if (bad := self._check_model(body)) is not None:
            return bad
        model = body["model"]
        messages = body.get("messages") or []
        if body.get("tools") and model.startswith("notools"):
            return self._error(400, f"registry.ollama.ai/library/{_with_tag(model)} does not support tools")
        options = body.get("options") or {}
        prompt_words = sum(len(str(m.get("content") or "").split()) for m in messages)
        last = messages[-1] if messages else {}
        base = {"model": model, "created_at": _now()}
        if body.get("tools") and last.get("role") == "user":
            tool = body["tools"][0]["function"]
            call = {"function": {"name": tool["name"], "arguments": _example(tool.get("parameters"))}}
            piece = {
                **base,
                "message": {"role": "assistant", "content": "", "tool_calls": [call]},
                "done": False,
            }
            final_message = {"role": "assistant", "content": ""}
            if not body.get("stream", True):
                final_message["tool_calls"] = [call]
            final = {
                **base,
                "message": final_message,
                "done_reason": "stop",
                "done": True,
                **_stats(prompt_words, 12),
            }
            return await self._answer(request, body, [piece], final)
        if body.get("format") not in (None, ""):
            fmt = body["format"]
            text = json.dumps(_example(fmt) if isinstance(fmt, dict) else {"answer": "stub"})
        elif last.get("role") == "tool":
            text = f"The tool said: {last.get('content')}"
        else:
            user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
            text = f"Hello from {model}! You said: {user.get('content', '')}"
        words, reason = _cut(text, options)
        pieces = [{**base, "message": {"role": "assistant", "content": w}, "done": False} for w in words]
        full = "".join(words)
        final_content = "" if body.get("stream", True) else full
        final = {
            **base,
            "message": {"role": "assistant", "content": final_content},
            "done_reason": reason,
            "done": True,
            **_stats(prompt_words, len(words)),
        }
        return await self._answer(request, body, pieces, final)

    async def generate(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        if (bad := self._check_model(body)) is not None:
            return bad
        model = body["model"]
        if body.get("raw") and body.get("suffix"):
            return self._error(400, "raw mode does not support suffix")
        options = body.get("options") or {}
        fmt = body.get("format")
        text = json.dumps(_example(fmt)) if isinstance(fmt, dict) else f" continued by {model}."
        words, reason = _cut(text, options)
        base = {"model": model, "created_at": _now()}
        pieces = [{**base, "response": w, "done": False} for w in words]
        final = {
            **base,
            "response": "" if body.get("stream", True) else "".join(words),
            "done": True,
            "done_reason": reason,
            **_stats(len(str(body.get("prompt", "")).split()), len(words)),
        }
        if not body.get("raw"):
            final["context"] = [1, 2, 3]
        return await self._answer(request, body, pieces, final)

    async def embed(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if (bad := self._check_model(body)) is not None:
            return bad
        name = self._find(body["model"])
        family = self.models[name]["family"]
        if family not in EMBED_DIMS:
            dims = 3072  # Ollama embeds with any model; LLMs give their hidden size
        else:
            dims = EMBED_DIMS[family]
        fault = await self._fault(body["model"])
        if fault == "500":
            return self._error(500, "stub: upstream exploded")
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return self._error(400, "invalid input type")
        if body.get("truncate") is False and any(len(t.split()) > CONTEXT_WORDS for t in texts):
            return self._error(400, "input length exceeds the context length")
        wanted = body.get("dimensions")
        vectors = []
        for text in texts:
            vec = _vector(text, dims)
            if isinstance(wanted, int) and 0 < wanted < dims:
                vec = vec[:wanted]
                norm = math.sqrt(sum(v * v for v in vec)) or 1.0
                vec = [v / norm for v in vec]
            vectors.append(vec)
        words = sum(len(t.split()) for t in texts)
        return web.json_response(
            {
                "model": body["model"],
                "embeddings": vectors,
                "total_duration": 14_143_917,
                "load_duration": 1_019_500,
                "prompt_eval_count": words,
            }
        )

    # -- stub controls -------------------------------------------------------------------------

    async def get_requests(self, request: web.Request) -> web.Response:
        return web.json_response(self.requests)

    async def clear_requests(self, request: web.Request) -> web.Response:
        self.requests.clear()
        return web.json_response({"cleared": True})


STUB = web.AppKey("stub", OllamaStub)


async def _root(request: web.Request) -> web.Response:
    return web.Response(text="Ollama is running")


async def _image(request: web.Request) -> web.Response:
    return web.Response(body=IMAGE_BYTES, content_type="image/png")


def make_app(slow_seconds: float = 5.0, chunk_delay: float = 0.0) -> web.Application:
    stub = OllamaStub(slow_seconds=slow_seconds, chunk_delay=chunk_delay)
    app = web.Application()
    app[STUB] = stub
    app.router.add_get("/", _root)
    app.router.add_get("/api/tags", stub.tags)
    app.router.add_get("/api/ps", stub.ps)
    app.router.add_get("/api/version", stub.version)
    app.router.add_post("/api/show", stub.show)
    app.router.add_post("/api/pull", stub.pull)
    app.router.add_delete("/api/delete", stub.delete)
    app.router.add_post("/api/chat", stub.chat)
    app.router.add_post("/api/generate", stub.generate)
    app.router.add_post("/api/embed", stub.embed)
    app.router.add_get("/_stub/image.png", _image)
    app.router.add_get("/_stub/requests", stub.get_requests)
    app.router.add_delete("/_stub/requests", stub.clear_requests)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--slow-seconds", type=float, default=5.0)
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    args = parser.parse_args()
    app = make_app(slow_seconds=args.slow_seconds, chunk_delay=args.chunk_delay)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
