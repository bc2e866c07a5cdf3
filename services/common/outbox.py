"""Transactional outbox relay: moves rows a service committed to its ``outbox`` table onto Kafka.

A service writes its state change and the events announcing it in one PostgreSQL transaction
(``outbox`` rows); this relay publishes them and deletes them only after Kafka acknowledged every
record (``acks=all``). A crash between the two republishes a batch, never loses one: consumers
are idempotent. Several relays (gateway replicas) share the table with ``FOR UPDATE SKIP
LOCKED``. While Kafka is down the rows wait; the relay backs off and drains them on return.

The table (created by each owning service's migrations) holds one row per transaction and
topic, with that transaction's events in order::

    CREATE TABLE outbox (id bigserial PRIMARY KEY, topic text NOT NULL, keys text[] NOT NULL,
                         payloads bytea[] NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from services.common.kafka import partition_for

log = logging.getLogger(__name__)

_CLAIM = """
SELECT id, topic, keys, payloads FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
"""
_DELETE = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"
_BACKLOG = "SELECT coalesce(sum(cardinality(keys)), 0) FROM outbox"


class OutboxRelay:
    """Publishes outbox rows in id order, in batches, until stopped."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer_factory: Callable[[], AIOKafkaProducer],
        *,
        prepare: Callable[[], Awaitable[None]] | None = None,
        batch_size: int = 100,
        poll_interval: float = 0.5,
        max_backoff: float = 10.0,
    ) -> None:
        self._pool = pool
        self._producer_factory = producer_factory
        self._prepare = prepare
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._max_backoff = max_backoff
        self._producer: AIOKafkaProducer | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.published_total = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    def wake(self) -> None:
        """Called after a commit that added rows, so they go out without waiting for the poll."""
        self._wake.set()

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Publish what is pending (bounded by ``drain_timeout``), then close the producer."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), drain_timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        await self._close_producer()

    async def backlog(self) -> int:
        async with self._pool.acquire() as conn:
            return int(await conn.fetchval(_BACKLOG))

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                published = await self.publish_batch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self.last_error = type(exc).__name__
                delay = min(self._max_backoff, 0.2 * 2 ** min(failures, 8)) * random.uniform(0.5, 1.0)  # noqa: S311
                log.warning(
                    "outbox publish failed; rows kept for retry",
                    extra={"error": type(exc).__name__, "attempt": failures, "retry_in_s": round(delay, 2)},
                )
                await self._close_producer()
                if self._stopping:
                    return
                await asyncio.sleep(delay)
                continue
            if failures:
                log.info("outbox publishing resumed", extra={"after_failures": failures})
            failures = 0
            self.last_error = None
            if published:
                continue  # more may be waiting: drain before sleeping
            if self._stopping:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)

    async def publish_batch(self) -> int:
        """Claim up to ``batch_size`` rows, publish their events, delete them; returns how many
        events went out."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM, self._batch_size)
            if not rows:
                return 0
            producer = await self._ensure_producer()
            started = time.perf_counter()
            acks, events = await self._send(producer, rows)
            await asyncio.gather(*acks)
            await conn.execute(_DELETE, [r["id"] for r in rows])
        self.published_total += events
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        log.debug("outbox batch published", extra={"rows": len(rows), "events": events, "ms": elapsed_ms})
        return events

    @staticmethod
    async def _send(producer: AIOKafkaProducer, rows: list[asyncpg.Record]) -> tuple[list[asyncio.Future[Any]], int]:
        """Queue the rows' events as record batches, one partition at a time, in order.

        Returns the acks to await and the number of events. Building batches ourselves
        (instead of one ``send`` per record) is what lets one relay keep up with ingestion."""
        by_partition: dict[tuple[str, int], list[tuple[bytes, bytes]]] = defaultdict(list)
        partition_counts: dict[str, int] = {}
        events = 0
        for row in rows:
            topic = row["topic"]
            if topic not in partition_counts:
                partition_counts[topic] = len(await producer.partitions_for(topic))
            for key, payload in zip(row["keys"], row["payloads"], strict=True):
                encoded = key.encode()
                by_partition[topic, partition_for(encoded, partition_counts[topic])].append((encoded, payload))
                events += 1
        acks = []
        for (topic, partition), records in by_partition.items():
            batch = producer.create_batch()
            for key, value in records:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    batch.close()
                    acks.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            batch.close()
            acks.append(await producer.send_batch(batch, topic, partition=partition))
        return acks, events

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            if self._prepare is not None:
                await self._prepare()
            producer = self._producer_factory()
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()
