"""Running the gateway in tests: in-process (ASGI, with its real lifespan) or as a process."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from services.common.db import create_pool
from services.gateway.app import create_app
from services.gateway.config import GatewaySettings
from services.gateway.repository import GatewayRepository
from services.gateway.security import issue_credential, new_partner_id
from tests.support.infra import free_port
from tests.support.processes import service_process

INGEST = "/api/v1/partner/ingest/batch-call"
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class PartnerCreds:
    partner_id: str
    api_key: str
    api_secret: str

    def headers(self, tenant: str | None = "tenant1", subtenant: str | None = "subtenant1") -> dict[str, str]:
        h = {"x-api-key": self.api_key, "x-api-secret": self.api_secret}
        if tenant is not None:
            h["x-tenant-id"] = tenant
        if subtenant is not None:
            h["x-sub-tenant-id"] = subtenant
        return h


async def create_partner(database_url: str, rate_limit: int | None = None, name: str = "Test partner") -> PartnerCreds:
    """A partner with one credential, created the way the admin CLI does it."""
    pool = await create_pool(SecretStr(database_url), "gateway", min_size=1, max_size=1)
    try:
        repo = GatewayRepository(pool)
        partner_id = new_partner_id()
        await repo.create_partner(partner_id, name, rate_limit)
        cred = issue_credential()
        await repo.add_credential(partner_id, cred.api_key, cred.secret_sha256)
    finally:
        await pool.close()
    return PartnerCreds(partner_id, cred.api_key, cred.api_secret)


@contextlib.asynccontextmanager
async def running_gateway(settings: GatewaySettings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The real app with its lifespan (pool, outbox relay, Kafka probe), served over ASGI."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30) as client:
            yield app, client


def gateway_env(settings: GatewaySettings, port: int) -> dict[str, str]:
    return {
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "KAFKA_TOPIC_PARTITIONS": str(settings.kafka_topic_partitions),
        "GATEWAY_PORT": str(port),
        "GATEWAY_HOST": "127.0.0.1",
        "LOG_LEVEL": "INFO",
    }


@contextlib.contextmanager
def gateway_process(settings: GatewaySettings, log_path: Path) -> Iterator[str]:
    """``python -m services.gateway`` as its own process; yields its base URL."""
    port = free_port()
    with service_process("gateway", gateway_env(settings, port), port, log_path):
        yield f"http://127.0.0.1:{port}"


async def wait_until(predicate, timeout: float = 20.0, interval: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = await predicate()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(interval)
