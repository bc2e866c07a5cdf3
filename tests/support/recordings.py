"""A partner's recording host for tests: a real aiohttp server on loopback with the behaviours
recording hosts have in the wild (slow, flaky, wrong, huge, redirecting)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class RecordingHost:
    """Serves ``files`` by name and counts requests per path."""

    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # name -> (body, content type)
    hits: Counter[str] = field(default_factory=Counter)
    base_url: str = ""
    fail_first: dict[str, list[int]] = field(default_factory=dict)  # name -> statuses before success
    stall_s: float = 30.0
    redirects: dict[str, str] = field(default_factory=dict)  # name -> Location
    started: asyncio.Event = field(default_factory=asyncio.Event)  # a body started streaming
    closing: asyncio.Event = field(default_factory=asyncio.Event)  # ends every stall at shutdown

    def url(self, name: str) -> str:
        return f"{self.base_url}/r/{name}"

    def add(self, name: str, body: bytes, content_type: str = "application/octet-stream") -> str:
        self.files[name] = (body, content_type)
        return self.url(name)

    async def _stall(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closing.wait(), self.stall_s)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.hits[name] += 1
        if name in self.redirects:
            raise web.HTTPFound(self.redirects[name])
        pending = self.fail_first.get(name)
        if pending:
            status = pending.pop(0)
            headers = {"Retry-After": "1"} if status in (429, 503) else {}
            return web.Response(status=status, headers=headers, text="try later")
        if name == "stall":
            await self._stall()
            return web.Response(status=200, body=b"late")
        if name.startswith("stall-mid-"):  # headers and some bytes, then silence
            body, ctype = self.files[name]
            response = web.StreamResponse(headers={"Content-Type": ctype, "Content-Length": str(len(body))})
            await response.prepare(request)
            await response.write(body[: len(body) // 3])
            self.started.set()
            await self._stall()
            await response.write(body[len(body) // 3 :])
            return response
        if name.startswith("endless"):  # more than any cap, never a Content-Length
            response = web.StreamResponse(headers={"Content-Type": "audio/mpeg"})
            await response.prepare(request)
            chunk = b"\xff\xfb\x90\x00" * 16384
            with contextlib.suppress(ConnectionResetError):
                for _ in range(100_000):
                    await response.write(chunk)
            return response
        if name not in self.files:
            return web.Response(status=404, text="no such recording")
        body, ctype = self.files[name]
        return web.Response(body=body, content_type=ctype)


@contextlib.asynccontextmanager
async def recording_host(host: str = "127.0.0.1") -> AsyncIterator[RecordingHost]:
    state = RecordingHost()
    app = web.Application()
    app.router.add_get("/r/{name}", state.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.base_url = f"http://{host}:{port}"
    try:
        yield state
    finally:
        state.closing.set()
        await runner.cleanup()
