"""Transactional outbox relay: moves rows a service committed to its ``outbox`` table onto Kafka.

A service writes its state change and the events announcing it in one PostgreSQL transaction
(``outbox`` rows); this relay publishes them and deletes them only after Kafka acknowledged every
record (``acks=all``). A crash between the two republishes a batch, never loses one: consumers
are idempotent. Several relays (gateway replicas) share the table with ``FOR UPDATE SKIP
LOCKED``. While Kafka is down the rows wait; the relay backs off and drains them on return.

Each event is published once: when only some records of a claimed batch were acknowledged, the
rows are cut down to the records still owed, so a retry never sends an acknowledged record again.

A record Kafka will never accept (larger than ``MAX_MESSAGE_BYTES``, or refused as such by the
broker) is not retried: it is **set aside** in ``outbox_dead`` with the reason, the service's
``on_unpublishable`` hook gives the events that replace it (the gateway fails the call, so its
partner hears of it), and the rows behind it keep flowing. ``OutboxDeadLetters`` lists and
requeues set-aside records (the services' admin commands), ``/readyz`` shows how many there are.

Trace context crosses the outbox: ``headers`` holds, per record, the Kafka headers (W3C
``traceparent``/``tracestate``) of the trace the event belongs to, written with the event by the
transaction that produced it (``outbox_headers``), and the relay puts them on the Kafka record
as they are. It makes no span of its own per record: that would cost as much as the call's own
ingest span on the hottest path, and the time a call spent in the outbox shows in its trace
anyway, as the gap between the span that wrote it and the next stage's ``process`` span (the
``callpipe_outbox_publish_delay_seconds`` histogram has the distribution).

Metrics: events published and set aside, failed rounds, the delay from a row's commit to Kafka's
acknowledgement, and (read at scrape time, ``refresh_metrics``) the backlog and the set-aside count.

The tables (created by each owning service's migrations)::

    CREATE TABLE outbox (id bigserial PRIMARY KEY, topic text NOT NULL, keys text[] NOT NULL,
                         payloads bytea[] NOT NULL, headers jsonb,
                         created_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE outbox_dead (id bigserial PRIMARY KEY, topic text NOT NULL, key text NOT NULL,
                              payload bytea NOT NULL, headers jsonb, error text NOT NULL,
                              queued_at timestamptz NOT NULL, set_aside_at timestamptz NOT NULL DEFAULT now());
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError

from services.common import metrics, tracing
from services.common.backoff import Backoff
from services.common.kafka import MAX_MESSAGE_BYTES, is_permanent, partition_for

log = logging.getLogger(__name__)

# age_s: how long ago the row was committed, on the database's clock (no clock comparison
# between hosts).
_CLAIM = """
SELECT id, topic, keys, payloads, headers, created_at,
       extract(epoch FROM clock_timestamp() - created_at)::float8 AS age_s
FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
"""
_DELETE = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"
_KEEP = "UPDATE outbox SET keys = $2, payloads = $3, headers = $4 WHERE id = $1"
_INSERT = "INSERT INTO outbox (topic, keys, payloads, headers) VALUES ($1, $2, $3, $4)"
_SET_ASIDE = "INSERT INTO outbox_dead (topic, key, payload, error, queued_at, headers) VALUES ($1, $2, $3, $4, $5, $6)"
_BACKLOG = "SELECT coalesce(sum(cardinality(keys)), 0) FROM outbox"
_DEAD_COUNT = "SELECT count(*) FROM outbox_dead"
# A record's size on the wire beyond its key and value (record and batch headers), with margin.
_RECORD_OVERHEAD = 512

#: (topic, key, payload) of an event to publish.
OutboxRecord = tuple[str, str, bytes]
#: Kafka headers of one record, as stored (``{"traceparent": ...}``).
RecordHeaders = dict[str, str]


def outbox_headers(count: int) -> list[RecordHeaders | None] | None:
    """The ``headers`` value of an outbox row of ``count`` events written now: the current trace
    context for each (None when tracing is off, so nothing is stored)."""
    carrier = tracing.current_carrier()
    return None if carrier is None else [carrier] * count


#: Given a record Kafka refuses for good, the records that replace it (e.g. the call's failure).
Unpublishable = Callable[[OutboxRecord], Sequence[OutboxRecord]]


class OutboxPublishError(Exception):
    """Some records of a batch were not acknowledged for a reason that may pass (Kafka down,
    a leader moving); they stay in the outbox and the relay backs off."""


@dataclass
class _Row:
    id: int
    topic: str
    keys: list[str]
    payloads: list[bytes]
    created_at: datetime
    headers: list[RecordHeaders | None] | None = None
    age_s: float = 0.0
    failed: dict[int, BaseException] = field(default_factory=dict)

    def record_headers(self, index: int) -> RecordHeaders | None:
        if self.headers is None or index >= len(self.headers):
            return None
        return self.headers[index]

    def kafka_headers(self, index: int) -> list[tuple[str, bytes]] | None:
        """The record's headers on Kafka: as stored with it."""
        return tracing.carrier_headers(self.record_headers(index))


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
        on_unpublishable: Unpublishable | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self._pool = pool
        self._producer_factory = producer_factory
        self._prepare = prepare
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._backoff = Backoff(0.4, max_backoff)
        self._on_unpublishable = on_unpublishable
        self._max_message_bytes = max_message_bytes
        self._producer: AIOKafkaProducer | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.published_total = 0
        self.set_aside_total = 0
        self.last_error: str | None = None

    async def refresh_metrics(self) -> None:
        """Set the backlog and set-aside gauges (a scrape's ``metrics_refresh``)."""
        details = await self.details()
        metrics.OUTBOX_BACKLOG.set(details["pending_events"])
        metrics.OUTBOX_SET_ASIDE_RECORDS.set(details["set_aside"])

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

    async def details(self) -> dict[str, Any]:
        """What ``/readyz`` shows of the outbox: events waiting, records set aside, last error."""
        async with self._pool.acquire() as conn:
            backlog = int(await conn.fetchval(_BACKLOG))
            dead = int(await conn.fetchval(_DEAD_COUNT))
        return {"pending_events": backlog, "set_aside": dead, "last_error": self.last_error}

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                published = await self.publish_batch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                metrics.OUTBOX_FAILURES.inc()
                self.last_error = type(exc).__name__
                delay = self._backoff.delay(failures)
                log.warning(
                    "outbox publish failed; rows kept for retry",
                    extra={"error": type(exc).__name__, "attempt": failures, "retry_in_s": round(delay, 2)},
                )
                # A fresh producer after a failure: an idempotent producer whose batch was
                # refused keeps sequence numbers the broker would no longer accept.
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
        """Claim up to ``batch_size`` rows, publish their events, settle every record (delete
        what Kafka has, set aside what it never will, keep what may pass later); returns how many
        events went out. Raises ``OutboxPublishError`` after settling when some must be retried."""
        transient: BaseException | None = None
        async with self._pool.acquire() as conn, conn.transaction():
            records = await conn.fetch(_CLAIM, self._batch_size)
            if not records:
                return 0
            rows = [
                _Row(
                    r["id"],
                    r["topic"],
                    list(r["keys"]),
                    list(r["payloads"]),
                    r["created_at"],
                    headers=r["headers"],
                    age_s=r["age_s"] or 0.0,
                )
                for r in records
            ]
            producer = await self._ensure_producer()
            started = time.perf_counter()
            sends = await self._send(producer, rows)
            results = await asyncio.gather(*(ack for ack, _ in sends), return_exceptions=True)
            alone: list[tuple[_Row, int]] = []
            for result, (_, members) in zip(results, sends, strict=True):
                if isinstance(result, BaseException):
                    for row, index in members:
                        row.failed[index] = result
                    if is_permanent(result) and len(members) > 1:
                        # The limit applies to a whole record batch: find out which record it is.
                        alone += members
            if alone:
                await self._send_alone(producer, alone)
            acked_s = time.perf_counter() - started
            for row in rows:
                if not row.failed:
                    metrics.OUTBOX_DELAY.observe(row.age_s + acked_s)
            published, transient = await self._settle(conn, rows)
        self.published_total += published
        metrics.OUTBOX_PUBLISHED.inc(published)
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        log.debug("outbox batch published", extra={"rows": len(rows), "events": published, "ms": elapsed_ms})
        if transient is not None:
            raise OutboxPublishError(type(transient).__name__) from transient
        return published

    async def _settle(self, conn: asyncpg.Connection, rows: list[_Row]) -> tuple[int, BaseException | None]:
        """Delete what went out, set aside what never will, cut rows down to what is owed."""
        done: list[int] = []
        published = 0
        transient: BaseException | None = None
        for row in rows:
            published += len(row.keys) - len(row.failed)
            if not row.failed:
                done.append(row.id)
                continue
            owed: list[int] = []
            for index, error in sorted(row.failed.items()):
                if is_permanent(error):
                    await self._set_aside(conn, row, index, error)
                else:
                    owed.append(index)
                    transient = transient or error
            if owed:
                headers = None if row.headers is None else [row.record_headers(i) for i in owed]
                await conn.execute(_KEEP, row.id, [row.keys[i] for i in owed], [row.payloads[i] for i in owed], headers)
            else:
                done.append(row.id)
        if done:
            await conn.execute(_DELETE, done)
        return published, transient

    async def _set_aside(self, conn: asyncpg.Connection, row: _Row, index: int, error: BaseException) -> None:
        record: OutboxRecord = (row.topic, row.keys[index], row.payloads[index])
        reason = f"{type(error).__name__}: {len(record[2])} bytes"
        headers = row.record_headers(index)
        await conn.execute(_SET_ASIDE, *record, reason, row.created_at, headers)
        replacements = list(self._on_unpublishable(record)) if self._on_unpublishable is not None else []
        by_topic: dict[str, list[OutboxRecord]] = defaultdict(list)
        for replacement in replacements:
            by_topic[replacement[0]].append(replacement)
        for topic, group in by_topic.items():
            # What replaces the record stays in its trace (the call's failure, say).
            group_headers = None if headers is None else [headers] * len(group)
            await conn.execute(_INSERT, topic, [k for _, k, _ in group], [p for _, _, p in group], group_headers)
        self.set_aside_total += 1
        metrics.OUTBOX_SET_ASIDE.inc()
        log.error(
            "outbox record set aside: Kafka will not accept it",
            extra={"topic": row.topic, "key": row.keys[index], "error": reason, "replaced_by": len(replacements)},
        )

    async def _send(
        self, producer: AIOKafkaProducer, rows: list[_Row]
    ) -> list[tuple[asyncio.Future[Any], list[tuple[_Row, int]]]]:
        """Queue the rows' events as record batches, one partition at a time, in order.

        Returns each batch's ack with the records it carries. Building batches ourselves
        (instead of one ``send`` per record) is what lets one relay keep up with ingestion. A
        record too large for Kafka is not sent: it is marked failed for good at once."""
        by_partition: dict[tuple[str, int], list[tuple[bytes, bytes, _Row, int]]] = defaultdict(list)
        partition_counts: dict[str, int] = {}
        for row in rows:
            if row.topic not in partition_counts:
                partition_counts[row.topic] = len(await producer.partitions_for(row.topic))
            for index, (text_key, payload) in enumerate(zip(row.keys, row.payloads, strict=True)):
                encoded = text_key.encode()
                if len(encoded) + len(payload) + _RECORD_OVERHEAD > self._max_message_bytes:
                    row.failed[index] = MessageSizeTooLargeError(f"{len(payload)} bytes")
                    continue
                partition = partition_for(encoded, partition_counts[row.topic])
                by_partition[row.topic, partition].append((encoded, payload, row, index))
        sends: list[tuple[asyncio.Future[Any], list[tuple[_Row, int]]]] = []
        for (topic, partition), records in by_partition.items():
            batch = producer.create_batch()
            members: list[tuple[_Row, int]] = []
            for encoded_key, value, row, index in records:
                headers = row.kafka_headers(index)
                if members and batch.append(key=encoded_key, value=value, timestamp=None, headers=headers) is None:
                    batch.close()
                    sends.append((await producer.send_batch(batch, topic, partition=partition), members))
                    batch, members = producer.create_batch(), []
                if not members:
                    batch.append(key=encoded_key, value=value, timestamp=None, headers=headers)
                members.append((row, index))
            batch.close()
            sends.append((await producer.send_batch(batch, topic, partition=partition), members))
        return sends

    @staticmethod
    async def _send_alone(producer: AIOKafkaProducer, members: list[tuple[_Row, int]]) -> None:
        """Send each record in a batch of its own, updating its outcome: records refused only
        for the company they kept go out; one refused on its own stays refused."""
        partitions: dict[str, int] = {}
        acks = []
        for row, index in members:
            if row.topic not in partitions:
                partitions[row.topic] = len(await producer.partitions_for(row.topic))
            key = row.keys[index].encode()
            batch = producer.create_batch()
            batch.append(key=key, value=row.payloads[index], timestamp=None, headers=row.kafka_headers(index))
            batch.close()
            acks.append(
                await producer.send_batch(batch, row.topic, partition=partition_for(key, partitions[row.topic]))
            )
        results = await asyncio.gather(*acks, return_exceptions=True)
        for (row, index), result in zip(members, results, strict=True):
            if isinstance(result, BaseException):
                row.failed[index] = result
            else:
                row.failed.pop(index, None)

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


