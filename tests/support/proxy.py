"""A recording reverse proxy between a client and the gateway: a real aiohttp server on loopback
that forwards every request, records what crossed the wire (each ingestion request's call ids
and the gateway's answer per call), and can hold the gateway's successful ingestion answers for
a moment, so a client killed meanwhile loses an answer the gateway has already given."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

INGEST = "/api/v1/partner/ingest/batch-call"
# Hop-by-hop and recomputed headers are not forwarded.
_DROP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}


@dataclass
class Exchange:
    method: str
    path: str
    status: int
    ids: list[str]  # call ids of an ingestion request
    outcomes: dict[str, str]  # id -> accepted | duplicate, from a 200 answer


@dataclass
class RecordingProxy:
    upstream: str
    hold_s: float = 0.0
    base_url: str = ""
    exchanges: list[Exchange] = field(default_factory=list)
    holding: int = 0  # ingestion answers recorded by the gateway, not yet relayed

    def ingested(self, status: int = 200) -> Counter[str]:
        """How many requests answered ``status`` carried each call id."""
        return Counter(i for e in self.exchanges if e.path == INGEST and e.status == status for i in e.ids)

    def outcomes(self) -> Counter[str]:
        return Counter(o for e in self.exchanges for o in e.outcomes.values())

    def statuses(self, path: str = INGEST) -> Counter[int]:
        return Counter(e.status for e in self.exchanges if e.path == path)

    @property
    def accepted(self) -> int:
        return self.outcomes()["accepted"]

    async def handle(self, request: web.Request, session: aiohttp.ClientSession) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        async with session.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers, allow_redirects=False
        ) as upstream:
            data = await upstream.read()
            reply_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _DROP}
            status = upstream.status
        ids, outcomes = [], {}
        if request.path == INGEST:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                ids = [c["call"]["id"] for c in json.loads(body)["data"]]
            if status == 200:
                outcomes = {c["id"]: c["status"] for c in json.loads(data)["data"]["calls"]}
        self.exchanges.append(Exchange(request.method, request.path, status, ids, outcomes))
        if request.path == INGEST and status == 200 and self.hold_s:
            self.holding += 1
            try:
                await asyncio.sleep(self.hold_s)
            finally:
                self.holding -= 1
        return web.Response(status=status, body=data, headers=reply_headers)


@contextlib.asynccontextmanager
async def recording_proxy(upstream: str, hold_s: float = 0.0) -> AsyncIterator[RecordingProxy]:
    proxy = RecordingProxy(upstream.rstrip("/"), hold_s)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def handle(request: web.Request) -> web.StreamResponse:
            return await proxy.handle(request, session)

        app = web.Application(client_max_size=6 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        proxy.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            yield proxy
        finally:
            await runner.cleanup()
