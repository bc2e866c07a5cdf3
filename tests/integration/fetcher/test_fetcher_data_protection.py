"""Erasure and retention in the fetcher, with its real dependencies (PostgreSQL, blob store, a
recording host on loopback): an erased call's row and recording are gone, a call erased before or
during its download leaves nothing, and expired recordings are purged, a shared blob kept for as
long as another call may still use it."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

import asyncpg
import pytest

from schemas.events import (
    TOPIC_ERASED,
    TOPIC_ERASURE_CONFIRMED,
    TOPIC_FETCHED,
    TOPIC_INGESTED,
    CallErasureConfirmed,
    CallFetched,
    dump_event,
    parse_event,
)
from services.common.blobs import FilesystemBlobStore
from services.common.kafka import TopicSpec, ensure_topics, make_producer
from services.fetcher import handlers
from services.fetcher.handlers import handle_ingested
from tests.factories import ingested_event
from tests.integration.fetcher.conftest import fetcher_env
from tests.integration.notifier.conftest import eventually
from tests.support import audio
from tests.support.erasure import erased_event, rows_of_call, with_retention
from tests.support.infra import free_port
from tests.support.kafka import consume
from tests.support.processes import service_process
from tests.support.recordings import RecordingHost


@pytest.fixture
def database_url(isolated_database_url: str) -> str:
    """A database of the test's own: a purge covers every call of the schema, other tests' too."""
    return isolated_database_url


async def test_an_erasure_removes_the_row_and_the_blob_once_no_other_call_holds_it(
    fetch_env, database_url: str, host: RecordingHost, speech
) -> None:
    deps, blobs, _ = fetch_env
    d = deps()
    url = host.add("shared.mp3", audio.encode(speech, "mp3"))
    first = ingested_event(call__recording_url=url, partner_id="ptn_erase_a")
    other = ingested_event(call__recording_url=url, partner_id="ptn_erase_b")  # same content, other partner
    [fetched] = await handle_ingested(first, d)
    [also] = await handle_ingested(other, d)
    assert isinstance(fetched, CallFetched) and isinstance(also, CallFetched)
    sha = fetched.payload.sha256
    assert also.payload.sha256 == sha

    erasure = erased_event(first)
    [confirmed] = await handle_ingested(erasure, d)
    assert isinstance(confirmed, CallErasureConfirmed)
    assert (confirmed.payload.service, confirmed.payload.erasure_id) == ("fetcher", erasure.payload.erasure_id)
    assert confirmed.payload.removed == {"fetches": 1, "blobs": 0}
    assert await rows_of_call(database_url, "fetcher", first.partner_id, first.call_id) == {}
    assert await blobs.exists(sha), "the other call still holds the recording"

    other_erasure = erased_event(other)
    [confirmed_other] = await handle_ingested(other_erasure, d)
    assert confirmed_other.payload.removed == {"fetches": 1, "blobs": 1}
    assert not await blobs.exists(sha)
    assert await rows_of_call(database_url, "fetcher", other.partner_id, other.call_id) == {}

    # Redelivered: nothing more to remove, the same confirmation event.
    [again] = await handle_ingested(other_erasure, d)
    assert again.event_id == confirmed_other.event_id
    assert again.payload.removed == {"fetches": 0, "blobs": 0}

    # A late redelivery of the ingested event downloads nothing and stores nothing.
    hits = host.hits["shared.mp3"]
    assert await handle_ingested(other, d) == []
    assert host.hits["shared.mp3"] == hits
    assert not await blobs.exists(sha)
    assert await rows_of_call(database_url, "fetcher", other.partner_id, other.call_id) == {}


async def test_a_call_erased_before_its_fetch_is_never_downloaded(
    fetch_env, database_url: str, host: RecordingHost, speech
) -> None:
    deps, blobs, _ = fetch_env
    d = deps()
    data = audio.encode(speech, "mp3")
    url = host.add("early.mp3", data)
    event = ingested_event(call__recording_url=url, partner_id="ptn_erase_early")
    [confirmed] = await handle_ingested(erased_event(event), d)
    assert confirmed.payload.removed == {"fetches": 0, "blobs": 0}
    assert await handle_ingested(event, d) == []
    assert host.hits["early.mp3"] == 0
    assert not await blobs.exists(hashlib.sha256(data).hexdigest())
    assert await rows_of_call(database_url, "fetcher", event.partner_id, event.call_id) == {}


async def test_a_call_erased_during_its_download_stores_and_publishes_nothing(
    fetch_env, database_url: str, host: RecordingHost, speech
) -> None:
    deps, blobs, _ = fetch_env
    d = deps()
    data = audio.encode(speech, "wav")  # content no other test stores
    url = host.add("inflight.wav", data)
    host.fail_first["inflight.wav"] = [503]  # Retry-After: 1 -- the erasure lands in that second
    event = ingested_event(call__recording_url=url, partner_id="ptn_erase_inflight")
    fetching = asyncio.create_task(handle_ingested(event, d))
    while host.hits["inflight.wav"] == 0:
        await asyncio.sleep(0.02)
    [confirmed] = await handle_ingested(erased_event(event), d)
    assert confirmed.payload.removed == {"fetches": 0, "blobs": 0}
    assert await fetching == []
    assert host.hits["inflight.wav"] == 2, "the download went on, but nothing of it was kept"
    assert await rows_of_call(database_url, "fetcher", event.partner_id, event.call_id) == {}
    assert not await blobs.exists(hashlib.sha256(data).hexdigest()), "the blob just stored was removed"


async def test_expired_recordings_are_purged_once_and_a_shared_blob_waits_for_the_last_holder(
    fetch_env, database_url: str, host: RecordingHost, speech
) -> None:
    deps, blobs, _ = fetch_env
    d = deps()
    url = host.add("retained.m4a", audio.encode(speech, "m4a"))
    short = with_retention(ingested_event(call__recording_url=url, partner_id="ptn_purge"), recording_days=1)
    long = with_retention(ingested_event(call__recording_url=url, partner_id="ptn_purge"), recording_days=30)
    [fetched] = await handle_ingested(short, d)
    await handle_ingested(long, d)
    sha = fetched.payload.sha256
    received = short.payload.received_at
    row = await d.repo.find(short.partner_id, short.call_id)
    assert row is not None and row.purged_at is None

    # Before the expiry: nothing.
    assert await handlers.purge(received + timedelta(hours=23), d) == {"recordings": 0, "blobs": 0}
    # After the short retention: the row is marked, the blob stays for the other call.
    after_short = received + timedelta(days=2)
    assert await handlers.purge(after_short, d) == {"recordings": 1, "blobs": 0}
    assert await blobs.exists(sha)
    purged = await d.repo.find(short.partner_id, short.call_id)
    assert purged is not None and purged.purged_at == after_short
    assert await handlers.purge(after_short, d) == {"recordings": 0, "blobs": 0}  # idempotent

    # A redelivered ingested event of the purged call: the same answer, no second download.
    hits = host.hits["retained.m4a"]
    [again] = await handle_ingested(short, d)
    assert isinstance(again, CallFetched) and again.event_id == fetched.event_id
    assert host.hits["retained.m4a"] == hits

    # After the long retention the last holder lets go: the blob is deleted.
    after_long = received + timedelta(days=31)
    assert await handlers.purge(after_long, d) == {"recordings": 1, "blobs": 1}
    assert not await blobs.exists(sha)
    assert await handlers.purge(after_long, d) == {"recordings": 0, "blobs": 0}


async def test_the_recording_expiry_follows_the_snapshot_or_the_defaults(
    fetch_env, database_url: str, host: RecordingHost, speech
) -> None:
    deps, _, _ = fetch_env
    d = deps()
    url = host.add("expiry.mp3", audio.encode(speech, "mp3"))
    kept = with_retention(ingested_event(call__recording_url=url, partner_id="ptn_expiry"), recording_days=None)
    plain = ingested_event(call__recording_url=url, partner_id="ptn_expiry")
    assert plain.payload.analysis_config is None  # an event older than the snapshot: the defaults
    await handle_ingested(kept, d)
    await handle_ingested(plain, d)
    conn = await asyncpg.connect(database_url)
    try:
        expiries = {
            r["call_id"]: r["recording_expires_at"]
            for r in await conn.fetch(
                "SELECT call_id, recording_expires_at FROM fetcher.fetches WHERE partner_id = 'ptn_expiry'"
            )
        }
    finally:
        await conn.close()
    assert expiries[kept.call_id] is None
    expected = plain.payload.received_at + timedelta(days=30)
    assert expiries[plain.call_id] == expected


@pytest.mark.slow
async def test_the_fetcher_process_purges_on_its_schedule_and_confirms_an_erasure_on_kafka(
    infra, database_url: str, topic_prefix: str, tmp_path, host: RecordingHost, recording: bytes
) -> None:
    event = with_retention(
        ingested_event(call__recording_url=host.add("kafka.mp3", recording, "audio/mpeg"), partner_id="ptn_fx_kafka"),
        recording_days=0.00001,  # under a second
    )
    await ensure_topics(infra.kafka_bootstrap, [TopicSpec(topic_prefix + t, 3) for t in (TOPIC_INGESTED, TOPIC_ERASED)])
    producer = make_producer(infra.kafka_bootstrap, "test")
    await producer.start()
    port = free_port()
    env = {**fetcher_env(infra, database_url, topic_prefix, tmp_path, port), "RETENTION_PURGE_INTERVAL_S": "0.3"}
    conn = await asyncpg.connect(database_url)
    try:
        with service_process("fetcher", env, port, tmp_path / "fetcher.log"):
            await producer.send_and_wait(topic_prefix + TOPIC_INGESTED, dump_event(event), key=event.key())
            [record] = await consume(infra.kafka_bootstrap, topic_prefix + TOPIC_FETCHED, 1, timeout=60)
            fetched = parse_event(record.value)
            assert isinstance(fetched, CallFetched)

            async def purged() -> bool | None:
                at = await conn.fetchval(
                    "SELECT recording_purged_at FROM fetcher.fetches WHERE call_id = $1", event.call_id
                )
                return True if at is not None else None

            await eventually(purged, 30)
            assert not await FilesystemBlobStore(tmp_path / "blobs").exists(fetched.payload.sha256)

            erasure = erased_event(event)
            await producer.send_and_wait(topic_prefix + TOPIC_ERASED, dump_event(erasure), key=erasure.key())
            [confirmed] = await consume(infra.kafka_bootstrap, topic_prefix + TOPIC_ERASURE_CONFIRMED, 1, timeout=60)
        done = parse_event(confirmed.value)
        assert isinstance(done, CallErasureConfirmed) and confirmed.key == event.key()
        assert (done.payload.service, done.payload.erasure_id) == ("fetcher", erasure.payload.erasure_id)
        assert done.payload.removed == {"fetches": 1, "blobs": 0}  # the purge had removed the blob
        assert await rows_of_call(database_url, "fetcher", event.partner_id, event.call_id) == {}
    finally:
        await conn.close()
        await producer.stop()
