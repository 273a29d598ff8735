"""A small OpenAI-compatible upstream for fault injection and benchmarks.

Not a model: it answers instantly with canned text. The requested model name picks behaviour:

- ``ok`` (or anything else): a normal answer; streams ``chunks`` chunks (default 8) for each of the
  request's ``n`` choices, then, when ``stream_options.include_usage`` is set, a usage-only chunk
- ``slow``: waits ``--slow-seconds`` before answering (timeouts)
- ``error500``: HTTP 500 with a JSON error
- ``badjson``: HTTP 200 with a body that is not JSON
- ``garbage``: HTTP 200 with JSON that is not OpenAI-shaped, ``{"foo": "bar", "choices": "nope"}``
  (streamed: such events, then ``[DONE]``); ``garbage-embed`` does the same on ``/v1/embeddings``
  (``"data": "nope"``)
- ``silent``: accepts the request and never answers (not even the headers)
- ``cut``: streams two chunks, then drops the connection without ``[DONE]``
- ``stall``: streams one chunk, then goes silent (read timeouts mid-stream)
- ``echo``: answers with the request body it received, as JSON text (to check pass-through), plus
  the ``Authorization`` header it got under ``"_authorization"``
- ``toolcap``: like ``ok``, but an answer with a tool call ends with ``finish_reason: "length"``, as a
  small model that writes whole calls and then runs on to its token limit does (SmolLM2 on llama.cpp)
- ``twocalls``: like ``ok``, but a forced answer makes two calls (``call_fake1``, ``call_fake2``): the
  forced function, then the next offered one (the same again when only one is offered), as a model
  that ignores ``parallel_tool_calls: false`` does
- ``tools<N>`` (``tools3``...): an agent's model that uses its tools N times, then answers. While the
  messages after the last user message hold fewer than N tool results (and tools are offered,
  ``tool_choice`` not ``none``), it calls the offered tools in turn (call k: tool k mod the number
  offered; id ``call_fake<k+1>``) with arguments typed after the tool's required parameters (a
  number 1, a string ``"Paris"``, a boolean true); then it answers like ``ok``. Stateless: the
  conversation says how far it is, so concurrent turns do not disturb each other
- ``gated``: like ``ok``, but waits while the gate is closed: ``POST /_fake/gate {"open": false}`` closes
  it (requests of ``gated`` then wait), ``{"open": true}`` opens it; both, and ``GET /_fake/gate``, answer
  ``{"open": bool, "waiting": <requests waiting>}``. A test holds a batch's lines in flight with it.
  A directive ``[[gate]]`` in the messages makes a request of any model wait at the gate the same way
  (a batch agent run's rows that say so are held, whatever the agent's model)
- ``guard``: stands in for a Llama Guard model, deterministically. It looks through the text of the
  request's messages for directives ``[[guard:<answer>]]`` and answers the ``<answer>`` of the LAST
  one verbatim, with each backslash-n pair turned into a newline: a user message containing
  ``[[guard:unsafe\\nS1,S10]]`` gets the two-line answer ``unsafe`` / ``S1,S10``. A guard prompt
  quotes the conversation in order, so the last directive is the one of the last message that has
  one. With no directive it answers ``safe``. (An answer cannot contain ``]]``.)

Two more directives script faults and pacing per test (the fake is shared by a test session, so each
test picks its own tag): ``[[delay:<seconds>]]`` waits that long before answering (a slow upstream for
one request), and ``[[script:<tag>]]`` answers from the script ``POST /_fake/script`` set for that tag,
``{"tag": "t1", "answers": [{"status": 429, "headers": {"Retry-After": "1"}}, {"status": 503,
"times": 2}, {"cut_after": 1}]}``: each request with the tag takes the next answer (``times`` uses one
answer that many times): ``status`` answers that HTTP status with a JSON error (and ``headers``) before
any byte of an answer; ``cut_after`` streams that many chunks, then drops the connection; ``text``
answers (non-streamed) with that text instead of the model's own (a generator whose answers differ, each
carrying, say, a ``[[guard:...]]`` directive for the judge that reads it next); ``delay`` waits that many
seconds first (one slow request, the next of the tag fast: a test kills a server while it waits). A tag whose
script is used up (or was never set) answers normally. ``GET /_fake/log?tag=t1`` lists the completion
requests that carried the tag, in arrival order: ``[{"tag": "t1", "model": "ok", "text": "<last
message text, 200 characters>", "stream": false, "at": <time.time()>, "status": 429}]``.
A directive ``[[mark:<name>]]`` in the messages (or prompt) names the request: ``GET /_fake/marks``
answers how many non-streamed answers each name got that reached their client (an answer to a client
that hung up first is not counted): a test proves a resumed batch did not send a finished line again.

``GET /_fake/requests`` answers how many completion requests each model name got so far (``{"slow": 3}``):
a test proves a resumed job did not send finished work again. ``GET /_fake/traceparents`` answers the
``traceparent`` headers of the last 100 completion and embedding requests that had one, oldest first
(``[{"model": "ok", "traceparent": "00-...", "tracestate": null}]``): a test proves trace context reached
the upstream.

``/v1/completions`` answers in the text completion shape (``choices[].text``), the others in the chat
shape. Every completion gets its own id (``chatcmpl-fake-<n>``, counting from 1 in each server process);
the chunks of one stream share theirs.

Whatever the model, a request with ``tools`` and ``tool_choice`` "required" or a named function
gets a tool call to that (or the first) function with arguments ``{"city": "Paris"}``, or, when the
function's parameters require properties and ``city`` is not one of them, each required property set
to ``"Paris"`` (``{"query": "Paris"}`` for a search tool). A directive ``[[args:<JSON>]]`` in the
messages (the last one) scripts the arguments instead, verbatim: ``[[args:{"code": "print(1)"}]]``
(an LLM scorer that reads its verdict from a forced tool call, as autoevals does, gets the verdict
the test wrote).

Run it with ``python -m lamina.testing.fake_openai --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import time

from aiohttp import web

MODELS = [
    "ok",
    "slow",
    "error500",
    "badjson",
    "garbage",
    "silent",
    "cut",
    "stall",
    "echo",
    "embed",
    "garbage-embed",
    "guard",
    "toolcap",
    "twocalls",
    "tools1",
    "tools3",
    "gated",
]
GARBAGE = {"foo": "bar", "choices": "nope"}

_TOOLS_MODEL = re.compile(r"tools(\d+)")
_GUARD_DIRECTIVE = re.compile(r"\[\[guard:(.*?)\]\]", re.DOTALL)
_ARGS_DIRECTIVE = re.compile(r"\[\[args:(.*?)\]\]", re.DOTALL)
_DELAY_DIRECTIVE = re.compile(r"\[\[delay:([0-9.]+)\]\]")
_SCRIPT_DIRECTIVE = re.compile(r"\[\[script:([^\]]+)\]\]")
_MARK_DIRECTIVE = re.compile(r"\[\[mark:(.*?)\]\]")
_GATE_DIRECTIVE = re.compile(r"\[\[(gate)\]\]")
_ids = itertools.count(1)


def _new_id() -> str:
    return f"chatcmpl-fake-{next(_ids)}"


def _message_texts(body: dict) -> list[str]:
    """The text of every message (string content, or the text parts of a list), in order."""
    texts: list[str] = []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            parts = [p for p in content if isinstance(p, dict) and p.get("type") == "text"]
            texts.extend(p.get("text", "") for p in parts)
    if isinstance(body.get("prompt"), str):
        texts.append(body["prompt"])
    return texts


def _guard_answer(body: dict) -> str:
    """The ``guard`` model's answer: the last ``[[guard:<answer>]]`` directive's answer, else ``safe``."""
    directives = _GUARD_DIRECTIVE.findall("\n".join(_message_texts(body)))
    return directives[-1].replace("\\n", "\n") if directives else "safe"


def _completion(model: str, text: str, cid: str | None = None) -> dict:
    return {
        "id": cid or _new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }


def _as_text_completion(doc: dict) -> dict:
    """A chat completion turned into the /v1/completions shape."""
    doc["object"] = "text_completion"
    for choice in doc["choices"]:
        choice["text"] = choice.pop("message").get("content") or ""
        choice["logprobs"] = None
    return doc


def _text_chunk(chunk: bytes) -> bytes:
    """A chat chunk (``data: {...}``) turned into the /v1/completions chunk shape."""
    doc = json.loads(chunk[6:])
    doc["object"] = "text_completion"
    for choice in doc["choices"]:  # none in a usage chunk
        choice["text"] = choice.pop("delta").get("content") or ""
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


def _forced_tool(body: dict, model: str = "ok") -> list[tuple[str, str]] | None:
    """(name, JSON arguments) of each call a request forces, if it forces one (``twocalls``: two)."""
    tools, choice = body.get("tools") or [], body.get("tool_choice")
    if not tools or choice in (None, "auto", "none"):
        return None
    functions = [t.get("function", {}) for t in tools]
    name = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    name = name or functions[0].get("name")
    first = next((i for i, f in enumerate(functions) if f.get("name") == name), 0)
    picked = [first] if model != "twocalls" else [first, (first + 1) % len(functions)]
    return [(functions[i].get("name") or name, _arguments(functions[i], body)) for i in picked]


def _arguments(function: dict, body: dict) -> str:
    scripted = _ARGS_DIRECTIVE.findall("\n".join(_message_texts(body)))
    if scripted:
        return scripted[-1]
    required = (function.get("parameters") or {}).get("required") or []
    if not required or "city" in required:
        return TOOL_ARGS
    return json.dumps({param: "Paris" for param in required})


TOOL_ARGS = '{"city": "Paris"}'
_TYPED_VALUES = {"number": 1, "integer": 1, "boolean": True, "array": [], "object": {}}


def _scripted_tool(model: str, body: dict) -> tuple[str, str, str] | None:
    """(name, JSON arguments, call id) of the call a ``tools<N>`` model makes now, if it makes one."""
    match = _TOOLS_MODEL.fullmatch(model)
    tools = [t.get("function", {}) for t in body.get("tools") or []]
    if match is None or not tools or body.get("tool_choice") == "none":
        return None
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    done = sum(1 for m in messages[last_user + 1 :] if m.get("role") == "tool")
    if done >= int(match.group(1)):
        return None
    function = tools[done % len(tools)]
    properties = (function.get("parameters") or {}).get("properties") or {}
    required = (function.get("parameters") or {}).get("required") or []
    args = {p: _TYPED_VALUES.get((properties.get(p) or {}).get("type"), "Paris") for p in required}
    return function.get("name", ""), json.dumps(args), f"call_fake{done + 1}"


def _tool_finish(model: str) -> str:
    return "length" if model == "toolcap" else "tool_calls"


def _tool_completion(model: str, calls: list[tuple[str, str, str]]) -> dict:
    """A completion calling each (name, JSON arguments, call id) of ``calls``."""
    calls_doc = [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
        for name, args, call_id in calls
    ]
    doc = _completion(model, "")
    doc["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": calls_doc}
    doc["choices"][0]["finish_reason"] = _tool_finish(model)
    return doc


def _tool_chunks(model: str, calls: list[tuple[str, str, str]], cid: str) -> list[bytes]:
    parts: list[dict] = []
    for i, (name, args, call_id) in enumerate(calls):
        opening = {"index": i, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        parts += [opening] + [
            {"index": i, "function": {"arguments": piece}} for piece in (args[:8], args[8:])
        ]
    out = [_chunk(cid, model, None, delta={"tool_calls": [p]}) for p in parts]
    out.append(_chunk(cid, model, None, _tool_finish(model)))
    return out


def _chunk(
    cid: str,
    model: str,
    text: str | None,
    finish: str | None = None,
    delta: dict | None = None,
    index: int = 0,
) -> bytes:
    delta = delta if delta is not None else ({"content": text} if text is not None else {})
    doc = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


def _usage_chunk(cid: str, model: str, choices: int, chunks: int) -> bytes:
    """OpenAI's last chunk when ``stream_options.include_usage`` is set: no choices, the usage."""
    usage = {"prompt_tokens": 5, "completion_tokens": choices * chunks, "total_tokens": 5 + choices * chunks}
    doc = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [],
        "usage": usage,
    }
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