@dataclass(frozen=True)
class DeadRecord:
    id: int
    topic: str
    key: str
    size: int
    error: str
    queued_at: datetime
    set_aside_at: datetime


class OutboxDeadLetters:
    """The records a service's relay set aside: listed and requeued by its admin command."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def list(self, limit: int = 100) -> list[DeadRecord]:
        rows = await self._pool.fetch(
            "SELECT id, topic, key, octet_length(payload) AS size, error, queued_at, set_aside_at"
            " FROM outbox_dead ORDER BY id LIMIT $1",
            limit,
        )
        return [DeadRecord(**dict(r)) for r in rows]

    async def requeue(self, ids: Sequence[int] | None = None) -> int:
        """Put set-aside records back in the outbox (all of them when ``ids`` is None), e.g.
        after the broker's limit was raised; returns how many."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "DELETE FROM outbox_dead WHERE $1::bigint[] IS NULL OR id = ANY($1::bigint[])"
                " RETURNING id, topic, key, payload, headers",
                list(ids) if ids is not None else None,
            )
            for row in sorted(rows, key=lambda r: r["id"]):
                headers = None if row["headers"] is None else [row["headers"]]
                await conn.execute(_INSERT, row["topic"], [row["key"]], [row["payload"]], headers)
        return len(rows)


def add_admin_commands(areas: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``outbox list`` and ``outbox requeue`` for a service's admin command line."""
    outbox = areas.add_parser("outbox", help="records the outbox relay set aside").add_subparsers(
        dest="action", required=True
    )
    listing = outbox.add_parser("list", help="records Kafka refused for good, oldest first")
    listing.add_argument("--limit", type=int, default=100)
    requeue = outbox.add_parser("requeue", help="put set-aside records back in the outbox (e.g. after raising limits)")
    requeue.add_argument("ids", nargs="*", type=int, default=[], help="ids from `outbox list`")
    requeue.add_argument("--all", action="store_true", help="every set-aside record")


async def run_admin_command(args: argparse.Namespace, pool: asyncpg.Pool) -> dict[str, Any]:
    """Carry out an ``outbox`` admin command; returns what to print."""
    dead = OutboxDeadLetters(pool)
    if args.action == "list":
        records = await dead.list(args.limit)
        return {"set_aside": [vars(r) for r in records]}
    if bool(args.all) == bool(args.ids):
        raise ValueError("name the ids to requeue, or --all")
    requeued = await dead.requeue(None if args.all else args.ids)
    return {"requeued": requeued}
