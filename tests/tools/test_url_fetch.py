"""lamina.providers.url_fetch: the guarded fetcher of user-supplied URLs (server-side request forgery).

Every server here listens on loopback: the fetcher's refusal of loopback is what most tests prove,
and the tests that fetch allow loopback explicitly, in that fetcher's own config
(``allowed_private_networks``), never by turning the guard off.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from pydantic import ValidationError

from lamina.apis.common import URL
from lamina.errors import BadRequestError, PayloadTooLargeError
from lamina.providers import url_fetch
from lamina.providers.documents.loading import DocumentSourceConfig, load_document
from lamina.providers.url_fetch import GuardedFetcher, UrlFetchConfig, address_refusal
from lamina.testing.processes import free_port

LOOPBACK_ONLY = ["127.0.0.1/32"]
SECRET = "internal-only admin token 7f3a"


@dataclass
class Site:
    url: str
    port: int
    hits: list[str] = field(default_factory=list)


async def _serve(host: str, routes: dict[str, web.StreamResponse | object]) -> tuple[web.AppRunner, Site]:
    site_info = Site(url="", port=0)

    @web.middleware
    async def count(request: web.Request, handler):  # type: ignore[no-untyped-def]
        site_info.hits.append(request.path)
        return await handler(request)

    app = web.Application(middlewares=[count])
    for path, handler in routes.items():
        app.router.add_get(path, handler)  # type: ignore[arg-type]
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, host, 0)
    await tcp.start()
    site_info.port = tcp._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    site_info.url = f"http://{host}:{site_info.port}"
    return runner, site_info


@pytest.fixture
async def internal() -> AsyncIterator[Site]:
    """A loopback-only 'internal service' that must never be read through the fetcher."""

    async def secret(request: web.Request) -> web.Response:
        return web.Response(text=SECRET)

    runner, site = await _serve("127.0.0.1", {"/admin": secret})
    yield site
    await runner.cleanup()


@pytest.fixture
async def other_loopback() -> AsyncIterator[Site]:
    """A second loopback address (Linux routes all of 127/8 to lo), outside LOOPBACK_ONLY."""

    async def secret(request: web.Request) -> web.Response:
        return web.Response(text=SECRET)

    runner, site = await _serve("127.0.0.2", {"/admin": secret})
    yield site
    await runner.cleanup()


@pytest.fixture
async def public(other_loopback: Site) -> AsyncIterator[Site]:
    """Plays a public web site: only its fetcher's config allows its address (127.0.0.1)."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="public page", content_type="text/plain")

    async def hop(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.Response(text="late")

    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(10):
            await resp.write(b"z" * 1000)
        await resp.write_eof()
        return resp

    runner, site = await _serve(
        "127.0.0.1", {"/page": page, "/hop": hop, "/loop": loop, "/slow": slow, "/big": big}
    )
    yield site
    await runner.cleanup()


def _allowing_loopback(**kwargs) -> GuardedFetcher:  # type: ignore[no-untyped-def]
    return GuardedFetcher(
        UrlFetchConfig(allow_remote_urls=True, allowed_private_networks=LOOPBACK_ONLY, **kwargs)
    )


async def _refusal(fetcher: GuardedFetcher, url: str) -> str:
    with pytest.raises(BadRequestError) as exc:
        await fetcher.fetch(url, param="documents[0].content")
    assert exc.value.status == 400
    return exc.value.message


async def test_documents_are_not_fetched_by_default_open_and_closed_ports_alike(internal: Site) -> None:
    """The defect: the default config fetched a loopback-only service and returned its body."""
    closed = free_port()
    messages = []
    for port in (internal.port, closed):
        with pytest.raises(BadRequestError) as exc:
            await load_document(URL(uri=f"http://127.0.0.1:{port}/admin"), param="documents[0].content")
        messages.append(exc.value.message.replace(str(port), "PORT"))
    assert internal.hits == [], "nothing was requested"
    assert messages[0] == messages[1], "an open port reads like a closed one"
    assert "remote URLs are refused" in messages[0] and "allow_remote_urls: false" in messages[0]
    assert DocumentSourceConfig().allow_remote_urls is False


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "2130706433", "[::ffff:127.0.0.1]", "127.1", "0.0.0.0"],
)
async def test_loopback_is_refused_when_remote_urls_are_on(internal: Site, host: str) -> None:
    fetcher = GuardedFetcher(UrlFetchConfig(allow_remote_urls=True))
    closed = free_port()
    open_msg = await _refusal(fetcher, f"http://{host}:{internal.port}/admin")
    closed_msg = await _refusal(fetcher, f"http://{host}:{closed}/admin")
    assert internal.hits == []
    assert open_msg.replace(str(internal.port), "PORT") == closed_msg.replace(str(closed), "PORT")
    assert SECRET not in open_msg
    assert "is not allowed" in open_msg
    if host in ("127.1", "2130706433"):  # numeric forms that inet_aton reads as 127.0.0.1
        assert "write an IPv4 address as four decimal numbers" in open_msg
    else:
        assert "allowed_private_networks" in open_msg
    if host == "[::ffff:127.0.0.1]":  # yarl writes it ::ffff:7f00:1
        assert "the address ::ffff:7f00:1 is not allowed: it is a loopback address" in open_msg


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified (this host)"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::a9fe:a9fe", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff0e::1", "multicast"),
        ("100.64.0.1", "not public"),
        ("240.0.0.1", "reserved"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_only_public_unicast_addresses_are_allowed(address: str, reason: str | None) -> None:
    assert address_refusal(ipaddress.ip_address(address), UrlFetchConfig()) == reason


def test_allowed_private_networks_open_only_what_they_list() -> None:
    config = UrlFetchConfig(allowed_private_networks=["10.1.0.0/16"])
    assert address_refusal(ipaddress.ip_address("10.1.2.3"), config) is None
    assert address_refusal(ipaddress.ip_address("::ffff:10.1.2.3"), config) is None
    assert address_refusal(ipaddress.ip_address("10.2.0.1"), config) == "private"
    assert address_refusal(ipaddress.ip_address("127.0.0.1"), config) == "loopback"


async def test_allowed_network_is_fetched_and_its_redirects_checked_again(
    public: Site, other_loopback: Site
) -> None:
    fetcher = _allowing_loopback()
    page = await fetcher.fetch(public.url + "/page", param="p")
    assert (page.body, page.content_type) == (b"public page", "text/plain; charset=utf-8")
    hopped = await fetcher.fetch(f"{public.url}/hop?to=/page", param="p")
    assert (hopped.body, hopped.url) == (b"public page", public.url + "/page")
    # A redirect from an allowed address to a refused one is refused before it is followed.
    message = await _refusal(fetcher, f"{public.url}/hop?to={other_loopback.url}/admin")
    assert "the address 127.0.0.2 is not allowed: it is a loopback address" in message
    message = await _refusal(fetcher, f"{public.url}/hop?to=file:///etc/passwd")
    assert "only http and https URLs are fetched, not file:" in message
    assert other_loopback.hits == []
    message = await _refusal(_allowing_loopback(max_redirects=3), public.url + "/loop")
    assert "redirected more than max_redirects (3) times" in message
    assert public.hits.count("/loop") == 4


async def test_allowed_hosts_is_an_allowlist_that_does_not_open_private_addresses(public: Site) -> None:
    elsewhere = _allowing_loopback(allowed_hosts=["docs.example.com", "*.example.org"])
    message = await _refusal(elsewhere, public.url + "/page")
    assert "the host 127.0.0.1 is not allowed: it is not in this provider's allowed_hosts" in message
    listed_only = GuardedFetcher(UrlFetchConfig(allow_remote_urls=True, allowed_hosts=["localhost"]))
    message = await _refusal(listed_only, f"http://localhost:{public.port}/page")
    assert "the host localhost is not allowed: it resolves to a loopback address" in message, (
        "an allowlisted host may reach a private address only inside allowed_private_networks"
    )
    assert "127.0.0.1" not in message, "a host name's internal address is not revealed"
    both = _allowing_loopback(allowed_hosts=["LOCALHOST."])
    assert (await both.fetch(f"http://localhost:{public.port}/page", param="p")).body == b"public page"
    assert public.hits == ["/page"]


async def test_every_connection_is_checked_on_the_address_it_uses(
    public: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: a name that first resolves to an allowed address, then to a refused one.

    The system resolver cannot be pointed at a DNS server a test runs, so a scripted resolver stands
    in for DNS (the only fake here); the connections are real.
    """
    answers = ["127.0.0.1", "127.0.0.2"]

    class ScriptedDNS:
        async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[dict]:
            addr = answers.pop(0)
            return [{"hostname": host, "host": addr, "port": port, "family": 2, "proto": 0, "flags": 0}]

        async def close(self) -> None:
            pass

    async def secret(request: web.Request) -> web.Response:
        rebound.append(request.path)
        return web.Response(text=SECRET)

    # The rebound address serves a secret on the very port the first answer served the public page.
    rebound: list[str] = []
    app = web.Application()
    app.router.add_get("/page", secret)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.2", public.port).start()
    monkeypatch.setattr(url_fetch.aiohttp, "ThreadedResolver", ScriptedDNS)
    fetcher = _allowing_loopback(allowed_hosts=["rebind.test"])
    # Same name, same port on both addresses: the redirect's connection resolves again.
    try:
        message = await _refusal(
            fetcher, f"http://rebind.test:{public.port}/hop?to=http://rebind.test:{public.port}/page"
        )
    finally:
        await runner.cleanup()
    assert "the host rebind.test is not allowed: it resolves to a loopback address" in message
    assert answers == [] and public.hits == ["/hop"] and rebound == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://example.com/x"])
async def test_schemes_other_than_http_are_refused(url: str) -> None:
    message = await _refusal(_allowing_loopback(), url)
    assert "only http and https URLs are fetched" in message


async def test_size_and_time_limits(public: Site) -> None:
    with pytest.raises(PayloadTooLargeError, match=r"big is larger than this provider's limit of 4000 bytes"):
        await _allowing_loopback(max_bytes=4000).fetch(public.url + "/big", param="p")
    message = await _refusal(_allowing_loopback(timeout_seconds=0.5), public.url + "/slow")
    assert "took longer than 0.5s" in message


async def test_a_closed_allowed_port_says_so_without_the_os_reason() -> None:
    port = free_port()
    message = await _refusal(_allowing_loopback(), f"http://127.0.0.1:{port}/x")
    assert message == (
        f"documents[0].content: fetching http://127.0.0.1:{port}/x failed: the server could not be "
        f"reached or did not answer"
    )


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValidationError, match=r"allowed_private_networks: '10\.0\.0' is not a network"):
        UrlFetchConfig(allowed_private_networks=["10.0.0"])
    with pytest.raises(ValidationError, match=r"allowed_hosts: 'http://x' is not a host name"):
        UrlFetchConfig(allowed_hosts=["http://x"])
    with pytest.raises(ValidationError, match="allowed_private_networks"):
        DocumentSourceConfig(allow_remote_urls=True, allowed_private_networks=["nope"])
    assert UrlFetchConfig(allowed_hosts=["[::1]", "Docs.Example.com."]).allowed_hosts == [
        "::1",
        "docs.example.com",
    ]


async def test_a_fetch_carries_no_trace_context_to_the_site() -> None:
    """A URL a user names is a third party's, not an upstream of this server: the caller's trace id
    (``traceparent``) stays in, telemetry on or off (it would tell the site which requests are one trace)."""
    from opentelemetry.sdk.trace import TracerProvider

    from lamina import telemetry

    seen: list[dict[str, str]] = []

    async def page(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(text="public page")

    runner, site = await _serve("127.0.0.1", {"/doc": page})
    provider = TracerProvider()
    telemetry.activate(telemetry.TelemetrySettings(tracer_provider=provider))
    try:
        with provider.get_tracer("test").start_as_current_span("request"):
            fetched = await _allowing_loopback().fetch(f"{site.url}/doc", param="url")
    finally:
        telemetry.deactivate()
        provider.shutdown()
        await runner.cleanup()
    assert fetched.body == b"public page"
    assert seen and not {"traceparent", "tracestate"} & {name.lower() for name in seen[0]}
