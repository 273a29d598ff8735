"""lamina.providers.http_upstream: the JSON it sends and what it accepts back, against a real server."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from lamina.errors import UpstreamError
from lamina.providers.http_upstream import UpstreamClient, loads

ANSWERS = {
    # What json.loads accepts, pydantic-core's parser does not: an escaped lone surrogate, a BOM.
    "surrogate": b'{"choices": [{"message": {"content": "\\ud800"}}]}',
    "bom": b'\xef\xbb\xbf{"ok": true}',
    "plain": b'{"n": 123456789012345678901234567890, "x": 0.1, "nan": NaN}',
    "broken": b'{"choices": [',
}


@pytest.fixture
async def upstream():
    seen: list[tuple[str, bytes]] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append((request.headers.get("Content-Type", ""), await request.read()))
        return web.Response(body=ANSWERS[request.match_info["name"]], content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/{name}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    client = UpstreamClient("up", f"http://127.0.0.1:{port}/v1", headers={"Authorization": "Bearer k"})
    await client.start()
    yield client, seen
    await client.close()
    await runner.cleanup()


async def test_the_body_goes_as_json_with_its_content_type(upstream) -> None:
    client, seen = upstream
    body = {"model": "m", "messages": [{"role": "user", "content": "héllo ✓"}], "temperature": 0.1}
    await client.request_json("POST", "plain", body, headers={"X-Extra": "1"})
    content_type, sent = seen[0]
    assert content_type == "application/json"
    assert json.loads(sent) == body


@pytest.mark.parametrize("name", ["surrogate", "bom", "plain"])
async def test_whatever_json_loads_accepts_is_accepted(upstream, name: str) -> None:
    client, _seen = upstream
    raw = ANSWERS[name]
    expected = json.loads(raw)
    got = await client.request_json("POST", name, {})
    assert json.dumps(got) == json.dumps(expected)  # NaN-safe comparison
    assert json.dumps(loads(raw)) == json.dumps(expected)


async def test_invalid_json_is_still_a_502_naming_the_provider(upstream) -> None:
    client, _seen = upstream
    with pytest.raises(UpstreamError, match="invalid JSON") as info:
        await client.request_json("POST", "broken", {})
    assert info.value.status == 502


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [
        ("http://127.0.0.1:{free}/v1", "Connection refused"),  # nothing listens there
        ("http://no-such-host.invalid/v1", "its host name does not resolve"),  # RFC 2606: never resolves
    ],
)
async def test_a_connect_error_names_why_but_never_the_address(base_url: str, reason: str) -> None:
    from lamina.testing.processes import free_port

    free = free_port()
    client = UpstreamClient("up", base_url.format(free=free))
    await client.start()
    try:
        with pytest.raises(UpstreamError) as err:
            await client.request_json("POST", "chat/completions", {"model": "m"})
    finally:
        await client.close()
    message = str(err.value)
    assert "provider 'up'" in message and reason in message
    assert str(free) not in message and "no-such-host" not in message  # the address stays in the log
