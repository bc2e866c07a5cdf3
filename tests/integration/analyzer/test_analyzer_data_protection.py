"""Erasure and retention in the analyzer, with its real dependencies (PostgreSQL, blob store,
PocketSphinx workers, the built-in engine): an erased call's analysis is gone, a call erased
before or during its analysis is neither stored nor published, and transcripts and results are
purged at their expiries."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr

from schemas.events import (
    TOPIC_ERASED,
    TOPIC_ERASURE_CONFIRMED,
    CallAnalyzed,
    CallErasureConfirmed,
    CallFetched,
    dump_event,
    parse_event,
)
from services.analyzer import handlers
from services.analyzer.analysis import AnalysisSettings, create_analysis_engine
from services.analyzer.asr import AsrSettings, Transcriber, create_transcriber
from services.analyzer.handlers import AnalyzeDeps, handle_fetched
from services.analyzer.repository import AnalyzerRepository
from services.common.blobs import FilesystemBlobStore, sha256_of
from services.common.db import create_pool
from services.common.kafka import TopicSpec, ensure_topics, make_producer
from tests.factories import fetched_event, ingested_event
from tests.integration.notifier.conftest import eventually
from tests.support import audio
from tests.support.erasure import erased_event, rows_of_call, with_retention
from tests.support.infra import Infra, free_port
from tests.support.kafka import consume
from tests.support.processes import service_process

pytestmark = pytest.mark.skipif(not audio.tools_available(), reason="festival is not installed")


class GatedTranscriber:
    """The real transcriber, counting requests; while ``gate`` is clear a request waits for it
    (so an erasure can land while a call is being recognised)."""

    def __init__(self, inner: Transcriber) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls = 0
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def transcribe(self, request):  # type: ignore[no-untyped-def]
        self.calls += 1
        self.waiting.set()
        await self.gate.wait()
        return await self.inner.transcribe(request)

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture(scope="module")
def inner() -> Iterator[Transcriber]:
    t = create_transcriber(AsrSettings())
    yield t
    asyncio.run(t.close())


@pytest.fixture
def database_url(isolated_database_url: str) -> str:
    """A database of the test's own: a purge covers every call of the schema."""
    return isolated_database_url


@pytest.fixture
async def deps(database_url: str, tmp_path: Path, inner: Transcriber) -> AsyncIterator[AnalyzeDeps]:
    pool = await create_pool(SecretStr(database_url), "analyzer", min_size=1, max_size=4)
    engine = create_analysis_engine(AnalysisSettings())
    transcriber = GatedTranscriber(inner)
    transcriber.gate.set()
    yield AnalyzeDeps(
        repo=AnalyzerRepository(pool),
        blobs=FilesystemBlobStore(tmp_path / "blobs"),
        transcriber=transcriber,  # type: ignore[arg-type]
        analysis=engine,
    )
    await engine.close()
    await pool.close()


@pytest.fixture(scope="module")
def recording() -> audio.RenderedCall:
    return audio.render_conversation(audio.SCRIPTS["interested"][:2], stereo=True)


async def fetched(deps: AnalyzeDeps, call: audio.RenderedCall, ingested: Any = None) -> CallFetched:
    data = audio.encode(call, "mp3")
    spool = Path(str(deps.blobs.root)) / f"in-{uuid.uuid4().hex}"  # type: ignore[attr-defined]
    spool.write_bytes(data)
    digest = sha256_of(spool)
    blob = await deps.blobs.put_file(spool, digest, len(data))
    return fetched_event(
        ingested if ingested is not None else ingested_event(partner_id="ptn_analyzer_dp"),
        blob_uri=blob.uri,
        sha256=digest,
        size=len(data),
        duration_s=call.duration_s,
        channels=2,
        sample_rate=audio.SAMPLE_RATE,
    )


def transcriber_of(deps: AnalyzeDeps) -> GatedTranscriber:
    assert isinstance(deps.transcriber, GatedTranscriber)
    return deps.transcriber


