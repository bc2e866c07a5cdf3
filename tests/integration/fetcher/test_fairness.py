"""One partner's unreachable recordings must not delay another partner's calls (issue 10, defect
10): the fetcher gives each partner at most a share of its download slots, holds more calls than
it has slots (so other partners' calls behind a busy one are reached), and a call waiting to retry
a download holds no slot at all."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.events import TOPIC_FAILED, TOPIC_FETCHED, TOPIC_INGESTED, CallFailed, CallFetched, dump_event, parse_event
from services.common.kafka import TopicSpec, ensure_topics, make_producer
from tests.factories import ingested_event
from tests.integration.fetcher.conftest import fetcher_env
from tests.support.infra import Infra, free_port
from tests.support.processes import service_process
from tests.support.recordings import RecordingHost, recording_host

pytestmark = pytest.mark.slow

FLOODED = 12


@pytest.fixture
async def host() -> AsyncIterator[RecordingHost]:
    async with recording_host("127.0.0.1") as h:
        yield h


async def arrivals(bootstrap: str, topics: list[str], wanted: int, timeout: float) -> list[tuple[float, object]]:
    """(arrival time, event) of the first ``wanted`` events on ``topics``, in arrival order."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    seen: list[tuple[float, object]] = []
    try:
        deadline = time.monotonic() + timeout
        while len(seen) < wanted and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen += [(time.monotonic(), parse_event(r.value)) for r in records]
    finally:
        await consumer.stop()
    return seen


async def test_a_partner_flooding_unreachable_recordings_does_not_hold_up_another(
    infra: Infra, database_url: str, topic_prefix: str, tmp_path: Path, host: RecordingHost, recording: bytes
) -> None:
    topic = topic_prefix + TOPIC_INGESTED
    # One partition: the other partner's calls are queued behind the flood, in order.
    await ensure_topics(infra.kafka_bootstrap, [TopicSpec(topic, 1)])
    flood = []
    for i in range(FLOODED):
        name = f"flood-{i}.mp3"
        host.fail_first[name] = [503] * 10  # Retry-After: 1, every time
        flood.append(ingested_event(partner_id="ptn_flood", call__recording_url=host.url(name)))
    others = [
        ingested_event(partner_id="ptn_other", call__recording_url=host.add(f"ok-{i}.mp3", recording, "audio/mpeg"))
        for i in range(3)
    ]
    producer: AIOKafkaProducer = make_producer(infra.kafka_bootstrap, "fairness-test")
    await producer.start()
    try:
        for event in [*flood, *others]:
            await producer.send_and_wait(topic, dump_event(event), key=event.key())
    finally:
        await producer.stop()
    port = free_port()
    env = {
        **fetcher_env(infra, database_url, topic_prefix, tmp_path, port),
        "KAFKA_TOPIC_PARTITIONS": "1",
        "FETCHER_CONCURRENCY": "4",
        "FETCHER_PER_PARTNER_CONCURRENCY": "2",
        "FETCHER_DOWNLOAD_ATTEMPTS": "5",  # four waits of at least a second each
        "FETCHER_BACKOFF_BASE_S": "0.2",
    }
    with service_process("fetcher", env, port, tmp_path / "fetcher.log"):
        seen = await arrivals(
            infra.kafka_bootstrap,
            [topic_prefix + TOPIC_FETCHED, topic_prefix + TOPIC_FAILED],
            FLOODED + len(others),
            timeout=120,
        )
    fetched = [(t, e) for t, e in seen if isinstance(e, CallFetched)]
    failed = [(t, e) for t, e in seen if isinstance(e, CallFailed)]
    assert {e.call_id for _, e in fetched} == {e.call_id for e in others}
    assert {e.call_id for _, e in failed} == {e.call_id for e in flood}
    assert all(e.payload.code == "http_status" for _, e in failed)
    # The other partner's calls were done before the first flooded call had used up its attempts.
    assert max(t for t, _ in fetched) < min(t for t, _ in failed), [type(e).__name__ for _, e in seen]
    # Every flooded call waited for its retries at the same time, not a slot's worth at a time:
    # they all failed within a few seconds of each other.
    spread = max(t for t, _ in failed) - min(t for t, _ in failed)
    assert spread < 4 * 1.0, spread
