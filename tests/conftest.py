"""Session-wide infrastructure (real Kafka and PostgreSQL) and per-test isolation.

- one throw-away database per session, migrated once; tests that must not share the outbox
  clone it (``isolated_database_url``);
- a fresh topic prefix per test, so every test reads only its own events.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI

from services.gateway.config import GatewaySettings
from tests.support import db
from tests.support.gateway import PartnerCreds, create_partner, running_gateway
from tests.support.infra import Infra, resolve_infra
from tests.support.kafka import delete_topics_with_prefix


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    with resolve_infra() as resolved:
        yield resolved


@pytest.fixture(scope="session")
def template_database(infra: Infra) -> Iterator[str]:
    """A database with every migration applied, once per session."""
    name, url = db.create_database(infra.database_url)
    db.migrate(url)
    yield name
    db.drop_database(infra.database_url, name)


@pytest.fixture(scope="session")
def database_url(infra: Infra, template_database: str) -> Iterator[str]:
    name, url = db.create_database(infra.database_url, template=template_database)
    yield url
    db.drop_database(infra.database_url, name)


@pytest.fixture
def isolated_database_url(infra: Infra, template_database: str) -> Iterator[str]:
    """A database of this test's own (same migrations), for tests that break or stall things."""
    name, url = db.create_database(infra.database_url, template=template_database)
    yield url
    db.drop_database(infra.database_url, name)


@pytest.fixture
def topic_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh prefix for this test's topics and consumer groups. The topics are deleted
    afterwards: every test creating its own would otherwise pile up thousands of partitions on
    the shared broker over a run (the local broker's memory grows with them)."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    yield prefix
    if "infra" in request.fixturenames:
        asyncio.run(delete_topics_with_prefix(request.getfixturevalue("infra").kafka_bootstrap, prefix))


@pytest.fixture
def gateway_settings(infra: Infra, database_url: str, topic_prefix: str) -> GatewaySettings:
    return GatewaySettings(
        environment="test",
        database_url=database_url,
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        kafka_topic_prefix=topic_prefix,
        kafka_topic_partitions=3,
        outbox_poll_interval_s=0.2,
        # Tests revoke and rotate keys and expect it to apply at once; the cache has its own test.
        credential_cache_ttl_s=0,
        config_cache_ttl_s=0,
        db_pool_min_size=1,
        db_pool_max_size=5,
    )


@pytest.fixture
async def gateway(gateway_settings: GatewaySettings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_gateway(gateway_settings) as running:
        yield running


@pytest.fixture
async def client(gateway: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return gateway[1]


@pytest.fixture
async def partner(database_url: str) -> PartnerCreds:
    return await create_partner(database_url)
