"""UpstreamClient retries (lamina.providers.upstream_retry) against a real scripted server on loopback."""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate
from typing import Any

import pytest
from aiohttp import web

from lamina.errors import LaminaError, RateLimitError, UpstreamError
from lamina.providers.http_upstream import UpstreamClient
from lamina.providers.upstream_probe import UpstreamProbe
from lamina.providers.upstream_retry import RetryPolicy, retry_after_seconds
from lamina.testing.processes import free_port

FAST = RetryPolicy(max_retries=2, max_seconds=10.0, base_delay=0.05, max_delay=0.2)
OK = {"choices": [{"message": {"content": "hi"}}]}
SSE_OK = b'data: {"choices": [{"delta": {"content": "a"}}]}\n\ndata: {"choices": []}\n\ndata: [DONE]\n\n'


class Scripted:
    """A loopback server answering each request with the next scripted answer (then 200 OK)."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        self.answers = list(answers)
        self.seen: list[float] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(time.monotonic())
        answer = self.answers.pop(0) if self.answers else {}
        status = answer.get("status", 200)
        if status >= 400:
            return web.json_response(
                {"error": {"message": f"scripted {status}"}}, status=status, headers=answer.get("headers")
            )
        if request.path.endswith("stream"):
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            if answer.get("cut"):
                await resp.write(b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n')
                request.transport.close()
                return resp
            await resp.write(SSE_OK)
            return resp
        return web.json_response(OK)


@pytest.fixture
async def serve():
    runners: list[web.AppRunner] = []
    clients: list[UpstreamClient] = []

    async def start(
        answers: list[dict[str, Any]], policy: RetryPolicy = FAST
    ) -> tuple[UpstreamClient, Scripted]:
        scripted = Scripted(answers)
        app = web.Application()
        app.router.add_route("*", "/v1/{tail:.*}", scripted.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]
        client = UpstreamClient("up", f"http://127.0.0.1:{port}/v1", retries=policy)
        await client.start()
        clients.append(client)
        return client, scripted

    yield start
    for client in clients:
        await client.close()
    for runner in runners:
        await runner.cleanup()


async def test_a_429_with_retry_after_is_retried_after_that_long(serve) -> None:
    client, upstream = await serve([{"status": 429, "headers": {"Retry-After": "1"}}])
    assert await client.request_json("POST", "chat", {}) == OK
    assert len(upstream.seen) == 2
    assert upstream.seen[1] - upstream.seen[0] >= 0.95


async def test_retry_after_as_an_http_date_is_honoured(serve) -> None:
    when = formatdate(time.time() + 2, usegmt=True)
    client, upstream = await serve([{"status": 503, "headers": {"Retry-After": when}}])
    assert await client.request_json("POST", "chat", {}) == OK
    # An HTTP date has whole seconds: 2 s from now is at least 1 s from now.
    assert upstream.seen[1] - upstream.seen[0] >= 0.95


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_gateway_failures_are_retried_with_backoff(serve, status: int) -> None:
    client, upstream = await serve([{"status": status}, {"status": status}])
    assert await client.request_json("POST", "chat", {}) == OK
    assert len(upstream.seen) == 3


async def test_a_failure_that_lasts_gives_up_after_the_bounded_attempts_naming_the_provider(serve) -> None:
    client, upstream = await serve([{"status": 503}] * 10)
    with pytest.raises(UpstreamError) as info:
        await client.request_json("POST", "chat", {})
    assert len(upstream.seen) == 3  # the first attempt and max_retries=2
    assert info.value.status == 502
    assert "provider 'up'" in info.value.message and "HTTP 503" in info.value.message
    assert "gave up after 3 attempts" in info.value.message


async def test_a_retry_after_past_the_time_budget_fails_at_once_passing_it_on(serve) -> None:
    client, upstream = await serve([{"status": 429, "headers": {"Retry-After": "120"}}])
    started = time.monotonic()
    with pytest.raises(RateLimitError) as info:
        await client.request_json("POST", "chat", {})
    assert time.monotonic() - started < 5
    assert len(upstream.seen) == 1
    assert info.value.headers["Retry-After"] == "120"


@pytest.mark.parametrize("status", [400, 401, 404, 500])
async def test_other_failures_are_not_retried(serve, status: int) -> None:
    client, upstream = await serve([{"status": status}])
    with pytest.raises(LaminaError) as info:
        await client.request_json("POST", "chat", {})
    assert len(upstream.seen) == 1
    assert "gave up" not in info.value.message


async def test_no_retries_when_the_policy_says_none(serve) -> None:
    client, upstream = await serve([{"status": 503}], RetryPolicy(max_retries=0))
    with pytest.raises(UpstreamError):
        await client.request_json("POST", "chat", {})
    assert len(upstream.seen) == 1


async def test_a_stream_that_fails_before_its_first_byte_is_retried(serve) -> None:
    client, upstream = await serve([{"status": 503}])
    events = [event async for event in client.stream_sse("stream", {})]
    assert len(events) == 2 and len(upstream.seen) == 2


async def test_a_stream_that_fails_after_its_first_byte_is_not_retried(serve) -> None:
    client, upstream = await serve([{"cut": True}])
    got = []
    with pytest.raises(UpstreamError):
        async for event in client.stream_sse("stream", {}):
            got.append(event)
    assert len(got) == 1 and len(upstream.seen) == 1


async def test_a_refused_connection_is_retried_until_the_server_is_there() -> None:
    """Nothing listens at first; the server starts while the client backs off."""
    port = free_port()
    client = UpstreamClient("up", f"http://127.0.0.1:{port}/v1", retries=RetryPolicy(2, 10.0, 0.4, 1.0))
    await client.start()
    scripted = Scripted([])
    app = web.Application()
    app.router.add_route("*", "/v1/{tail:.*}", scripted.handle)
    runner = web.AppRunner(app)

    async def start_later() -> None:
        await asyncio.sleep(0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    try:
        starting = asyncio.create_task(start_later())
        assert await client.request_json("POST", "chat", {}) == OK
        await starting
        assert len(scripted.seen) == 1
    finally:
        await client.close()
        await runner.cleanup()


async def test_a_health_probe_is_not_retried(serve) -> None:
    """A probe is bounded to a few seconds and must report "down" at once, not after backoffs."""
    client, upstream = await serve([{"status": 503}] * 3, RetryPolicy(2, 10.0, 1.0, 1.0))
    probe = UpstreamProbe("up", lambda: client.request_json("GET", "models"), "GET models")
    with pytest.raises(UpstreamError):
        await probe.probe()
    assert len(upstream.seen) == 1 and probe.down is not None


async def test_a_providers_health_check_is_not_retried(serve) -> None:
    """However a provider's health() asks its upstream (PLUGIN_GUIDE's example calls request_json), the
    health monitor's bounded check is one attempt, so it reports the failure, not its own timeout."""
    from lamina.provider_health import _provider_health

    client, upstream = await serve([{"status": 503}] * 3, RetryPolicy(2, 10.0, 1.0, 1.0))

    class Provider:
        async def health(self) -> dict[str, Any]:
            await client.request_json("GET", "models")
            return {"status": "OK"}

    health = await _provider_health(Provider(), 3.0)
    assert health["status"] == "Error" and "HTTP 503" in health["message"], health
    assert len(upstream.seen) == 1


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = 1_700_000_000.0
    assert retry_after_seconds("3", now) == 3.0
    assert retry_after_seconds("1.5", now) == 1.5
    assert retry_after_seconds(formatdate(now + 7, usegmt=True), now) == pytest.approx(7.0, abs=1.0)
    assert retry_after_seconds(formatdate(now - 100, usegmt=True), now) == 0.0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None
