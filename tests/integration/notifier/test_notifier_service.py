"""The notifier as its own process on real Kafka and PostgreSQL: events in, signed callbacks out
to a real HTTPS receiver, retries surviving a SIGKILL, redelivery by command, failure callbacks."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr
from standardwebhooks import Webhook

from schemas.events import (
    TOPIC_ANALYZED,
    TOPIC_CALLBACK_COMMANDS,
    TOPIC_DELIVERIES,
    TOPIC_FAILED,
    CallbackDelivery,
    dump_event,
    parse_event,
)
from services.common.crypto import SecretBox
from services.common.db import create_pool
from services.common.kafka import TopicSpec, ensure_topics, make_producer
from services.common.settings import DEV_SECRETS_ENCRYPTION_KEYS
from services.notifier.repository import NotifierRepository
from tests.integration.notifier.conftest import eventually
from tests.support.infra import Infra, free_port
from tests.support.kafka import consume
from tests.support.processes import ROOT, service_process, stop
from tests.support.receivers import Receiver, TestCa
from tests.unit.notifier.factories import analyzed_event, failed_event, redeliver_command

pytestmark = pytest.mark.slow


@pytest.fixture
async def producer(infra: Infra, topic_prefix: str) -> AsyncIterator[AIOKafkaProducer]:
    topics = (TOPIC_ANALYZED, TOPIC_FAILED, TOPIC_CALLBACK_COMMANDS)
    await ensure_topics(infra.kafka_bootstrap, [TopicSpec(topic_prefix + t, 3) for t in topics])
    p = make_producer(infra.kafka_bootstrap, "test")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def repo(notifier_db: str) -> AsyncIterator[NotifierRepository]:
    pool = await create_pool(SecretStr(notifier_db), "notifier", min_size=1, max_size=2)
    yield NotifierRepository(pool, SecretBox.from_config(DEV_SECRETS_ENCRYPTION_KEYS))
    await pool.close()


def notifier_env(infra: Infra, database_url: str, topic_prefix: str, port: int, ca_bundle: Path) -> dict[str, str]:
    return {
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "KAFKA_TOPIC_PARTITIONS": "3",
        "NOTIFIER_PORT": str(port),
        "NOTIFIER_CA_BUNDLE": str(ca_bundle),
        "NOTIFIER_SSRF_ALLOW_NETWORKS": "127.0.0.1/32",
        "NOTIFIER_RETRY_BASE_S": "1.5",
        "NOTIFIER_RETRY_FACTOR": "2",
        "NOTIFIER_TIMEOUT_S": "5",
        "NOTIFIER_POLL_INTERVAL_S": "0.1",
        "NOTIFIER_OUTBOX_POLL_INTERVAL_S": "0.1",
        "NOTIFIER_SESSION_TIMEOUT_MS": "6000",
        "LOG_LEVEL": "INFO",
    }


async def send(producer: AIOKafkaProducer, topic: str, *events) -> None:  # type: ignore[no-untyped-def]
    await asyncio.gather(*[await producer.send(topic, dump_event(e), key=e.key()) for e in events])


def admin_show(database_url: str, partner_id: str) -> dict:  # type: ignore[type-arg]
    out = subprocess.run(
        [sys.executable, "-m", "services.notifier.admin", "signing-secret", "show", "--partner", partner_id],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


async def ready(port: int) -> dict | None:  # type: ignore[type-arg]
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/readyz")
    return response.json() if response.status_code == 200 else None


async def test_retries_resume_after_a_sigkill_and_a_redeliver_command_sends_again(
    infra: Infra,
    notifier_db: str,
    topic_prefix: str,
    tmp_path: Path,
    tls: TestCa,
    rx: Receiver,
    producer: AIOKafkaProducer,
    repo: NotifierRepository,
) -> None:
    event = analyzed_event(rx.script("svc", 500, 503), partner_id="ptn_svc")
    port = free_port()
    env = notifier_env(infra, notifier_db, topic_prefix, port, tls.write_bundle(tmp_path))

    with service_process("notifier", env, port, tmp_path / "first.log") as first:
        await send(producer, topic_prefix + TOPIC_ANALYZED, event)
        await rx.wait_for("svc", 1, timeout=60)

        async def retrying() -> bool | None:
            d = await repo.find("ptn_svc", event.call_id, "result")
            return True if d is not None and d.state == "retrying" and d.attempts == 1 else None

        await eventually(retrying)  # the first attempt and the retry's time are recorded
        stop(first, signal.SIGKILL)
    assert len(rx.hits("svc")) == 1

    with service_process("notifier", env, port, tmp_path / "second.log"):
        status = await eventually(lambda: ready(port), timeout=60)
        assert status["checks"] == {"postgres": "ok", "kafka": "ok", "consumer": "ok", "dispatcher": "ok"}
        delivery = await eventually(lambda: _in_state(repo, "ptn_svc", event.call_id, "delivered"), timeout=60)
        assert [h.answer for h in rx.hits("svc")] == [500, 503, 200]

        # Kafka delivers the analyzed event again (no new callback), then a redeliver command.
        await send(producer, topic_prefix + TOPIC_ANALYZED, event)
        await send(producer, topic_prefix + TOPIC_CALLBACK_COMMANDS, redeliver_command("ptn_svc", event.call_id))
        failed = failed_event(rx.url("failed"), partner_id="ptn_svc")
        await send(producer, topic_prefix + TOPIC_FAILED, failed)
        await rx.wait_for("svc", 4, timeout=60)
        [failure_hit] = await rx.wait_for("failed", 1, timeout=60)
        await asyncio.sleep(1.0)
        records = await consume(infra.kafka_bootstrap, topic_prefix + TOPIC_DELIVERIES, 8, timeout=30)

    hits = rx.hits("svc")
    assert len(hits) == 4
    assert {h.headers["webhook-id"] for h in hits} == {delivery.delivery_id}
    shown = admin_show(notifier_db, "ptn_svc")
    webhook = Webhook(shown["secret"])
    for h in hits:
        assert webhook.verify(h.body, h.headers)["call_id"] == event.call_id
    assert [a.number for a in await repo.attempts(delivery.delivery_id)] == [1, 2, 3, 4]
    failure = webhook.verify(failure_hit.body, failure_hit.headers)
    assert failure["call_id"] == failed.call_id and failure["status"] == "failed"
    assert failure_hit.headers["webhook-id"] != delivery.delivery_id

    # At least once: a batch may be published twice after the kill; by event id each state is once.
    unique: dict[str, CallbackDelivery] = {}
    for r in records:
        e = parse_event(r.value)
        assert isinstance(e, CallbackDelivery)
        if e.call_id == event.call_id:
            unique.setdefault(str(e.event_id), e)
    assert [e.payload.state for e in unique.values()] == [
        "pending",
        "retrying",
        "retrying",
        "delivered",
        "pending",
        "delivered",
    ]


async def _in_state(repo: NotifierRepository, partner_id: str, call_id: str, state: str):  # type: ignore[no-untyped-def]
    d = await repo.find(partner_id, call_id, "result")
    return d if d is not None and d.state == state else None
