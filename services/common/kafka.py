"""Kafka plumbing: the one producer configuration, topic creation and a reachability probe."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import murmurhash2
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    CorruptRecordException,
    InvalidMessageError,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

log = logging.getLogger(__name__)

#: The largest record callpipe puts on Kafka: the producers' ``max_request_size`` and the
#: ``max.message.bytes`` every callpipe topic is created with. A call's ``calls.ingested.v1``
#: event is kept to a quarter of it at ingestion (``MAX_CALL_EVENT_BYTES``), so the later stages,
#: which carry the ingested call along with what they add (the transcript, mostly), fit too.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_CALL_EVENT_BYTES = MAX_MESSAGE_BYTES // 4

#: Errors no retry can fix: Kafka refuses the record itself.
PERMANENT_ERRORS: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    InvalidMessageError,
    CorruptRecordException,
    InvalidTimestampError,
)


def is_permanent(exc: BaseException) -> bool:
    """Whether Kafka will refuse this record however often it is sent."""
    return isinstance(exc, PERMANENT_ERRORS)


def make_producer(bootstrap_servers: str, client_id: str, **overrides: object) -> AIOKafkaProducer:
    """A producer that never reports success before every in-sync replica has the record.

    ``acks="all"`` with idempotence: retries after a lost ack cannot duplicate or reorder a
    partition's records.
    """
    options: dict[str, object] = {
        "bootstrap_servers": bootstrap_servers,
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "max_request_size": MAX_MESSAGE_BYTES,
        "request_timeout_ms": 15_000,
        "retry_backoff_ms": 200,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


_MURMUR2_SEED = 0x9747B28C


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java's, and aiokafka's) picks for ``key``:
    murmur2, in C; aiokafka's pure-Python murmur2 costs ~8 us per key on the hot path."""
    return (murmurhash2.murmurhash2(key, _MURMUR2_SEED) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1


async def ensure_topics(bootstrap_servers: str, topics: list[TopicSpec], request_timeout_s: float = 30) -> None:
    """Create the topics that do not exist yet, accepting records up to ``MAX_MESSAGE_BYTES``;
    existing ones are left as they are."""
    timeout_ms = int(request_timeout_s * 1000)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=timeout_ms)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if not missing:
            return
        configs = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
        new = [NewTopic(t.name, t.partitions, t.replication_factor, topic_configs=configs) for t in missing]
        response = await admin.create_topics(new, timeout_ms=timeout_ms)
        for topic, code, *_ in response.topic_errors:
            # 36 = TOPIC_ALREADY_EXISTS: another replica won the race, which is fine.
            if code not in (0, 36):
                raise KafkaError(f"could not create topic {topic}: error code {code}")
        log.info("topics created", extra={"topics": [t.name for t in missing]})
    finally:
        await admin.close()


class KafkaProbe:
    """Answers "is a broker reachable?" for readiness checks, reusing one client."""

    def __init__(self, bootstrap_servers: str, timeout_s: float = 2.0) -> None:
        self._bootstrap = bootstrap_servers
        self._timeout_s = timeout_s
        self._client: AIOKafkaClient | None = None

    async def check(self) -> bool:
        timeout = self._timeout_s
        try:
            if self._client is None:
                client = AIOKafkaClient(bootstrap_servers=self._bootstrap, request_timeout_ms=int(timeout * 1000))
                try:
                    await asyncio.wait_for(client.bootstrap(), timeout)
                except BaseException:
                    await client.close()
                    raise
                self._client = client
                return True
            await asyncio.wait_for(self._client.fetch_all_metadata(), timeout)
        except (KafkaError, OSError, TimeoutError):
            return False
        return True

    async def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None
