"""SSRF guard against real aiohttp servers on loopback.

Everything here runs on loopback, so public targets cannot be reached end to end; what is tested
for real is the blocking side: refused requests never reach a listener (TCP accepts are counted,
not just HTTP requests), and redirects are followed only to allowed addresses. Linux routes all of
127.0.0.0/8 to ``lo``, so 127.0.0.2 serves as "another, not allowed, loopback host".
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from services.common.ssrf import (
    BlockedAddress,
    SsrfPolicy,
    TooManyRedirects,
    UnsupportedScheme,
    guarded_request,
    make_session,
    parse_networks,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TIMEOUT = aiohttp.ClientTimeout(total=5)


@dataclass
class Listener:
    """A real aiohttp server whose every TCP accept is counted (its protocol factory is wrapped)."""

    host: str
    port: int = 0
    accepts: int = 0
    requests: list[tuple[str, str, bytes, dict[str, str]]] = field(default_factory=list)

    def url(self, path: str = "/", host: str | None = None) -> str:
        host = host or self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}{path}"


@asynccontextmanager
async def serve(host: str, handler: Handler | None = None, port: int = 0) -> AsyncIterator[Listener]:
    listener = Listener(host)

    async def record(request: web.Request) -> web.StreamResponse:
        listener.requests.append((request.method, request.path_qs, await request.read(), dict(request.headers)))
        if handler is None:
            return web.Response(text=f"reached {listener.host}")
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    protocol_factory = runner.server
    assert protocol_factory is not None

    def counted() -> asyncio.Protocol:
        listener.accepts += 1
        return protocol_factory()

    server = await asyncio.get_running_loop().create_server(counted, host, port)
    listener.port = server.sockets[0].getsockname()[1]
    try:
        yield listener
    finally:
        server.close()
        await runner.cleanup()
        await server.wait_closed()


def redirect_to(location: str | Callable[[web.Request], str], status: int = 302) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        target = location(request) if callable(location) else location
        return web.Response(status=status, headers={"Location": target}, text="moved")

    return handler


class FixedResolver(AbstractResolver):
    """Answers every name with fixed addresses: a DNS server under the attacker's control."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            ResolveResult(hostname=host, host=a, port=port, family=socket.AF_INET, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


def policy(allow: str = "", **kwargs: Any) -> SsrfPolicy:
    return SsrfPolicy(allow_networks=parse_networks(allow), **kwargs)


@pytest.fixture
async def canary() -> AsyncIterator[Listener]:
    async with serve("127.0.0.1") as listener:
        yield listener


# ------------------------------------------------------------------------------ allowlist off


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "2130706433", "0x7f000001", "0x7f.0.0.1", "0177.0.0.1", "127.1", "::ffff:127.0.0.1", "localhost"],
)
async def test_loopback_canary_is_never_reached(canary: Listener, host: str) -> None:
    async with make_session(SsrfPolicy(), timeout=TIMEOUT) as session:
        with pytest.raises(BlockedAddress):
            await guarded_request(session, "GET", canary.url(host=host), follow_redirects=True)
    assert canary.accepts == 0


async def test_connector_blocks_even_without_check_url(canary: Listener) -> None:
    """The session's own resolver and socket factory refuse, for callers that skip guarded_request."""
    async with make_session(SsrfPolicy(), timeout=TIMEOUT) as session:
        with pytest.raises(aiohttp.ClientConnectorError, match="SSRF policy"):
            await session.get(canary.url())  # IP literal: aiohttp skips the resolver
        with pytest.raises(BlockedAddress):
            await session.get(canary.url(host="localhost"))  # resolver refuses
    assert canary.accepts == 0


async def test_ipv6_loopback_canary_is_never_reached() -> None:
    async with AsyncExitStack() as stack:
        try:
            listener = await stack.enter_async_context(serve("::1"))
        except OSError:
            pytest.skip("no IPv6 loopback")
        session = await stack.enter_async_context(make_session(SsrfPolicy(), timeout=TIMEOUT))
        with pytest.raises(BlockedAddress):
            await guarded_request(session, "GET", listener.url(), follow_redirects=False)
        with pytest.raises(aiohttp.ClientConnectorError, match="SSRF policy"):
            await session.get(listener.url())
        assert listener.accepts == 0


async def test_hostname_resolving_to_loopback_is_blocked_at_the_resolver(canary: Listener) -> None:
    """DNS under attacker control (rebinding): whatever the name, the answer is what is checked."""
    dns = FixedResolver("127.0.0.1")
    async with make_session(SsrfPolicy(), timeout=TIMEOUT, resolver=dns) as session:
        with pytest.raises(
            BlockedAddress, match=r"does not resolve to an allowed address: recordings\.partner\.example"
        ):
            await guarded_request(
                session, "GET", f"http://recordings.partner.example:{canary.port}/a.mp3", follow_redirects=True
            )
    assert dns.asked == ["recordings.partner.example"]
    assert canary.accepts == 0


