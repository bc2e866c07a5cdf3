"""The shared consumer runtime on a real broker: what it commits, in what order it processes,
and where a message that cannot be processed goes."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas.events import TOPIC_FAILED, TOPIC_INGESTED, AnyEvent, CallFailed, dump_event, parse_event
from services.common.consumer import ConsumerRuntime, ConsumerSettings
from services.common.kafka import TopicSpec, ensure_topics, make_producer
from services.fetcher import handlers as fetcher_handlers
from tests.factories import ingested_event
from tests.support.gateway import wait_until
from tests.support.infra import Infra
from tests.support.kafka import consume


@pytest.fixture
async def topics(infra: Infra, topic_prefix: str) -> dict[str, str]:
    names = {
        "in": topic_prefix + TOPIC_INGESTED,
        "failed": topic_prefix + TOPIC_FAILED,
        "dlq": topic_prefix + TOPIC_INGESTED + ".test.dlq",
    }
    await ensure_topics(infra.kafka_bootstrap, [TopicSpec(n, 3) for n in names.values()])
    return names


@pytest.fixture
async def producer(infra: Infra) -> AsyncIterator[AIOKafkaProducer]:
    p = make_producer(infra.kafka_bootstrap, "test")
    await p.start()
    yield p
    await p.stop()


def settings(infra: Infra, topics: dict[str, str], topic_prefix: str, **overrides: object) -> ConsumerSettings:
    base = ConsumerSettings(
        kafka=infra.kafka_bootstrap,
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        topics=[topics["in"]],
        dead_letter_topic=topics["dlq"],
        topic_prefix=topic_prefix,
        concurrency=4,
        max_attempts=3,
        retry_base_s=0.02,
        retry_max_s=0.1,
        commit_interval_s=0.1,
        shutdown_grace_s=5,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
    )
    for k, v in overrides.items():
        setattr(base, k, v)
    return base


async def publish(producer: AIOKafkaProducer, topic: str, events: Sequence[AnyEvent]) -> None:
    await asyncio.gather(*[await producer.send(topic, dump_event(e), key=e.key()) for e in events])


async def committed(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items()}


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in c.partitions_for_topic(topic) or await _partitions(c, topic)]
        ends = await c.end_offsets(tps)
    finally:
        await c.stop()
    return {tp: o for tp, o in ends.items() if o > 0}


async def _partitions(c, topic):  # type: ignore[no-untyped-def]
    await c._client.force_metadata_update()
    return c.partitions_for_topic(topic) or set()


async def test_every_message_is_processed_and_the_end_is_committed(infra, topics, topic_prefix, producer) -> None:
    events = [ingested_event() for _ in range(30)]
    seen: list[str] = []

    async def handler(event: AnyEvent) -> list[AnyEvent]:
        seen.append(event.call_id)
        return []

    s = settings(infra, topics, topic_prefix)
    runtime = ConsumerRuntime(s, handler, producer)
    await publish(producer, topics["in"], events)
    await runtime.start()
    assert await wait_until(lambda: _true(len(seen) >= 30), timeout=30)
    await runtime.stop()
    assert sorted(seen) == sorted(e.call_id for e in events)
    assert await committed(infra.kafka_bootstrap, s.group_id) == await end_offsets(infra.kafka_bootstrap, topics["in"])


async def _true(value: bool) -> bool:
    return value


async def test_concurrency_is_bounded_and_one_calls_events_stay_in_order(infra, topics, topic_prefix, producer) -> None:
    # 4 calls x 5 events each, interleaved; same call id -> same key -> same partition.
    calls = [f"call-{i}" for i in range(4)]
    events = [ingested_event(c) for _ in range(5) for c in calls]
    running = 0
    peak = 0
    per_call: dict[str, list[str]] = defaultdict(list)
    active_calls: set[str] = set()
    overlap = False

    async def handler(event: AnyEvent) -> list[AnyEvent]:
        nonlocal running, peak, overlap
        running += 1
        peak = max(peak, running)
        overlap = overlap or event.call_id in active_calls
        active_calls.add(event.call_id)
        await asyncio.sleep(0.05)
        per_call[event.call_id].append(str(event.event_id))
        active_calls.discard(event.call_id)
        running -= 1
        return []

    runtime = ConsumerRuntime(settings(infra, topics, topic_prefix, concurrency=3), handler, producer)
    await publish(producer, topics["in"], events)
    await runtime.start()
    assert await wait_until(lambda: _true(sum(map(len, per_call.values())) >= 20), timeout=30)
    await runtime.stop()
    assert 1 < peak <= 3
    assert not overlap, "two events of one call were processed at the same time"
    for call in calls:
        assert per_call[call] == [str(e.event_id) for e in events if e.call_id == call]


async def test_committed_offset_never_passes_an_unfinished_message(infra, topics, topic_prefix, producer) -> None:
    topic = topics["in"]
    events = [ingested_event(f"c{i}") for i in range(6)]
    # All on one partition, so offsets are 0..5 in order.
    await asyncio.gather(*[await producer.send(topic, dump_event(e), key=e.key(), partition=0) for e in events])
    release = asyncio.Event()
    done: list[str] = []

    async def stalling(event: AnyEvent) -> list[AnyEvent]:
        if event.call_id == "c2":
            await release.wait()
        done.append(event.call_id)
        return []

    s = settings(infra, topics, topic_prefix, shutdown_grace_s=0.2)
    first = ConsumerRuntime(s, stalling, producer)
    await first.start()
    assert await wait_until(lambda: _true(len(done) == 5), timeout=30)
    await asyncio.sleep(0.5)  # several commit intervals
    assert (await committed(infra.kafka_bootstrap, s.group_id))[TopicPartition(topic, 0)] == 2
    await first.stop()  # c2 never finished: it is abandoned, not committed
    assert (await committed(infra.kafka_bootstrap, s.group_id))[TopicPartition(topic, 0)] == 2

    again: list[str] = []

    async def finishing(event: AnyEvent) -> list[AnyEvent]:
        again.append(event.call_id)
        return []

    second = ConsumerRuntime(s, finishing, producer)
    await second.start()
    assert await wait_until(lambda: _true({"c2", "c3", "c4", "c5"} <= set(again)), timeout=30)
    await second.stop()
    assert "c0" not in again and "c1" not in again  # committed work is not redone
    assert (await committed(infra.kafka_bootstrap, s.group_id))[TopicPartition(topic, 0)] == 6


async def test_a_poison_message_is_dead_lettered_and_the_partition_moves_on(
    infra, topics, topic_prefix, producer
) -> None:
    topic = topics["in"]
    events = [ingested_event("before"), ingested_event("poison"), ingested_event("after")]
    await asyncio.gather(*[await producer.send(topic, dump_event(e), key=e.key(), partition=1) for e in events])
    attempts: dict[str, int] = defaultdict(int)

    async def handler(event: AnyEvent) -> list[AnyEvent]:
        attempts[event.call_id] += 1
        if event.call_id == "poison":
            raise ValueError("cannot handle this one")
        return []

    s = settings(infra, topics, topic_prefix)
    runtime = ConsumerRuntime(s, handler, producer)
    await runtime.start()
    assert await wait_until(lambda: _true(attempts["after"] == 1), timeout=30)
    dead = await consume(infra.kafka_bootstrap, topics["dlq"], 1, timeout=15)
    await asyncio.sleep(0.3)
    await runtime.stop()
    assert attempts["poison"] == 3
    assert len(dead) == 1
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert headers["dlq-source-topic"] == topic
    assert headers["dlq-source-partition"] == "1"
    assert headers["dlq-source-offset"] == "1"
    assert headers["dlq-error-type"] == "ValueError"
    assert headers["dlq-attempts"] == "3"
    assert dead[0].value == dump_event(events[1])
    assert (await committed(infra.kafka_bootstrap, s.group_id))[TopicPartition(topic, 1)] == 3


async def test_an_undecodable_message_is_dead_lettered_at_once(infra, topics, topic_prefix, producer) -> None:
    topic = topics["in"]
    await (await producer.send(topic, b"{not an event", key=b"k", partition=0))
    calls = 0

    async def handler(event: AnyEvent) -> list[AnyEvent]:
        nonlocal calls
        calls += 1
        return []

    s = settings(infra, topics, topic_prefix)
    runtime = ConsumerRuntime(s, handler, producer)
    await runtime.start()
    dead = await consume(infra.kafka_bootstrap, topics["dlq"], 1, timeout=15)
    await asyncio.sleep(0.3)
    await runtime.stop()
    assert calls == 0
    assert dead[0].value == b"{not an event"
    assert dict(dead[0].headers)["dlq-attempts"] == b"0"
    assert (await committed(infra.kafka_bootstrap, s.group_id))[TopicPartition(topic, 0)] == 1


async def test_transient_failures_are_retried_past_max_attempts(infra, topics, topic_prefix, producer) -> None:
    failures_left = 5  # more than max_attempts=3
    done = asyncio.Event()

    async def handler(event: AnyEvent) -> list[AnyEvent]:
        nonlocal failures_left
        if failures_left:
            failures_left -= 1
            raise ConnectionRefusedError("database restarting")
        done.set()
        return []

    runtime = ConsumerRuntime(settings(infra, topics, topic_prefix), handler, producer)
    await publish(producer, topics["in"], [ingested_event()])
    await runtime.start()
    await asyncio.wait_for(done.wait(), 30)
    await runtime.stop()
    assert runtime.stats.dead_lettered == 0
    assert runtime.stats.failed_attempts == 5


async def test_handler_outputs_are_published(infra, topics, topic_prefix, producer) -> None:
    source = ingested_event("to-fail")

    async def handler(event: AnyEvent) -> list[AnyEvent]:
        return [
            CallFailed(
                event_id=uuid.uuid4(),
                occurred_at=event.occurred_at,
                partner_id=event.partner_id,
                tenant_id=event.tenant_id,
                subtenant_id=event.subtenant_id,
                call_id=event.call_id,
                source="test",
                payload={"stage": "fetch", "code": "http_status", "message": "HTTP 404", "retryable": False},
            )
        ]

    runtime = ConsumerRuntime(settings(infra, topics, topic_prefix), handler, producer)
    await publish(producer, topics["in"], [source])
    await runtime.start()
    out = await consume(infra.kafka_bootstrap, topics["failed"], 1, timeout=15)
    await runtime.stop()
    assert out[0].key == source.key()


async def test_two_members_share_the_partitions(infra, topics, topic_prefix, producer) -> None:
    events = [ingested_event() for _ in range(60)]
    by_member: dict[str, set[str]] = defaultdict(set)

    def handler_for(name: str):  # type: ignore[no-untyped-def]
        async def handler(event: AnyEvent) -> list[AnyEvent]:
            by_member[name].add(event.call_id)
            await asyncio.sleep(0.02)
            return []

        return handler

    s = settings(infra, topics, topic_prefix)
    a = ConsumerRuntime(s, handler_for("a"), producer)
    b = ConsumerRuntime(s, handler_for("b"), producer)
    await a.start()
    await b.start()
    await asyncio.sleep(3)  # both joined
    await publish(producer, topics["in"], events)
    assert await wait_until(lambda: _true(len(by_member["a"] | by_member["b"]) >= 60), timeout=45)
    await a.stop()
    await b.stop()
    assert by_member["a"] and by_member["b"], "one member did all the work"
    assert await committed(infra.kafka_bootstrap, s.group_id) == await end_offsets(infra.kafka_bootstrap, topics["in"])


async def test_an_outage_does_not_use_up_the_attempts_of_the_next_real_error(
    infra, topics, topic_prefix, producer
) -> None:
    # Four transient failures (more than max_attempts=3), then one real error, then success: the
    # outage's failures must not count, so the real error is retried rather than dead-lettered.
    outcomes: list[BaseException | None] = [ConnectionRefusedError("database restarting")] * 4
    outcomes += [ValueError("a bug that a retry gets past"), None]
    done = asyncio.Event()

    async def handler(event: AnyEvent) -> list[AnyEvent]:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        done.set()
        return []

    runtime = ConsumerRuntime(settings(infra, topics, topic_prefix), handler, producer)
    await publish(producer, topics["in"], [ingested_event()])
    await runtime.start()
    await asyncio.wait_for(done.wait(), 30)
    await runtime.stop()
    assert runtime.stats.dead_lettered == 0
    assert runtime.stats.failed_attempts == 5


async def test_a_given_up_call_still_ends_as_failed(infra, topics, topic_prefix, producer) -> None:
    # The fetcher's give-up rule: a dead-lettered call is published as calls.failed (stage fetch),
    # so it reaches a final state and its partner gets a failure callback.
    event = ingested_event("poison")

    async def handler(event: AnyEvent) -> list[AnyEvent]:
        raise ValueError("cannot handle this one")

    s = settings(infra, topics, topic_prefix, on_give_up=fetcher_handlers.gave_up)
    runtime = ConsumerRuntime(s, handler, producer)
    await publish(producer, topics["in"], [event])
    await runtime.start()
    [failed] = await consume(infra.kafka_bootstrap, topic_prefix + TOPIC_FAILED, 1, timeout=30)
    await runtime.stop()
    parsed = parse_event(failed.value)
    assert isinstance(parsed, CallFailed) and parsed.call_id == "poison"
    assert (parsed.payload.stage, parsed.payload.code, parsed.payload.retryable) == ("fetch", "internal_error", True)
    assert "cannot handle" not in parsed.payload.message  # the cause stays in the logs and the DLQ
    assert parsed.payload.ingested == event.payload
    assert runtime.stats.dead_lettered == 1
