"""The one way a provider fetches a URL a client named: ``GuardedFetcher``.

A server that GETs whatever URL a request names is a proxy into its own network: a RAG document
``http://127.0.0.1:6379/`` would read a loopback-only service and make its answer searchable, and
its error messages would tell which internal ports are open (server-side request forgery). Every
server-side fetch of a user-supplied URL (RAG documents, images, datasets, web tools) goes through
``GuardedFetcher``, configured by a ``UrlFetchConfig``:

- ``allow_remote_urls`` is false by default: nothing is fetched, whatever the address;
- only ``http`` and ``https`` are fetched (``file:``, ``gopher:``, ``ftp:``... are refused);
- ``allowed_hosts``, when not empty, is an allowlist of host names (``docs.example.com``, or
  ``*.example.com`` for its subdomains) or IP literals;
- every address a host name resolves to must be a public unicast address (``ipaddress``'s
  ``is_global``, not multicast or reserved; IPv4-mapped and NAT64 IPv6 forms are judged by the IPv4
  address they carry). Loopback (127/8, ::1), "this host" (0.0.0.0, ::), private (10/8, 172.16/12,
  192.168/16, fc00::/7), link-local (169.254/16, with the cloud metadata service 169.254.169.254,
  fe80::/10), shared (100.64/10), multicast and reserved addresses are refused, unless the address
  lies inside one of ``allowed_private_networks`` (CIDR, empty by default). Listing a host in
  ``allowed_hosts`` never lets it reach a private address: an internal wiki at 10.1.2.3 needs its
  name in ``allowed_hosts`` *and* ``10.1.2.3/32`` in ``allowed_private_networks``;
- the check is made on the address aiohttp then connects to (a resolver that refuses, plugged into
  the connector), so a DNS answer cannot change between the check and the connection (rebinding);
  IP literals, which aiohttp does not resolve, are checked before the request;
- redirects are followed by hand, at most ``max_redirects``, each hop checked as the first URL;
- the body is capped at ``max_bytes`` (``Content-Length`` first, then as it streams, 413 beyond);
  the whole fetch, redirects included, at ``timeout_seconds``; environment proxies are ignored.

Refusals are 400s naming the request field, the rule and the config field that would allow it. They
are decided before any connection, so they read the same whether anything listens at that address,
and they do not show the address a host name resolved to (that would map internal DNS names).
A connection that fails once an address was allowed says so without the operating system's reason
(refused, reset, unreachable), which would otherwise map a network port by port.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from pydantic import BaseModel, Field, field_validator
from yarl import URL

from lamina.errors import BadRequestError, PayloadTooLargeError

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UrlFetchConfig(BaseModel):
    """What a provider may fetch when a client names a URL (a provider config embeds these fields)."""

    allow_remote_urls: bool = Field(
        default=False,
        description="Fetch http(s) URLs that clients name. Off by default: a server that fetches any URL "
        "is a proxy into its own network. When on, only public addresses are fetched (see "
        "allowed_hosts and allowed_private_networks).",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="If not empty, the only hosts fetched: names ('docs.example.com'), '*.example.com' "
        "for subdomains, or IP literals. A listed host must still resolve to a public address, or to "
        "one inside allowed_private_networks.",
    )
    allowed_private_networks: list[str] = Field(
        default_factory=list,
        description="CIDR networks that may be fetched although not public (loopback, private, "
        "link-local...), e.g. ['10.1.2.0/24']. Empty by default: only public addresses.",
    )
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, gt=0, description="Largest body fetched (413 beyond).")
    timeout_seconds: float = Field(
        default=30.0, gt=0, description="Time limit of one fetch, redirects included."
    )
    max_redirects: int = Field(
        default=5, ge=0, le=20, description="Redirects followed (each hop is checked)."
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        out = []
        for host in value:
            host = host.strip().lower().rstrip(".")
            if not host or "/" in host or (":" in host and _ip(host.strip("[]")) is None):
                raise ValueError(f"allowed_hosts: {host!r} is not a host name (no scheme, port or path)")
            out.append(host.strip("[]"))
        return out

    @field_validator("allowed_private_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            try:
                ipaddress.ip_network(net.strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"allowed_private_networks: {net!r} is not a network; write CIDR, e.g. 10.0.0.0/8"
                ) from None
        return [net.strip() for net in value]


@dataclass
class FetchedUrl:
    url: str  # after redirects
    body: bytes
    content_type: str | None  # the Content-Type header as sent


def address_refusal(addr: IPAddress, config: UrlFetchConfig) -> str | None:
    """Why ``addr`` may not be fetched (e.g. ``"loopback"``), or None when it may."""
    for net in config.allowed_private_networks:
        network = ipaddress.ip_network(net, strict=False)
        if addr in network or (_embedded_v4(addr) or addr) in network:
            return None
    addr = _embedded_v4(addr) or addr
    if addr.is_global and not addr.is_multicast and not addr.is_reserved:
        return None
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(addr, f"is_{kind}"):
            return {"link_local": "link-local", "unspecified": "unspecified (this host)"}.get(kind, kind)
    return "not public"


class GuardedFetcher:
    """GETs user-supplied URLs under a ``UrlFetchConfig``; failures are 400s (413: size) naming ``param``."""

    def __init__(self, config: UrlFetchConfig) -> None:
        self.config = config

    async def fetch(self, url: str, *, param: str) -> FetchedUrl:
        config = self.config
        if not config.allow_remote_urls:
            raise BadRequestError(
                f"{param}: remote URLs are refused: this provider's config has allow_remote_urls: false; "
                f"send the content inline (a data: URI, for example), or have the operator turn "
                f"allow_remote_urls on",
                param=param,
            )
        current = _parse(url, param)
        resolver = _CheckingResolver(config)
        connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False, force_close=True)
        timeout = aiohttp.ClientTimeout(total=config.timeout_seconds)
        try:
            async with (
                asyncio.timeout(config.timeout_seconds),
                aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as session,
            ):
                for _hop in range(config.max_redirects + 1):
                    self._check_url(current, param)
                    # No traceparent: the URL is a third party's a user named, not an upstream of ours
                    # (trace ids would tell it which requests belong together).
                    async with session.get(current, allow_redirects=False) as resp:
                        if resp.status in REDIRECT_STATUSES:
                            location = resp.headers.get("Location")
                            if not location:
                                raise _bad(
                                    param, f"{_short(current)} redirected (HTTP {resp.status}) nowhere"
                                )
                            current = _parse(str(current.join(URL(location))), param)
                            continue
                        if resp.status >= 400:
                            raise _bad(
                                param, f"fetching {_short(current)} failed: HTTP {resp.status} {resp.reason}"
                            )
                        body = await self._read(resp, current, param)
                        return FetchedUrl(str(current), body, resp.headers.get("Content-Type"))
                raise _bad(
                    param,
                    f"fetching {_short(url)} was redirected more than max_redirects ({config.max_redirects}) "
                    f"times",
                )
        except _Refused as exc:
            raise _bad(param, exc.reason) from None
        except TimeoutError:
            raise _bad(
                param, f"fetching {_short(current)} took longer than {config.timeout_seconds:g}s"
            ) from None
        except aiohttp.ClientConnectorDNSError:
            raise _bad(param, f"fetching {_short(current)} failed: its host name does not resolve") from None
        except aiohttp.ClientError:
            # No OS reason (refused vs unreachable vs reset): it would map the network port by port.
            raise _bad(
                param, f"fetching {_short(current)} failed: the server could not be reached or did not answer"
            ) from None

    def _check_url(self, url: URL, param: str) -> None:
        if url.scheme not in ("http", "https"):
            raise _bad(param, f"{_short(url)}: only http and https URLs are fetched, not {url.scheme}:")
        host = (url.raw_host or "").lower().rstrip(".")
        if not host:
            raise _bad(param, f"{_short(url)}: the URL names no host")
        allowed = self.config.allowed_hosts
        if allowed and not any(host == h or (h.startswith("*.") and host.endswith(h[1:])) for h in allowed):
            raise _bad(
                param,
                f"the host {host} is not allowed: it is not in this provider's allowed_hosts "
                f"({', '.join(allowed)})",
            )
        addr = _ip(host)
        if addr is not None:  # aiohttp connects to an IP literal without asking the resolver
            _raise_if_refused(addr, host, self.config, literal=True)
        elif _legacy_ipv4(host):
            raise _Refused(
                f"the address {host} is not allowed: write an IPv4 address as four decimal numbers (a.b.c.d)"
            )

    async def _read(self, resp: aiohttp.ClientResponse, url: URL, param: str) -> bytes:
        limit = self.config.max_bytes
        if resp.content_length is not None and resp.content_length > limit:
            raise _too_large(url, resp.content_length, limit, param)
        buf = bytearray()
        async for piece in resp.content.iter_chunked(64 * 1024):
            buf += piece
            if len(buf) > limit:
                raise _too_large(url, None, limit, param)
        return bytes(buf)


_KIND_PHRASES = {
    "unspecified (this host)": "the unspecified address (this host)",
    "not public": "a non-public address",
}


def _raise_if_refused(addr: IPAddress, host: str, config: UrlFetchConfig, *, literal: bool) -> None:
    reason = address_refusal(addr, config)
    if reason is None:
        return
    phrase = _KIND_PHRASES.get(reason, f"a {reason} address")
    # A host name's resolved address stays unsaid: it would map internal DNS names to addresses.
    if literal:
        what = f"the address {host} is not allowed: it is"
    else:
        what = f"the host {host} is not allowed: it resolves to"
    raise _Refused(
        f"{what} {phrase}, and only public addresses are fetched; an operator can allow a network with "
        f"allowed_private_networks"
    )


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _CheckingResolver(AbstractResolver):
    """Resolves like aiohttp's threaded resolver, then refuses addresses the config does not allow.

    The connector connects only to the addresses returned here, so what is checked is what is used.
    """

    def __init__(self, config: UrlFetchConfig) -> None:
        self.config = config
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            addr = _ip(str(result["host"]))
            if addr is None:
                raise _Refused(f"the host {host} resolved to something that is not an IP address")
            _raise_if_refused(addr, host, self.config, literal=False)
        return results

    async def close(self) -> None:
        await self._inner.close()


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _legacy_ipv4(host: str) -> bool:
    """True for the numeric forms C's inet_aton accepts besides a.b.c.d (2130706433, 127.1, 0x7f.1)."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def _embedded_v4(addr: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::a.b.c.d) address reaches."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr in _NAT64:
            return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def _parse(url: str, param: str) -> URL:
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise _bad(param, f"{_short(url)} is not a valid URL: {exc}") from None
    if not parsed.scheme or (parsed.scheme in ("http", "https") and not parsed.is_absolute()):
        raise _bad(param, f"{_short(url)} is not an absolute http(s) URL")
    return parsed


def _bad(param: str, message: str) -> BadRequestError:
    return BadRequestError(f"{param}: {message}", param=param)


def _too_large(url: Any, size: int | None, limit: int, param: str) -> PayloadTooLargeError:
    got = f" ({size} bytes)" if size is not None else ""
    return PayloadTooLargeError(
        f"{param}: {_short(url)} is larger than this provider's limit of {limit} bytes{got}", param=param
    )


def _short(text: Any, limit: int = 100) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
