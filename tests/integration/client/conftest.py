"""The client package against the real gateway (its real lifespan, PostgreSQL and Kafka),
in process: the package's httpx client is handed the gateway's ASGI transport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from callpipe_client import AsyncClient, ClientConfig, RetryPolicy
from fastapi import FastAPI

from tests.support.gateway import PartnerCreds

FAST = RetryPolicy(attempts=4, base_s=0.05, max_s=0.5)


@dataclass
class Wire:
    """Every request the client sent: method, path, and the call ids in an ingestion body."""

    requests: list[tuple[str, str, int | None, list[str]]] = field(default_factory=list)

    def ingest_ids(self, status: int | None = 200) -> list[str]:
        return [i for m, p, s, ids in self.requests if p.endswith("batch-call") and s == status for i in ids]

    def count(self, method: str, fragment: str = "") -> int:
        return sum(1 for m, p, _, _ in self.requests if m == method and fragment in p)


def recording_transport(app: FastAPI, wire: Wire) -> httpx.AsyncBaseTransport:
    inner = httpx.ASGITransport(app=app)

    class Recording(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            ids: list[str] = []
            if request.url.path.endswith("batch-call"):
                ids = [c["call"]["id"] for c in json.loads(request.content)["data"] if isinstance(c, dict)]
            response = await inner.handle_async_request(request)
            wire.requests.append((request.method, request.url.path, response.status_code, ids))
            return response

    return Recording()


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
async def make_client(
    gateway: tuple[FastAPI, httpx.AsyncClient], wire: Wire
) -> AsyncIterator[Callable[..., AsyncClient]]:
    app, _ = gateway
    made: list[httpx.AsyncClient] = []

    def make(partner: PartnerCreds, **settings: Any) -> AsyncClient:
        values: dict[str, Any] = dict(
            base_url="http://gateway",
            api_key=partner.api_key,
            api_secret=partner.api_secret,
            tenant_id="tenant1",
            subtenant_id="subtenant1",
            retry=FAST,
        )
        values.update(settings)
        http = httpx.AsyncClient(transport=recording_transport(app, wire), base_url="http://gateway", timeout=30)
        made.append(http)
        return AsyncClient(ClientConfig(**values), http_client=http)

    yield make
    for http in made:
        await http.aclose()


@pytest.fixture
async def api(make_client: Callable[..., AsyncClient], partner: PartnerCreds) -> AsyncIterator[AsyncClient]:
    client = make_client(partner)
    yield client
    await client.aclose()


async def ledger(database_url: str, partner_id: str) -> list[str]:
    """The call ids the gateway recorded for the partner (its ingestion ledger)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT call_id FROM gateway.calls WHERE partner_id = $1", partner_id)
    finally:
        await conn.close()
    return [r["call_id"] for r in rows]