def _directive(pattern: re.Pattern[str], body: dict) -> str | None:
    """The value of the last ``pattern`` directive in the request's messages, if any."""
    found = pattern.findall("\n".join(_message_texts(body)))
    return found[-1] if found else None


def make_app(slow_seconds: float = 5.0, chunk_interval: float = 0.0) -> web.Application:
    counts: dict[str, int] = {}
    traceparents: list[dict[str, str | None]] = []
    scripts: dict[str, list[dict]] = {}  # tag -> answers still to give, one per request
    log: list[dict] = []  # requests that carried a [[script:...]] tag

    async def set_script(request: web.Request) -> web.Response:
        doc = await request.json()
        answers = []
        for answer in doc.get("answers") or []:
            answers += [answer] * int(answer.get("times", 1))
        scripts[str(doc["tag"])] = answers
        return web.json_response({"tag": doc["tag"], "answers": len(answers)})

    async def log_seen(request: web.Request) -> web.Response:
        tag = request.query.get("tag")
        return web.json_response([entry for entry in log if tag is None or entry["tag"] == tag])

    def script_answer(body: dict, model: str) -> dict:
        """The scripted answer for this request ({} to answer normally), noted in the log."""
        tag = _directive(_SCRIPT_DIRECTIVE, body)
        if tag is None:
            return {}
        answers = scripts.get(tag) or []
        answer = answers.pop(0) if answers else {}
        texts = _message_texts(body)
        log.append(
            {
                "tag": tag,
                "model": model,
                "text": texts[-1][:200] if texts else "",
                "stream": bool(body.get("stream")),
                "at": time.time(),
                "status": int(answer.get("status", 200)),
            }
        )
        return answer

    marks: dict[str, int] = {}
    gate = asyncio.Event()
    gate.set()
    waiting = [0]

    async def requests_seen(request: web.Request) -> web.Response:
        return web.json_response(counts)

    async def marks_seen(request: web.Request) -> web.Response:
        return web.json_response(marks)

    async def gate_state(request: web.Request) -> web.Response:
        if request.method == "POST":
            (gate.set if (await request.json()).get("open") else gate.clear)()
        return web.json_response({"open": gate.is_set(), "waiting": waiting[0]})

    def answered(request: web.Request, body: dict, response: web.Response) -> web.Response:
        """``response``, counting the request's marks when its client is still there to get it."""
        if request.transport is not None and not request.transport.is_closing():
            for mark in _MARK_DIRECTIVE.findall("\n".join(_message_texts(body))):
                marks[mark] = marks.get(mark, 0) + 1
        return response

    async def traceparents_seen(request: web.Request) -> web.Response:
        return web.json_response(traceparents)

    def note_trace(request: web.Request, model: str) -> None:
        if "traceparent" in request.headers:
            traceparents.append(
                {
                    "model": model,
                    "traceparent": request.headers["traceparent"],
                    "tracestate": request.headers.get("tracestate"),
                }
            )
            del traceparents[:-100]

    async def models(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in MODELS],
            }
        )

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = body.get("model", "ok")
        counts[model] = counts.get(model, 0) + 1
        note_trace(request, model)
        text_shape = request.path.endswith("/completions") and not request.path.endswith("chat/completions")
        script = script_answer(body, model)
        delay = _directive(_DELAY_DIRECTIVE, body)
        if delay is not None:
            await asyncio.sleep(float(delay))
        if script.get("delay"):
            await asyncio.sleep(float(script["delay"]))
        if int(script.get("status", 200)) >= 400:
            return web.json_response(
                {"error": {"message": f"scripted HTTP {script['status']}"}},
                status=int(script["status"]),
                headers=script.get("headers") or {},
            )
        if model == "slow":
            await asyncio.sleep(slow_seconds)
        if (model == "gated" or _directive(_GATE_DIRECTIVE, body)) and not gate.is_set():
            waiting[0] += 1
            try:
                await gate.wait()
            finally:
                waiting[0] -= 1
        if model == "silent":
            await asyncio.sleep(3600)
        if model == "error500":
            return web.json_response({"error": {"message": "upstream exploded"}}, status=500)
        if model == "badjson":
            return web.Response(text="this is { not json", content_type="application/json")
        if model == "garbage" and not body.get("stream"):
            return web.json_response(GARBAGE)
        forced = _forced_tool(body, model) or []
        tool = [(name, args, f"call_fake{i + 1}") for i, (name, args) in enumerate(forced)] or None
        if _TOOLS_MODEL.fullmatch(model):  # its script decides, whatever tool_choice says
            scripted = _scripted_tool(model, body)
            tool = [scripted] if scripted else None
        if model == "echo":
            text = json.dumps({**body, "_authorization": request.headers.get("Authorization")})
        elif model == "guard":
            text = _guard_answer(body)
        else:
            text = "Hello from the fake upstream."
        if "text" in script:
            text = str(script["text"])
        if not body.get("stream"):
            if tool:
                return web.json_response(_tool_completion(model, tool))
            doc = _completion(model, text)
            return answered(request, body, web.json_response(_as_text_completion(doc) if text_shape else doc))
        cid = _new_id()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if model == "garbage":
            for _ in range(2):
                await resp.write(b"data: " + json.dumps(GARBAGE).encode() + b"\n\n")
            await resp.write(b"data: [DONE]\n\n")
            return resp

        async def emit(chunk: bytes) -> None:
            text_chunk = text_shape and not chunk.startswith(b"data: [DONE]")
            await resp.write(_text_chunk(chunk) if text_chunk else chunk)

        if tool or model in ("echo", "guard"):
            for piece in (
                _tool_chunks(model, tool, cid)
                if tool
                else [_chunk(cid, model, text), _chunk(cid, model, None, "stop")]
            ):
                await emit(piece)
            if (body.get("stream_options") or {}).get("include_usage"):  # a tool call's stream counts too
                await emit(_usage_chunk(cid, model, 1, 3 if tool else 1))
            await emit(b"data: [DONE]\n\n")
            return resp
        n = int(request.query.get("chunks", body.get("n_chunks", 8)))
        choices = int(body.get("n") or 1)
        for i in range(n):
            if (model == "cut" and i == 2) or i == script.get("cut_after"):
                request.transport.close()  # drop the connection mid-stream
                return resp
            if model == "stall" and i == 1:
                await asyncio.sleep(3600)
            ts = f"{time.time():.6f}"
            for index in range(choices):  # n choices interleave, as OpenAI streams them
                await emit(_chunk(cid, model, f"tok{i}@{ts} ", index=index))
            if chunk_interval:
                await asyncio.sleep(chunk_interval)
        for index in range(choices):
            await emit(_chunk(cid, model, None, "stop", index=index))
        if (body.get("stream_options") or {}).get("include_usage"):
            await emit(_usage_chunk(cid, model, choices, n))
        await emit(b"data: [DONE]\n\n")
        return resp

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        note_trace(request, str(body.get("model")))
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if body.get("model") == "garbage-embed":
            return web.json_response({"object": "list", "data": "nope"})
        data = [
            {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3, float(len(str(t)))]}
            for i, t in enumerate(inputs)
        ]
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        )

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_get("/_fake/requests", requests_seen)
    app.router.add_get("/_fake/traceparents", traceparents_seen)
    app.router.add_post("/_fake/script", set_script)
    app.router.add_get("/_fake/log", log_seen)
    app.router.add_get("/_fake/marks", marks_seen)
    app.router.add_get("/_fake/gate", gate_state)
    app.router.add_post("/_fake/gate", gate_state)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", chat)
    app.router.add_post("/v1/embeddings", embeddings)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slow-seconds", type=float, default=5.0)
    parser.add_argument("--chunk-interval", type=float, default=0.0)
    args = parser.parse_args()
    web.run_app(
        make_app(args.slow_seconds, args.chunk_interval),
        host=args.host,
        port=args.port,
        access_log=None,
        print=lambda *_: None,
        # A test double drains nothing: aiohttp's default 60 s wait for slow handlers (--slow-seconds)
        # outlasted a test's stop and cost a SIGKILL 10 s later.
        shutdown_timeout=0.1,
    )


if __name__ == "__main__":
    main()
