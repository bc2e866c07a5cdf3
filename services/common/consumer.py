"""The consumer runtime every worker shares: decode, call the handler, publish, commit.

At least once, never past an unfinished message:
- auto-commit is off; per partition the committed offset is the lowest offset still in flight
  (or the highest fetched + 1 when none is), i.e. the highest contiguous *finished* offset + 1.
  A crash can therefore only cause redelivery, never loss. Handlers must be idempotent.
- up to ``concurrency`` messages are processed at once, and up to ``prefetch`` are held (fetched,
  waiting for a slot); messages with the same key (one call) are processed one after the other,
  in offset order. With ``fairness_key``, at most ``per_key_concurrency`` of the slots go to one
  fairness key (a partner), so one partner's slow work cannot queue everyone else's behind it.
- a message waiting to retry holds no slot: the back-off wait (``services.common.backoff.wait``,
  used by the runtime and by handlers alike) gives the slot back and takes it again after.
- a handler's output events are published (``acks=all``) before its message counts as finished.
- a failure is retried with exponential backoff. Transient failures (infrastructure down) are
  retried until they pass, stalling only their key; anything else is retried ``max_attempts``
  times (transient failures do not count), then the message goes to the dead-letter topic with
  the error, the service's give-up events (its ``calls.failed.v1``) are published so the call
  still ends somewhere, and the partition moves on. A failure Kafka will never accept (a record
  too large, say) is given up at once.
- a message that does not decode is salvaged when its declared fields still make a valid event
  (``schemas.events.salvage_event`` drops the partner's unknown content); otherwise it goes to
  the dead-letter topic at once and the service's ``on_undecodable`` events (a ``calls.failed.v1``
  built from the message key) are published, so the call still ends.
- on rebalance, the revoked partitions' in-flight work gets a grace period, the finished prefix
  is committed, and the rest is abandoned to the next owner. ``CommitFailedError`` (the group
  moved on) is logged, not fatal: the next owner resumes from the last commit.

The transport knows nothing of business logic: the handler is a plain async function taking the
decoded event and returning the events to publish.

Observability (``services.common.metrics``, ``services.common.tracing``): each message is
processed in a ``process`` span, the child of the trace context in its headers, and every event
it publishes carries that span's context on; messages, attempts, retries, dead letters, in-flight
messages and the lag of the assigned partitions are counted per consumer group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from schemas.events import TOPICS, AnyEvent, dump_event, parse_event, salvage_event
from services.common import backoff, metrics, tracing
from services.common.backoff import Backoff, lend_slot, reset_slot
from services.common.errors import DependencyUnavailable
from services.common.kafka import Kafka, connection, is_permanent

log = logging.getLogger(__name__)

Handler = Callable[[AnyEvent], Awaitable[Sequence[AnyEvent]]]
GiveUp = Callable[[AnyEvent, BaseException], Sequence[AnyEvent]]
Undecodable = Callable[[ConsumerRecord], Sequence[AnyEvent]]
FairnessKey = Callable[[ConsumerRecord], bytes]


def dead_letter_topic(group_id: str) -> str:
    """The one dead-letter naming rule: ``<consumer group>.dlq`` (the group carries the topic
    prefix, so tests and shared clusters stay isolated)."""
    return f"{group_id}.dlq"


def partner_of(record: ConsumerRecord) -> bytes:
    """Fairness key of a call event: the partner part of its ``partner/call`` message key."""
    return (record.key or b"").split(b"/", 1)[0]


@dataclass
class ConsumerSettings:
    kafka: Kafka  # brokers and credentials (``ServiceSettings.kafka()``); a string: plaintext
    group_id: str
    topics: list[str]
    dead_letter_topic: str
    topic_prefix: str = ""
    client_id: str = "callpipe"
    concurrency: int = 16
    # Messages held at once (being processed or waiting for a slot); 0 means ``concurrency``. Must
    # exceed ``concurrency`` for fairness to help: the messages of other partners behind a busy
    # one are fetched and can take the free slots.
    prefetch: int = 0
    fairness_key: FairnessKey | None = None
    per_key_concurrency: int = 0
    max_attempts: int = 5
    retry_base_s: float = 0.5
    retry_max_s: float = 30.0
    commit_interval_s: float = 1.0
    revoke_grace_s: float = 10.0
    shutdown_grace_s: float = 30.0
    session_timeout_ms: int = 30_000
    heartbeat_interval_ms: int = 3_000
    # Errors that mean "the world is not ready" rather than "this message is bad": retried for
    # up to transient_window_s (a dependency outage), then treated like any other failure.
    transient: tuple[type[BaseException], ...] = (
        OSError,
        TimeoutError,
        KafkaError,
        asyncpg.PostgresConnectionError,
        asyncpg.exceptions.ConnectionDoesNotExistError,
        # The server is starting up (crash recovery), shutting down, or restarting after a crash
        # of one of its processes: SQLSTATE 57P03, 57P01, 57P02.
        asyncpg.CannotConnectNowError,
        asyncpg.AdminShutdownError,
        asyncpg.CrashShutdownError,
        DependencyUnavailable,
    )
    transient_window_s: float = 900.0
    # The events that tell the world a decoded message was given up on (dead-lettered after its
    # retries), e.g. the service's ``calls.failed.v1``; published before the message is committed,
    # so the call still reaches a final state and the partner hears of it.
    on_give_up: GiveUp | None = None
    # The events that end a call whose message cannot be decoded at all (built from the key).
    on_undecodable: Undecodable | None = None


#: Waits between tries to put a message's final events (or its dead letter) on Kafka.
_KAFKA_RETRY = Backoff(base_s=0.5, max_s=10.0)


@dataclass
class _FairSlot:
    """The slots of one fairness key, dropped when no message of that key is held."""

    key: bytes
    semaphore: asyncio.Semaphore
    users: int = 0


@dataclass
class _Partition:
    """Offsets of one assigned partition: what is fetched and what is still unfinished."""

    in_flight: set[int] = field(default_factory=set)
    next_fetch: int | None = None  # highest fetched offset + 1
    committed: int | None = None

    def committable(self) -> int | None:
        if self.in_flight:
            return min(self.in_flight)
        return self.next_fetch


@dataclass
class RuntimeStats:
    processed: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    salvaged: int = 0
    published: int = 0
    commits: int = 0
    commit_failures: int = 0
    last_poll: float = 0.0


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runtime: ConsumerRuntime) -> None:
        self._runtime = runtime

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._runtime._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._runtime._on_assigned(assigned)


class ConsumerRuntime:
    def __init__(self, settings: ConsumerSettings, handler: Handler, producer: AIOKafkaProducer) -> None:
        self._s = settings
        self._handler = handler
        self._producer = producer
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._tasks: dict[tuple[TopicPartition, int], asyncio.Task[None]] = {}
        self._key_tails: dict[tuple[TopicPartition, bytes], asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._fair_slots: dict[bytes, _FairSlot] = {}
        self._prefetch = max(settings.prefetch, settings.concurrency)
        self._backoff = Backoff(settings.retry_base_s, settings.retry_max_s)
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None
        self._last_commit = 0.0
        self._last_lag = 0.0
        self._group = metrics.group_label(settings.group_id, settings.topic_prefix)
        self._in_flight_gauge = metrics.CONSUMER_IN_FLIGHT.labels(self._group)
        self.stats = RuntimeStats()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the group and start consuming in the background."""
        consumer = AIOKafkaConsumer(
            **connection(self._s.kafka).options(),
            group_id=self._s.group_id,
            client_id=self._s.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._s.session_timeout_ms,
            heartbeat_interval_ms=self._s.heartbeat_interval_ms,
            metadata_max_age_ms=30_000,
        )
        await consumer.start()
        consumer.subscribe(self._s.topics, listener=_Rebalance(self))
        self._consumer = consumer
        self._run_task = asyncio.create_task(self._run(consumer), name=f"consumer-{self._s.group_id}")

    async def stop(self) -> None:
        """Stop fetching, let in-flight work finish (bounded), commit, leave the group."""
        self._stopping.set()
        if self._run_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._run_task
        await self._drain(list(self._tasks.values()), self._s.shutdown_grace_s)
        await self._commit(force=True)
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    def alive(self) -> bool:
        """The poll loop runs and has polled recently."""
        return (
            self._run_task is not None
            and not self._run_task.done()
            and time.monotonic() - self.stats.last_poll < max(30.0, self._s.session_timeout_ms / 1000)
        )

    def in_flight(self) -> int:
        return len(self._tasks)

    def update_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Set the lag gauges: per topic, messages after the committed offset (the high watermark
        of the last fetch minus the commit) of the partitions this process owns; what KEDA
        scales on, seen from inside. Topics without an assigned partition read 0."""
        lag = dict.fromkeys(self._s.topics, 0)
        for tp, state in self._partitions.items():
            highwater = consumer.highwater(tp)
            position = state.committed if state.committed is not None else state.committable()
            if highwater is not None and position is not None:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, highwater - position)
        for topic, value in lag.items():
            metrics.CONSUMER_LAG.labels(self._group, topic.removeprefix(self._s.topic_prefix)).set(value)

    def lag(self) -> int:
        """Messages fetched but not yet committed, across assigned partitions."""
        total = 0
        for state in self._partitions.values():
            if state.next_fetch is not None:
                total += state.next_fetch - (state.committed or state.next_fetch)
        return total

    # -- the loop -----------------------------------------------------------------------------

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            free = self._prefetch - len(self._tasks)
            if free <= 0:
                # Every slot is busy: stop prefetching, and go on as soon as one frees up (not
                # after a poll timeout, which would cap throughput at slots / timeout).
                if assignment := consumer.assignment():
                    consumer.pause(*assignment)
                self._slot_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._slot_freed.wait(), 1.0)
                if self._prefetch - len(self._tasks) <= 0:
                    # Still full: poll anyway (nothing is fetched while paused) so the group
                    # keeps seeing a live member, and commit what finished.
                    await self._poll(consumer, 0)
                    continue
            if consumer.paused():
                consumer.resume(*consumer.paused())
            await self._poll(consumer, max(self._prefetch - len(self._tasks), 1))

    async def _poll(self, consumer: AIOKafkaConsumer, max_records: int) -> None:
        """Fetch up to ``max_records`` (0: only keep the membership alive), dispatch, commit."""
        try:
            batches = await consumer.getmany(timeout_ms=0 if max_records == 0 else 200, max_records=max(max_records, 1))
        except KafkaError as exc:
            log.warning("poll failed; retrying", extra={"error": type(exc).__name__})
            await asyncio.sleep(1.0)
            return
        self.stats.last_poll = time.monotonic()
        for tp, records in batches.items():
            for record in records:
                self._dispatch(tp, record)
        await self._commit()
        if self.stats.last_poll - self._last_lag >= self._s.commit_interval_s:
            self._last_lag = self.stats.last_poll
            self.update_lag(consumer)

    def _dispatch(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        state = self._partitions.setdefault(tp, _Partition())
        state.in_flight.add(record.offset)
        state.next_fetch = record.offset + 1
        key = (tp, record.key or b"")
        previous = self._key_tails.get(key) if record.key else None
        task = asyncio.create_task(self._process(tp, record, previous))
        self._in_flight_gauge.inc()
        self._tasks[tp, record.offset] = task
        if record.key:
            self._key_tails[key] = task
        task.add_done_callback(lambda t: self._finished(tp, record.offset, key, t))

    def _finished(
        self, tp: TopicPartition, offset: int, key: tuple[TopicPartition, bytes], task: asyncio.Task[None]
    ) -> None:
        if self._tasks.pop((tp, offset), None) is not None:
            self._in_flight_gauge.dec()
        if self._key_tails.get(key) is task:
            del self._key_tails[key]
        state = self._partitions.get(tp)
        if state is not None and not task.cancelled():
            state.in_flight.discard(offset)
        self._slot_freed.set()

    def _fair_slot(self, record: ConsumerRecord) -> _FairSlot | None:
        if self._s.fairness_key is None or self._s.per_key_concurrency <= 0:
            return None
        key = self._s.fairness_key(record)
        slot = self._fair_slots.get(key)
        if slot is None:
            slot = self._fair_slots[key] = _FairSlot(key, asyncio.Semaphore(self._s.per_key_concurrency))
        return slot

    @contextlib.asynccontextmanager
    async def _slot(self, record: ConsumerRecord) -> AsyncIterator[None]:
        """Hold a processing slot (the fairness key's first, then a global one) while the body
        runs; ``backoff.wait`` inside it gives both back while it sleeps."""
        fair = self._fair_slot(record)

        async def take() -> None:
            if fair is not None:
                await fair.semaphore.acquire()
            try:
                await self._slots.acquire()
            except BaseException:
                if fair is not None:
                    fair.semaphore.release()
                raise

        def give_back() -> None:
            self._slots.release()
            if fair is not None:
                fair.semaphore.release()

        async def waiter(seconds: float) -> None:
            give_back()
            try:
                await asyncio.sleep(seconds)
            finally:
                await take()

        if fair is not None:
            fair.users += 1
        try:
            await take()
            token = lend_slot(waiter)
            try:
                yield
            finally:
                reset_slot(token)
                give_back()
        finally:
            if fair is not None:
                fair.users -= 1
                if fair.users == 0:
                    self._fair_slots.pop(fair.key, None)

    def _decode(self, record: ConsumerRecord) -> tuple[AnyEvent | None, BaseException | None]:
        """The message's event, salvaged from its declared fields if need be; else the error."""
        try:
            return parse_event(record.value), None
        except (ValidationError, ValueError) as exc:
            error: BaseException = exc
        salvaged = salvage_event(record.value)
        if salvaged is None:
            return None, error
        self.stats.salvaged += 1
        metrics.CONSUMER_SALVAGED.labels(self._group).inc()
        log.warning(
            "message salvaged from its declared fields",
            extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
        )
        return salvaged, None

    async def _process(self, tp: TopicPartition, record: ConsumerRecord, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            # Same call, earlier offset: let it finish first, whatever its outcome.
            await asyncio.wait([previous])
        # A task of its own: the call id set here is seen by this message's log lines only.
        tracing.CALL_ID.set(tracing.call_of_key(record.key))
        with tracing.span(
            f"{record.topic.removeprefix(self._s.topic_prefix)} process",
            parent=tracing.headers_carrier(record.headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": record.topic,
                "messaging.consumer.group.name": self._s.group_id,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
                "callpipe.call_id": tracing.CALL_ID.get() or "",
            },
        ):
            await self._process_in_slot(tp, record)

    async def _process_in_slot(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        async with self._slot(record):
            event, decode_error = self._decode(record)
            if event is None:
                await self._dead_letter(record, decode_error or ValueError("undecodable"), attempts=0)
                await self._undecodable(record)
                return
            attempt = hard_failures = 0
            first_failure: float | None = None
            while True:
                attempt += 1
                started = time.perf_counter()
                try:
                    outputs = await self._handler(event)
                    await self._publish(outputs)
                    self.stats.processed += 1
                    metrics.CONSUMER_DURATION.labels(self._group, "ok").observe(time.perf_counter() - started)
                    metrics.CONSUMER_MESSAGES.labels(self._group, "processed").inc()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    metrics.CONSUMER_DURATION.labels(self._group, "error").observe(time.perf_counter() - started)
                    self.stats.failed_attempts += 1
                    first_failure = first_failure or time.monotonic()
                    transient = (
                        isinstance(exc, self._s.transient)
                        and not is_permanent(exc)
                        and time.monotonic() - first_failure < self._s.transient_window_s
                    )
                    # Only failures that say something about the message count: after an outage
                    # its retries must not have used up the attempts of the next, real, error.
                    # One Kafka will never accept (a record too large) needs no second try.
                    hard_failures += self._s.max_attempts if is_permanent(exc) else 0 if transient else 1
                    if not transient and hard_failures >= self._s.max_attempts:
                        await self._dead_letter(record, exc, attempt)
                        await self._give_up(event, exc)
                        return
                    metrics.CONSUMER_RETRIES.labels(self._group, "transient" if transient else "failure").inc()
                    delay = self._backoff.delay(attempt)
                    log.warning(
                        "handler failed; will retry",
                        extra={
                            "topic": tp.topic,
                            "partition": tp.partition,
                            "offset": record.offset,
                            "error": type(exc).__name__,
                            "attempt": attempt,
                            "transient": transient,
                            "retry_in_s": round(delay, 2),
                        },
                    )
                    await backoff.wait(delay)

    async def _publish(self, events: Sequence[AnyEvent]) -> None:
        # The events follow the message's trace: they carry the process span's context.
        headers = tracing.current_headers()
        acks = [
            await self._producer.send(
                self._s.topic_prefix + TOPICS[type(e)], value=dump_event(e), key=e.key(), headers=headers
            )
            for e in events
        ]
        await asyncio.gather(*acks)
        self.stats.published += len(events)

    async def _give_up(self, event: AnyEvent, exc: BaseException) -> None:
        """Publish what the service says a given-up message ends as."""
        if self._s.on_give_up is not None:
            await self._publish_final(self._s.on_give_up(event, exc))

    async def _undecodable(self, record: ConsumerRecord) -> None:
        """Publish what the service says an undecodable message's call ends as."""
        if self._s.on_undecodable is not None:
            await self._publish_final(self._s.on_undecodable(record))

    async def _publish_final(self, events: Sequence[AnyEvent]) -> None:
        """Publish events that end a call; retried until Kafka has them (moving on without them
        would strand the call)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._publish(events)
                return
            except KafkaError as send_error:
                log.warning("final events not published; retrying", extra={"error": type(send_error).__name__})
                await asyncio.sleep(_KAFKA_RETRY.delay(attempt))

    async def _dead_letter(self, record: ConsumerRecord, exc: BaseException, attempts: int) -> None:
        """Park a message that cannot be processed; retried until the dead-letter topic has it,
        because moving on without it would lose the message."""
        headers = [
            ("dlq-source-topic", record.topic.encode()),
            ("dlq-source-partition", str(record.partition).encode()),
            ("dlq-source-offset", str(record.offset).encode()),
            ("dlq-consumer-group", self._s.group_id.encode()),
            ("dlq-error-type", type(exc).__name__.encode()),
            ("dlq-error", str(exc)[:1000].encode("utf-8", "replace")),
            ("dlq-attempts", str(attempts).encode()),
            *(tracing.current_headers() or []),
        ]
        attempt = 0
        while True:
            attempt += 1
            try:
                ack = await self._producer.send(
                    self._s.dead_letter_topic, value=record.value, key=record.key, headers=headers
                )
                await ack
                break
            except KafkaError as send_error:
                log.warning("dead-letter publish failed; retrying", extra={"error": type(send_error).__name__})
                await asyncio.sleep(_KAFKA_RETRY.delay(attempt))
        self.stats.dead_lettered += 1
        reason = "undecodable" if attempts == 0 else "refused" if is_permanent(exc) else "exhausted"
        metrics.CONSUMER_DEAD_LETTERS.labels(self._group, reason).inc()
        metrics.CONSUMER_MESSAGES.labels(self._group, "dead_lettered").inc()
        log.error(
            "message dead-lettered",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "error": type(exc).__name__,
                "attempts": attempts,
                "dead_letter_topic": self._s.dead_letter_topic,
            },
        )

    # -- offsets ------------------------------------------------------------------------------

    async def _commit(self, *, force: bool = False, only: Sequence[TopicPartition] | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._last_commit < self._s.commit_interval_s:
            return
        self._last_commit = now
        if self._consumer is None:
            return
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp in only if only is not None else list(self._partitions):
            state = self._partitions.get(tp)
            if state is None:
                continue
            position = state.committable()
            if position is not None and position != state.committed:
                offsets[tp] = OffsetAndMetadata(position, "")
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError:
            # The group rebalanced under us; the partition's next owner resumes from the last
            # successful commit, which only means redelivery.
            self.stats.commit_failures += 1
            metrics.CONSUMER_COMMIT_FAILURES.labels(self._group).inc()
            log.warning("commit failed after a rebalance; offsets will be redelivered")
            return
        except KafkaError as exc:
            self.stats.commit_failures += 1
            metrics.CONSUMER_COMMIT_FAILURES.labels(self._group).inc()
            log.warning("commit failed; will retry", extra={"error": type(exc).__name__})
            return
        self.stats.commits += 1
        for tp, meta in offsets.items():
            if tp in self._partitions:
                self._partitions[tp].committed = meta.offset

    def _on_assigned(self, assigned: list[TopicPartition]) -> None:
        for tp in assigned:
            self._partitions.setdefault(tp, _Partition())
        log.info("partitions assigned", extra={"partitions": [f"{tp.topic}:{tp.partition}" for tp in assigned]})

    async def _on_revoked(self, revoked: list[TopicPartition]) -> None:
        if not revoked:
            return
        tasks = [t for (tp, _), t in self._tasks.items() if tp in revoked]
        await self._drain(tasks, self._s.revoke_grace_s)
        await self._commit(force=True, only=revoked)
        for tp in revoked:
            self._partitions.pop(tp, None)
        log.info("partitions revoked", extra={"partitions": [f"{tp.topic}:{tp.partition}" for tp in revoked]})

    @staticmethod
    async def _drain(tasks: list[asyncio.Task[Any]], grace_s: float) -> None:
        """Let ``tasks`` finish within ``grace_s``; cancel the rest (they will be redelivered)."""
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
