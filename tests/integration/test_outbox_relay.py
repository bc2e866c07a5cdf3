"""The outbox relay against a real broker that refuses some records for good.

A topic created with a small ``max.message.bytes`` (as a platform team's pre-created topic might
be) makes Kafka refuse a record that ingestion accepted. The relay must publish every other record
exactly once, set the refused one aside with the reason, publish what replaces it (the call's
failure), and keep draining; the gateway then shows the call failed and ``/readyz`` shows the
record set aside until an operator requeues it.
"""

from __future__ import annotations

from collections import Counter

import asyncpg
import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import SecretStr

from schemas.events import TOPIC_FAILED, TOPIC_INGESTED, CallFailed, parse_event
from services.common.db import create_pool
from services.common.kafka import make_producer
from services.common.outbox import OutboxDeadLetters, OutboxRelay
from services.gateway.config import GatewaySettings
from tests.factories import call_item
from tests.support.gateway import INGEST, create_partner, running_gateway, wait_until
from tests.support.infra import Infra
from tests.support.kafka import consume

SMALL_LIMIT = 64 * 1024


async def create_topic(bootstrap: str, name: str, max_message_bytes: int, partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, partitions, 1, topic_configs={"max.message.bytes": str(max_message_bytes)})]
        )
    finally:
        await admin.close()


async def insert_rows(url: str, topic: str, rows: list[list[tuple[str, bytes]]]) -> None:
    conn = await asyncpg.connect(url)
    try:
        for row in rows:
            await conn.execute(
                "INSERT INTO gateway.outbox (topic, keys, payloads) VALUES ($1, $2, $3)",
                topic,
                [k for k, _ in row],
                [p for _, p in row],
            )
    finally:
        await conn.close()