def purged(analyses: int, transcripts: int) -> dict[str, int]:
    """What a purge reports removing (no bleeped copies here: redaction is off)."""
    return {"analyses": analyses, "transcripts": transcripts, "recordings": 0, "blobs": 0}


async def stored_row(database_url: str, call_id: str) -> asyncpg.Record | None:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchrow("SELECT * FROM analyzer.analyses WHERE call_id = $1", call_id)
    finally:
        await conn.close()


async def test_an_erasure_deletes_the_analysis_and_a_redelivered_fetch_brings_nothing_back(
    deps: AnalyzeDeps, database_url: str, recording: audio.RenderedCall
) -> None:
    event = await fetched(deps, recording)
    [analyzed] = await handle_fetched(event, deps)
    assert isinstance(analyzed, CallAnalyzed)
    assert await rows_of_call(database_url, "analyzer", event.partner_id, event.call_id) == {"analyses": 1}

    erasure = erased_event(event)
    [confirmed] = await handle_fetched(erasure, deps)
    assert isinstance(confirmed, CallErasureConfirmed)
    assert (confirmed.payload.service, confirmed.payload.removed) == ("analyzer", {"analyses": 1, "blobs": 0})
    assert confirmed.payload.erasure_id == erasure.payload.erasure_id
    assert await rows_of_call(database_url, "analyzer", event.partner_id, event.call_id) == {}

    [again] = await handle_fetched(erasure, deps)
    assert again.event_id == confirmed.event_id and again.payload.removed == {"analyses": 0, "blobs": 0}

    calls = transcriber_of(deps).calls
    assert await handle_fetched(event, deps) == []
    assert transcriber_of(deps).calls == calls, "an erased call is never transcribed again"
    assert await rows_of_call(database_url, "analyzer", event.partner_id, event.call_id) == {}


async def test_a_call_erased_before_its_analysis_is_not_transcribed(
    deps: AnalyzeDeps, database_url: str, recording: audio.RenderedCall
) -> None:
    event = await fetched(deps, recording)
    [confirmed] = await handle_fetched(erased_event(event), deps)
    assert confirmed.payload.removed == {"analyses": 0, "blobs": 0}
    assert await handle_fetched(event, deps) == []
    assert transcriber_of(deps).calls == 0
    assert await rows_of_call(database_url, "analyzer", event.partner_id, event.call_id) == {}


async def test_a_call_erased_during_its_analysis_is_neither_stored_nor_published(
    deps: AnalyzeDeps, database_url: str, recording: audio.RenderedCall
) -> None:
    event = await fetched(deps, recording)
    gated = transcriber_of(deps)
    gated.gate.clear()
    analysing = asyncio.create_task(handle_fetched(event, deps))
    await asyncio.wait_for(gated.waiting.wait(), 30)
    await handle_fetched(erased_event(event), deps)
    gated.gate.set()
    assert await asyncio.wait_for(analysing, 120) == []
    assert gated.calls == 1
    assert await rows_of_call(database_url, "analyzer", event.partner_id, event.call_id) == {}


async def test_transcripts_then_results_are_purged_at_their_expiries(
    deps: AnalyzeDeps, database_url: str, recording: audio.RenderedCall
) -> None:
    ingested = with_retention(
        ingested_event(partner_id="ptn_analyzer_dp"), recording_days=1, transcript_days=1, results_days=3
    )
    event = await fetched(deps, recording, ingested)
    [analyzed] = await handle_fetched(event, deps)
    assert isinstance(analyzed, CallAnalyzed) and analyzed.payload.transcript
    received = ingested.payload.received_at
    row = await stored_row(database_url, event.call_id)
    assert row is not None
    assert row["transcript_expires_at"] == received + timedelta(days=1)
    assert row["results_expires_at"] == received + timedelta(days=3)

    assert await handlers.purge(received + timedelta(hours=20), deps) == purged(0, 0)
    at = received + timedelta(days=2)
    assert await handlers.purge(at, deps) == purged(0, 1)
    row = await stored_row(database_url, event.call_id)
    assert row is not None and row["transcript_purged_at"] == at
    stored = json.loads(row["event"])  # a plain connection: jsonb as text
    assert "transcript" not in stored["payload"]
    assert stored["payload"]["intent"] == analyzed.payload.intent  # the results stay
    assert await handlers.purge(at, deps) == purged(0, 0)  # idempotent

    # A redelivered fetched event: nothing to republish, nothing transcribed again.
    calls = transcriber_of(deps).calls
    assert await handle_fetched(event, deps) == []
    assert transcriber_of(deps).calls == calls

    assert await handlers.purge(received + timedelta(days=4), deps) == purged(1, 0)
    assert await stored_row(database_url, event.call_id) is None
    assert await handlers.purge(received + timedelta(days=4), deps) == purged(0, 0)


