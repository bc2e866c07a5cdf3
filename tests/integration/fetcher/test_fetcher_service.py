"""The fetcher as its own process on real Kafka: events in, events out, crashes survived."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from schemas.events import (
    TOPIC_FAILED,
    TOPIC_FETCHED,
    TOPIC_INGESTED,
    TOPIC_PROGRESS,
    CallFailed,
    CallFetched,
    CallStageStarted,
    call_key,
    dump_event,
    parse_event,
)
from services.common.kafka import TopicSpec, ensure_topics, make_producer
from tests.factories import ingested_event
from tests.integration.fetcher.conftest import fetcher_env
from tests.support.infra import Infra, free_port
from tests.support.kafka import consume
from tests.support.processes import service_process, stop
from tests.support.recordings import RecordingHost, recording_host

pytestmark = pytest.mark.slow


@pytest.fixture
async def host() -> AsyncIterator[RecordingHost]:
    async with recording_host("127.0.0.1") as h:
        yield h


@pytest.fixture
async def producer(infra: Infra, topic_prefix: str) -> AsyncIterator[AIOKafkaProducer]:
    await ensure_topics(infra.kafka_bootstrap, [TopicSpec(topic_prefix + TOPIC_INGESTED, 3)])
    p = make_producer(infra.kafka_bootstrap, "test")
    await p.start()
    yield p
    await p.stop()


async def send(producer: AIOKafkaProducer, topic: str, *events) -> None:  # type: ignore[no-untyped-def]
    await asyncio.gather(*[await producer.send(topic, dump_event(e), key=e.key()) for e in events])


async def test_ingested_calls_come_out_fetched_or_failed(
    infra, database_url, topic_prefix, tmp_path, host, producer, recording
) -> None:
    good = ingested_event(call__recording_url=host.add("good.mp3", recording, "audio/mpeg"))
    missing = ingested_event(call__recording_url=host.url("missing.mp3"))
    page = ingested_event(call__recording_url=host.add("page.mp3", b"<html>login</html>", "audio/mpeg"))
    port = free_port()
    with service_process(
        "fetcher", fetcher_env(infra, database_url, topic_prefix, tmp_path, port), port, tmp_path / "fetcher.log"
    ):
        await send(producer, topic_prefix + TOPIC_INGESTED, good, missing, page)
        fetched = await consume(infra.kafka_bootstrap, topic_prefix + TOPIC_FETCHED, 1, timeout=60, linger=1)
        failed = await consume(infra.kafka_bootstrap, topic_prefix + TOPIC_FAILED, 2, timeout=60, linger=1)
        progress = await consume(infra.kafka_bootstrap, topic_prefix + TOPIC_PROGRESS, 3, timeout=60)
    started = [parse_event(r.value) for r in progress]
    assert all(isinstance(e, CallStageStarted) and e.payload.stage == "fetch" for e in started)
    assert {e.call_id for e in started} == {good.call_id, missing.call_id, page.call_id}
    [ok] = [parse_event(r.value) for r in fetched]
    assert isinstance(ok, CallFetched) and ok.call_id == good.call_id
    assert fetched[0].key == good.key()
    assert ok.payload.ingested == good.payload
    codes = {
        e.call_id: e.payload.code for e in map(parse_event, (r.value for r in failed)) if isinstance(e, CallFailed)
    }
    assert codes == {missing.call_id: "http_status", page.call_id: "unsupported_format"}


async def test_a_fetcher_killed_mid_download_completes_the_call_once_after_restart(
    infra, database_url, topic_prefix, tmp_path, host, producer, recording
) -> None:
    host.stall_s = 60
    event = ingested_event(call__recording_url=host.add("stall-mid-call.mp3", recording, "audio/mpeg"))
    port = free_port()
    env = fetcher_env(infra, database_url, topic_prefix, tmp_path, port)
    with service_process("fetcher", env, port, tmp_path / "first.log") as first:
        await send(producer, topic_prefix + TOPIC_INGESTED, event)
        await asyncio.wait_for(host.started.wait(), 60)  # a third of the body is on its way
        await asyncio.sleep(0.5)
        stop(first, signal.SIGKILL)
    partial = list((tmp_path / "blobs" / ".incoming").glob("*.part"))
    assert partial, "the killed fetcher should have left a partial download"
    host.stall_s = 0
    with service_process("fetcher", env, port, tmp_path / "second.log"):
        fetched = await consume(infra.kafka_bootstrap, topic_prefix + TOPIC_FETCHED, 1, timeout=60, linger=3)
    assert [parse_event(r.value).call_id for r in fetched] == [event.call_id]
    assert host.hits["stall-mid-call.mp3"] == 2
    assert not any(p.exists() for p in partial), "the restarted fetcher cleans up the dead one's spool"


async def test_a_poison_message_is_dead_lettered_its_call_fails_and_the_partition_keeps_flowing(
    infra, database_url, topic_prefix, tmp_path, host, producer, recording
) -> None:
    topic = topic_prefix + TOPIC_INGESTED
    after = ingested_event(call__recording_url=host.add("after.mp3", recording, "audio/mpeg"))
    poisoned = call_key(after.partner_id, "poisoned-call").encode()
    # Bytes nothing can decode, for another call of the same partner, on the same partition as `after`.
    await (await producer.send(topic, b"\x00 not an event", key=poisoned, partition=0))
    await (await producer.send(topic, dump_event(after), key=after.key(), partition=0))
    port = free_port()
    with service_process(
        "fetcher", fetcher_env(infra, database_url, topic_prefix, tmp_path, port), port, tmp_path / "fetcher.log"
    ):
        dead = await consume(infra.kafka_bootstrap, f"{topic_prefix}fetcher.dlq", 1, timeout=60)
        fetched = await consume(infra.kafka_bootstrap, topic_prefix + TOPIC_FETCHED, 1, timeout=60)
        failed = await consume(infra.kafka_bootstrap, topic_prefix + TOPIC_FAILED, 1, timeout=60)
    assert dead[0].value == b"\x00 not an event"
    assert dict(dead[0].headers)["dlq-consumer-group"] == f"{topic_prefix}fetcher".encode()
    assert parse_event(fetched[0].value).call_id == after.call_id
    # The undecodable message still ends its call, identified by the message key alone.
    ending = parse_event(failed[0].value)
    assert isinstance(ending, CallFailed)
    assert (ending.partner_id, ending.call_id) == (after.partner_id, "poisoned-call")
    assert (ending.payload.stage, ending.payload.code) == ("fetch", "undecodable_event")
