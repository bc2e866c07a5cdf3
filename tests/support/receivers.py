"""Partners' callback receivers for tests and benchmarks: real aiohttp servers on loopback, HTTPS
with a throw-away CA (trustme) the notifier is told to trust, scripted per path to answer
statuses, redirects, Retry-After, or to hang."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import trustme
from aiohttp import web

HANG = "hang"

Response = int | tuple[int, dict[str, str]] | str  # a status, a status with headers, or HANG


class TestCa:
    """A CA and a server certificate for 127.0.0.1, ::1 and localhost."""

    __test__ = False  # not a pytest class

    def __init__(self) -> None:
        self.ca = trustme.CA()
        self.server_cert = self.ca.issue_cert("127.0.0.1", "::1", "localhost")

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def write_bundle(self, directory: Path) -> Path:
        """The CA certificate as a PEM file (for ``NOTIFIER_CA_BUNDLE``)."""
        path = directory / "test-ca.pem"
        self.ca.cert_pem.write_to_path(str(path))
        return path


@dataclass(frozen=True)
class Received:
    name: str
    at: float  # time.monotonic() on arrival
    wall: float  # time.time() on arrival
    headers: dict[str, str]
    body: bytes
    answer: int | None  # None while hanging or when released without answer


@dataclass
class Receiver:
    """Answers ``POST /hook/{name}``: the next scripted response for ``name``, else 200."""

    base_url: str = ""
    requests: list[Received] = field(default_factory=list)
    scripts: dict[str, list[Response]] = field(default_factory=dict)
    always: dict[str, Response] = field(default_factory=dict)
    hanging: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    def url(self, name: str) -> str:
        return f"{self.base_url}/hook/{name}"

    def script(self, name: str, *responses: Response) -> str:
        """Answer ``responses`` in order, then 200; returns the URL."""
        self.scripts[name] = list(responses)
        return self.url(name)

    def answer_always(self, name: str, response: Response) -> str:
        self.always[name] = response
        return self.url(name)

    def hits(self, name: str) -> list[Received]:
        return [r for r in self.requests if r.name == name]

    async def wait_for(self, name: str, count: int, timeout: float = 30.0) -> list[Received]:
        """The first ``count`` requests to ``name``, waiting up to ``timeout`` for them."""
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(self.hits(name)) >= count), timeout)
        return self.hits(name)[:count]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        body = await request.read()
        pending = self.scripts.get(name)
        response: Response = pending.pop(0) if pending else self.always.get(name, 200)
        status, headers = (response, {}) if isinstance(response, int | str) else response
        received = Received(
            name=name,
            at=time.monotonic(),
            wall=time.time(),
            headers=dict(request.headers),
            body=body,
            answer=None if status == HANG else int(status),
        )
        async with self.arrived:
            self.requests.append(received)
            self.arrived.notify_all()
        if status == HANG:
            self.hanging += 1
            try:
                await self.released.wait()
            finally:
                self.hanging -= 1
            return web.Response(status=200, text="late")
        return web.Response(status=int(status), headers=headers, text="ok" if int(status) < 300 else "no")


@contextlib.asynccontextmanager
async def receiver(tls: TestCa | None, host: str = "127.0.0.1") -> AsyncIterator[Receiver]:
    """A receiver on a free port of ``host``: HTTPS with ``tls``'s certificate, or plain HTTP."""
    state = Receiver()
    app = web.Application()
    app.router.add_post("/hook/{name}", state.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, host, 0, ssl_context=tls.server_context() if tls else None)
    await site.start()
    port = runner.addresses[0][1]
    state.base_url = f"{'https' if tls else 'http'}://{host}:{port}"
    try:
        yield state
    finally:
        state.released.set()  # ends every hang
        await runner.cleanup()