async def count(url: str, table: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM gateway.{table}"))  # noqa: S608 - test constant
    finally:
        await conn.close()


async def test_a_refused_record_is_set_aside_and_every_other_is_published_exactly_once(
    infra: Infra, isolated_database_url: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}events"
    await create_topic(infra.kafka_bootstrap, topic, SMALL_LIMIT)
    await create_topic(infra.kafka_bootstrap, f"{topic_prefix}replacements", SMALL_LIMIT)
    small = [(f"p/{name}", orjson.dumps({"n": name})) for name in "abcdefg"]
    refused = ("p/big", b"x" * (SMALL_LIMIT * 2))  # refused by the broker
    huge = ("p/huge", b"y" * 200_000)  # beyond the relay's own limit below: never even sent
    # Several rows (transactions), the refused records in the middle of rows other records share.
    await insert_rows(
        isolated_database_url,
        topic,
        [[small[0], small[1]], [small[2], refused, small[3]], [huge, small[4]], [small[5], small[6]]],
    )
    replaced: list[tuple[str, str, bytes]] = []

    def replace(record: tuple[str, str, bytes]) -> list[tuple[str, str, bytes]]:
        replaced.append(record)
        return [(f"{topic_prefix}replacements", record[1], b"replacement")]

    pool = await create_pool(SecretStr(isolated_database_url), "gateway", min_size=1, max_size=2)
    relay = OutboxRelay(
        pool,
        lambda: make_producer(infra.kafka_bootstrap, "relay-test"),
        batch_size=10,
        on_unpublishable=replace,
        max_message_bytes=150_000,
    )
    relay.start()
    try:
        await wait_until(lambda: _drained(isolated_database_url), timeout=60)
        published = await consume(infra.kafka_bootstrap, topic, len(small), timeout=30, linger=3)
        details = await relay.details()
        listed = await OutboxDeadLetters(pool).list()
    finally:
        await relay.stop()
        await pool.close()
    # Each record once: retries after the refusal did not send the acknowledged ones again.
    assert Counter(r.key.decode() for r in published) == Counter(k for k, _ in small)
    assert {r[1] for r in replaced} == {"p/big", "p/huge"}
    assert details["set_aside"] == 2 and details["pending_events"] == 0
    assert {(d.key, d.size) for d in listed} == {("p/big", SMALL_LIMIT * 2), ("p/huge", 200_000)}
    assert all("MessageSizeTooLargeError" in d.error for d in listed)
    replacements = await consume(infra.kafka_bootstrap, f"{topic_prefix}replacements", 2, timeout=30, linger=1)
    assert sorted(r.key.decode() for r in replacements) == ["p/big", "p/huge"]

    # Requeued (after, say, the operator raised a limit): back in the outbox, tried again. The
    # broker still refuses both here, so they are set aside again, replaced again, nothing stuck.
    pool = await create_pool(SecretStr(isolated_database_url), "gateway", min_size=1, max_size=2)
    try:
        dead = OutboxDeadLetters(pool)
        assert await dead.requeue([d.id for d in listed]) == 2
        assert await count(isolated_database_url, "outbox_dead") == 0
        relay = OutboxRelay(pool, lambda: make_producer(infra.kafka_bootstrap, "relay-test"), on_unpublishable=replace)
        assert await relay.publish_batch() == 0  # both refused again by the broker: set aside again
        await relay.stop()
        assert await count(isolated_database_url, "outbox_dead") == 2
        assert await count(isolated_database_url, "outbox") == 2  # the two new replacements
    finally:
        await pool.close()


async def _drained(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        pending = await conn.fetchval("SELECT count(*) FROM gateway.outbox WHERE topic NOT LIKE '%replacements'")
        return int(pending) == 0
    finally:
        await conn.close()


async def test_a_call_the_broker_refuses_ends_failed_and_later_calls_flow(
    infra: Infra, isolated_database_url: str, gateway_settings: GatewaySettings
) -> None:
    """The platform's ingest topic accepts less than callpipe's limit: a call the gateway took
    (within its own limit) is refused by Kafka. It ends failed (stage ingest, event_too_large),
    carrying what its failure callback needs; every other call of the batch, and after it, flows."""
    settings = gateway_settings.model_copy(update={"database_url": SecretStr(isolated_database_url)})
    await create_topic(infra.kafka_bootstrap, settings.topic(TOPIC_INGESTED), SMALL_LIMIT)
    partner = await create_partner(isolated_database_url)
    headers = {**partner.headers(), "content-type": "application/json"}
    big = call_item(notes="n" * (SMALL_LIMIT * 2), metadata={"crm": "opp-7"})
    batch = [call_item(), big, call_item()]
    async with running_gateway(settings) as (_, client):
        response = await client.post(INGEST, content=orjson.dumps({"data": batch}), headers=headers)
        assert response.status_code == 200, response.text
        later = call_item()
        assert (await client.post(INGEST, json={"data": [later]}, headers=headers)).status_code == 200
        ingested = await consume(infra.kafka_bootstrap, settings.topic(TOPIC_INGESTED), 3, timeout=30, linger=3)
        failed = await consume(infra.kafka_bootstrap, settings.topic(TOPIC_FAILED), 1, timeout=30)

        async def shown_failed() -> bool:
            r = await client.get(f"/api/v1/partner/calls/{big['call']['id']}", headers=partner.headers())
            return r.status_code == 200 and r.json()["data"]["status"] == "failed"

        assert await wait_until(shown_failed, timeout=30)
        status = (await client.get(f"/api/v1/partner/calls/{big['call']['id']}", headers=partner.headers())).json()
        ready = (await client.get("/readyz")).json()
    assert sorted(parse_event(r.value).call_id for r in ingested) == sorted(
        i["call"]["id"] for i in (batch[0], batch[2], later)
    )
    event = parse_event(failed[0].value)
    assert isinstance(event, CallFailed) and event.call_id == big["call"]["id"]
    assert (event.payload.stage, event.payload.code) == ("ingest", "event_too_large")
    # The partner's unknown field (the bulk) is dropped; what the failure callback needs is kept.
    assert event.payload.ingested is not None and event.payload.ingested.callback_url == big["callback_url"]
    assert event.payload.ingested.metadata == {"crm": "opp-7"} and event.payload.ingested.extra == {}
    assert status["data"]["error"] == {
        "stage": "ingest",
        "code": "event_too_large",
        "message": "The call's data is too large to be processed.",
    }
    assert ready["details"]["outbox"]["set_aside"] == 1
