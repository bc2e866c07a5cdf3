"""Kafka down: the API keeps accepting, nothing is lost, the outbox drains when Kafka returns.

Uses a dedicated single-node broker (same pinned jars as the local stack) that the test really
stops and restarts, and a database of its own so no other test's outbox rows are involved.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import orjson
import pytest
from pydantic import SecretStr

from deploy.local.stack import KafkaNode
from schemas.events import parse_event
from services.gateway.config import GatewaySettings
from tests.factories import batch
from tests.support.gateway import INGEST, create_partner, running_gateway, wait_until
from tests.support.infra import free_port
from tests.support.kafka import consume

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("java") is None, reason="needs Java to run a dedicated broker"),
]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[KafkaNode]:
    node = KafkaNode(tmp_path / "kafka", free_port(), free_port(), heap="256m")
    node.start()
    yield node
    node.stop()


async def _outbox_rows(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT coalesce(sum(cardinality(keys)), 0) FROM gateway.outbox"))
    finally:
        await conn.close()


async def test_calls_accepted_while_kafka_is_down_are_published_when_it_returns(
    broker: KafkaNode, isolated_database_url: str, gateway_settings: GatewaySettings
) -> None:
    settings = gateway_settings.model_copy(
        update={
            "database_url": SecretStr(isolated_database_url),
            "kafka_bootstrap_servers": broker.bootstrap,
        }
    )
    topic = settings.topic("calls.ingested.v1")
    partner = await create_partner(isolated_database_url)
    headers = {**partner.headers(), "content-type": "application/json"}
    before, during = batch(3), batch(5)

    async with running_gateway(settings) as (_, client):
        response = await client.post(INGEST, content=orjson.dumps(before), headers=headers)
        assert response.status_code == 200
        assert len(await consume(broker.bootstrap, topic, 3, timeout=30)) == 3

        await asyncio.to_thread(broker.stop)
        response = await client.post(INGEST, content=orjson.dumps(during), headers=headers)
        assert response.status_code == 200
        assert response.json()["success"] is True
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"postgres": "ok", "kafka": "unavailable"}
        # The accepted calls wait in the outbox, durably, while the relay retries.
        await asyncio.sleep(2)
        assert await _outbox_rows(isolated_database_url) == 5

        await asyncio.to_thread(broker.start)
        assert await wait_until(lambda: _is_empty(isolated_database_url), timeout=90)
        records = await consume(broker.bootstrap, topic, 8, timeout=30, linger=1.0)

    ids = sorted(parse_event(r.value).call_id for r in records)
    expected = sorted(i["call"]["id"] for i in before["data"] + during["data"])
    # Every call exactly once or more (at-least-once); here, exactly once.
    assert sorted(set(ids)) == expected
    assert len(ids) == len(expected)


async def _is_empty(url: str) -> bool:
    return await _outbox_rows(url) == 0


async def test_gateway_starts_and_accepts_while_kafka_was_never_up(
    isolated_database_url: str, gateway_settings: GatewaySettings, tmp_path: Path
) -> None:
    node = KafkaNode(tmp_path / "late-kafka", free_port(), free_port(), heap="256m")
    settings = gateway_settings.model_copy(
        update={
            "database_url": SecretStr(isolated_database_url),
            "kafka_bootstrap_servers": node.bootstrap,
        }
    )
    partner = await create_partner(isolated_database_url)
    try:
        async with running_gateway(settings) as (_, client):
            response = await client.post(
                INGEST,
                content=orjson.dumps(batch(2)),
                headers={**partner.headers(), "content-type": "application/json"},
            )
            assert response.status_code == 200
            await asyncio.to_thread(node.start)
            assert await wait_until(lambda: _is_empty(isolated_database_url), timeout=90)
            assert len(await consume(node.bootstrap, settings.topic("calls.ingested.v1"), 2, timeout=30)) == 2
    finally:
        await asyncio.to_thread(node.stop)