async def test_a_call_whose_results_retention_already_ended_is_not_analysed(
    deps: AnalyzeDeps, database_url: str, recording: audio.RenderedCall
) -> None:
    old = with_retention(ingested_event(partner_id="ptn_analyzer_dp"), results_days=2)
    old = old.model_copy(
        update={"payload": old.payload.model_copy(update={"received_at": datetime.now(UTC) - timedelta(days=3)})}
    )
    event = await fetched(deps, recording, old)
    assert await handle_fetched(event, deps) == []
    assert transcriber_of(deps).calls == 0
    assert await stored_row(database_url, event.call_id) is None


@pytest.mark.slow
async def test_the_analyzer_process_confirms_an_erasure_on_kafka_and_purges_on_its_schedule(
    infra: Infra, database_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    # A stored analysis whose transcript expired at once (as a previous run left it).
    ingested = with_retention(ingested_event(partner_id="ptn_analyzer_svc"), transcript_days=0.00001)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO analyzer.analyses (partner_id, call_id, event, transcript_expires_at, results_expires_at)"
            " VALUES ($1, $2, $3, $4, NULL)",
            ingested.partner_id,
            ingested.call_id,
            json.dumps({"payload": {"transcript": [{"text": "spoken words"}], "intent": "INTERESTED"}}),
            ingested.payload.received_at + timedelta(days=0.00001),
        )
        await ensure_topics(infra.kafka_bootstrap, [TopicSpec(topic_prefix + TOPIC_ERASED, 3)])
        producer = make_producer(infra.kafka_bootstrap, "test")
        await producer.start()
        port = free_port()
        env = {
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
            "KAFKA_TOPIC_PREFIX": topic_prefix,
            "KAFKA_TOPIC_PARTITIONS": "3",
            "BLOB_ROOT": str(tmp_path / "blobs"),
            "ANALYZER_PORT": str(port),
            "RETENTION_PURGE_INTERVAL_S": "0.3",
        }
        try:
            with service_process("analyzer", env, port, tmp_path / "analyzer.log"):

                async def cut() -> bool | None:
                    event = await conn.fetchval(
                        "SELECT event FROM analyzer.analyses WHERE call_id = $1 AND transcript_purged_at IS NOT NULL",
                        ingested.call_id,
                    )
                    return True if event is not None and "transcript" not in json.loads(event)["payload"] else None

                await eventually(cut, 60)
                erasure = erased_event(ingested)
                await producer.send_and_wait(topic_prefix + TOPIC_ERASED, dump_event(erasure), key=erasure.key())
                [record] = await consume(infra.kafka_bootstrap, topic_prefix + TOPIC_ERASURE_CONFIRMED, 1, timeout=60)
        finally:
            await producer.stop()
        done = parse_event(record.value)
        assert isinstance(done, CallErasureConfirmed)
        assert (done.payload.service, done.payload.removed) == ("analyzer", {"analyses": 1, "blobs": 0})
        assert await rows_of_call(database_url, "analyzer", ingested.partner_id, ingested.call_id) == {}
    finally:
        await conn.close()
