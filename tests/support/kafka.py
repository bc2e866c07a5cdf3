"""Reading what the services published, straight from Kafka."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord


async def consume(
    bootstrap: str, topic: str, count: int, timeout: float = 30.0, linger: float = 0.0
) -> list[ConsumerRecord]:
    """Read ``topic`` from the beginning until ``count`` records arrived or ``timeout`` passed,
    then keep reading for ``linger`` seconds so that unexpected extra records show up too."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        metadata_max_age_ms=1000,
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(messages)
        settle_until = time.monotonic() + linger
        while time.monotonic() < settle_until:
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(messages)
    finally:
        await consumer.stop()
    return records


async def delete_topics_with_prefix(bootstrap: str, prefix: str) -> int:
    """Delete every topic whose name starts with ``prefix`` (a test's own topics); returns how
    many. Best effort: a broker that is down or slow only leaves them behind."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    try:
        await admin.start()
        doomed = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed, timeout_ms=15_000)
        return len(doomed)
    except Exception:
        return 0
    finally:
        await admin.close()