async def test_mixed_answer_connects_only_to_the_allowed_address() -> None:
    async with AsyncExitStack() as stack:
        allowed = await stack.enter_async_context(serve("127.0.0.1"))
        try:
            blocked = await stack.enter_async_context(serve("127.0.0.2", port=allowed.port))
        except OSError:
            pytest.skip("port taken on 127.0.0.2")
        dns = FixedResolver("127.0.0.2", "127.0.0.1", "127.0.0.2")
        session = await stack.enter_async_context(
            make_session(policy("127.0.0.1/32"), timeout=TIMEOUT, resolver=dns, use_dns_cache=False, force_close=True)
        )
        for _ in range(3):
            _, text = await fetch(session, "GET", f"http://mixed.example:{allowed.port}/")
            assert text == "reached 127.0.0.1"
        assert blocked.accepts == 0
        assert allowed.accepts == 3  # a new connection, and a new answer, each time
        assert len(dns.asked) == 3


# ------------------------------------------------------------------------------- allowlist on


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """Allows 127.0.0.1/32 only: a server on 127.0.0.2 stands for a blocked internal host."""
    async with make_session(policy("127.0.0.1/32"), timeout=TIMEOUT) as guarded:
        yield guarded


async def fetch(session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> tuple[int, str]:
    async with await guarded_request(session, method, url, follow_redirects=True, **kwargs) as response:
        return response.status, await response.text()


async def test_redirect_to_an_allowed_host_is_followed(session: aiohttp.ClientSession) -> None:
    async with serve("127.0.0.1") as target, serve("127.0.0.1", redirect_to(target.url("/final?x=1"))) as start:
        assert await fetch(session, "GET", start.url("/start")) == (200, "reached 127.0.0.1")
    assert [(m, p) for m, p, _, _ in start.requests] == [("GET", "/start")]
    assert [(m, p) for m, p, _, _ in target.requests] == [("GET", "/final?x=1")]


async def test_relative_redirects_are_joined_to_the_current_url(session: aiohttp.ClientSession) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/a/b":
            return await redirect_to("../c")(request)
        if request.path == "/c":
            return await redirect_to(f"//127.0.0.1:{request.url.port}/done#frag", status=301)(request)
        return web.Response(text="done")

    async with serve("127.0.0.1", handler) as server:
        assert await fetch(session, "GET", server.url("/a/b")) == (200, "done")
    assert [p for _, p, _, _ in server.requests] == ["/a/b", "/c", "/done"]


async def test_redirect_to_a_blocked_address_never_reaches_it(session: aiohttp.ClientSession) -> None:
    async with serve("127.0.0.2") as b, serve("127.0.0.1", redirect_to(b.url("/internal"))) as a:
        with pytest.raises(BlockedAddress):
            await guarded_request(session, "GET", a.url(), follow_redirects=True)
        # The connector alone refuses it too.
        with pytest.raises(aiohttp.ClientConnectorError, match="SSRF policy"):
            await session.get(b.url())
        assert len(a.requests) == 1
    assert b.accepts == 0


@pytest.mark.parametrize(
    "location",
    ["http://2130706434:{port}/", "http://[::ffff:127.0.0.2]:{port}/", "http://169.254.169.254/latest/meta-data/"],
)
async def test_redirect_to_blocked_literal_forms(session: aiohttp.ClientSession, location: str) -> None:
    async with serve("127.0.0.2") as b, serve("127.0.0.1", redirect_to(location.format(port=b.port))) as a:
        with pytest.raises(BlockedAddress):
            await guarded_request(session, "GET", a.url(), follow_redirects=True)
    assert b.accepts == 0


async def test_redirect_to_a_hostname_resolving_to_a_blocked_address() -> None:
    """Allowlist 127.0.0.2/32 only; "localhost" resolves to 127.0.0.1, where the canary listens."""
    async with (
        serve("127.0.0.1") as canary,
        serve("127.0.0.2", redirect_to(canary.url(host="localhost"))) as a,
        make_session(policy("127.0.0.2/32"), timeout=TIMEOUT) as session,
    ):
        with pytest.raises(BlockedAddress, match="does not resolve to an allowed address: localhost"):
            await guarded_request(session, "GET", a.url(), follow_redirects=True)
        with pytest.raises(BlockedAddress, match="does not resolve to an allowed address: localhost"):
            await guarded_request(session, "GET", canary.url(host="localhost"), follow_redirects=False)
        assert len(a.requests) == 1
        assert canary.accepts == 0


async def test_redirect_to_an_unsupported_scheme(session: aiohttp.ClientSession) -> None:
    async with serve("127.0.0.1", redirect_to("file:///etc/passwd")) as a:
        with pytest.raises(UnsupportedScheme):
            await guarded_request(session, "GET", a.url(), follow_redirects=True)


async def test_redirect_loop_stops_after_max_redirects(session: aiohttp.ClientSession) -> None:
    async with (
        serve("127.0.0.1", redirect_to(lambda r: f"/hop{int(r.path[4:] or 0) + 1}")) as a,
        make_session(policy("127.0.0.1/32", max_redirects=0), timeout=TIMEOUT) as no_redirects,
    ):
        with pytest.raises(TooManyRedirects):
            await guarded_request(session, "GET", a.url("/hop"), follow_redirects=True)
        with pytest.raises(TooManyRedirects):
            await guarded_request(no_redirects, "GET", a.url("/hop"), follow_redirects=True)
    # 1 request + 5 followed redirects, the 6th redirect refused; then 1 request with max 0.
    assert [p for _, p, _, _ in a.requests] == ["/hop", "/hop1", "/hop2", "/hop3", "/hop4", "/hop5", "/hop"]


async def test_five_redirects_are_allowed(session: aiohttp.ClientSession) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        n = int(request.path[4:] or 0)
        return await redirect_to(f"/hop{n + 1}")(request) if n < 5 else web.Response(text="landed")

    async with serve("127.0.0.1", handler) as a:
        assert await fetch(session, "GET", a.url("/hop")) == (200, "landed")
    assert len(a.requests) == 6


async def test_without_follow_redirects_the_3xx_is_returned_untouched(session: aiohttp.ClientSession) -> None:
    async with serve("127.0.0.2") as b, serve("127.0.0.1", redirect_to(b.url("/x"), status=307)) as a:
        response = await guarded_request(session, "POST", a.url("/hook"), follow_redirects=False, json={"k": 1})
        async with response:
            assert response.status == 307
            assert response.headers["Location"] == b.url("/x")
            assert await response.text() == "moved"
        assert [(m, p, body) for m, p, body, _ in a.requests] == [("POST", "/hook", b'{"k": 1}')]
    assert b.accepts == 0


async def test_post_redirect_methods(session: aiohttp.ClientSession) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        status = {"/303": 303, "/302": 302, "/307": 307, "/308": 308}.get(request.path)
        return await redirect_to("/end", status)(request) if status else web.Response(text=request.method)

    async with serve("127.0.0.1", handler) as a:
        for path, method in [("/303", "GET"), ("/302", "GET"), ("/307", "POST"), ("/308", "POST")]:
            assert await fetch(session, "POST", a.url(path), data=b"payload") == (200, method)
    ends = [(m, body) for m, p, body, _ in a.requests if p == "/end"]
    assert ends == [("GET", b""), ("GET", b""), ("POST", b"payload"), ("POST", b"payload")]


async def test_credentials_are_not_sent_to_another_origin(session: aiohttp.ClientSession) -> None:
    async with serve("127.0.0.1") as other, serve("127.0.0.1", redirect_to(other.url("/x"))) as a:
        headers = {"Authorization": "Bearer secret", "X-Trace": "t1"}
        assert await fetch(session, "GET", a.url(), headers=headers) == (200, "reached 127.0.0.1")
    assert a.requests[0][3]["Authorization"] == "Bearer secret"
    assert "Authorization" not in other.requests[0][3]
    assert other.requests[0][3]["X-Trace"] == "t1"


async def test_https_only_policy_refuses_before_connecting(canary: Listener) -> None:
    async with make_session(policy("127.0.0.1/32", schemes=frozenset({"https"})), timeout=TIMEOUT) as session:
        with pytest.raises(UnsupportedScheme):
            await guarded_request(session, "POST", canary.url(), follow_redirects=False, json={})
    assert canary.accepts == 0


async def test_guarded_request_needs_a_guarded_session(canary: Listener) -> None:
    async with aiohttp.ClientSession() as plain:
        with pytest.raises(TypeError):
            await guarded_request(plain, "GET", canary.url(), follow_redirects=False)
    async with make_session(policy("127.0.0.1/32"), timeout=TIMEOUT) as session:
        with pytest.raises(TypeError):
            await guarded_request(session, "GET", canary.url(), follow_redirects=False, proxy="http://127.0.0.1:1")
        with pytest.raises(TypeError):
            await guarded_request(session, "GET", canary.url(), follow_redirects=False, allow_redirects=True)
    assert canary.accepts == 0
