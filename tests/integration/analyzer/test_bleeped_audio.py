"""The bleeped copy of a recording, with the analyzer's real dependencies (PocketSphinx workers,
PostgreSQL, the filesystem blob store, the built-in engine): a festival call in which the
customer reads out a card number and an email, analysed with redaction and ``redact_audio`` on.

Recognition of spoken digits is imperfect, so the test asserts on what the redactor masked in
the transcript: every masked span's time range (recomputed from the same recognition) carries
the 1 kHz tone on the customer's channel of the decoded copy, and nowhere else does; the rest of
the audio is the original's. Erasure and retention delete the copy, unless another live call
holds the same content.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import numpy as np
import pytest
from pydantic import SecretStr

from schemas.analysis import DEFAULT_CONFIG, ConfigSnapshot, DataProtection, Redaction, Retention
from schemas.events import CallAnalyzed, CallFetched, CallIngested
from services.analyzer import handlers
from services.analyzer.analysis import AnalysisSettings, create_analysis_engine
from services.analyzer.asr import AsrRequest, AsrSettings, Transcriber, create_transcriber
from services.analyzer.bleep import TONE_HZ, bleep_ranges
from services.analyzer.handlers import AnalyzeDeps, handle_fetched
from services.analyzer.redaction import Redactor
from services.analyzer.repository import AnalyzerRepository
from services.common.blobs import FilesystemBlobStore, sha256_of
from services.common.db import create_pool
from tests.factories import fetched_event, ingested_event
from tests.support import audio
from tests.support.erasure import erased_event

pytestmark = pytest.mark.skipif(not audio.tools_available(), reason="festival is not installed")

RATE = 16_000
TURNS = [
    audio.Turn("agent", "thank you, can I take the card number for the payment please"),
    audio.Turn(
        "customer",
        "yes my card number is four five three two one one five one two eight three zero seven two one seven",
    ),
    audio.Turn("agent", "thank you, and an email for the receipt"),
    audio.Turn("customer", "it is john dot smith at acme dot com"),
]


def bleeping(**retention: float) -> ConfigSnapshot:
    config = DEFAULT_CONFIG.model_copy(
        update={
            "data_protection": DataProtection(
                retention=Retention(**retention), redaction=Redaction(enabled=True, redact_audio=True)
            )
        }
    )
    return ConfigSnapshot(config_id=config.config_id(), config=config, source="tenant")


@pytest.fixture(scope="module")
def transcriber() -> Iterator[Transcriber]:
    t = create_transcriber(AsrSettings())
    yield t
    asyncio.run(t.close())


@pytest.fixture(scope="module")
def call() -> audio.RenderedCall:
    return audio.render_conversation(TURNS, stereo=True)


@pytest.fixture
def database_url(isolated_database_url: str) -> str:
    return isolated_database_url


@pytest.fixture
async def deps(database_url: str, tmp_path: Path, transcriber: Transcriber) -> AsyncIterator[AnalyzeDeps]:
    pool = await create_pool(SecretStr(database_url), "analyzer", min_size=1, max_size=4)
    engine = create_analysis_engine(AnalysisSettings())
    yield AnalyzeDeps(
        repo=AnalyzerRepository(pool),
        blobs=FilesystemBlobStore(tmp_path / "blobs"),
        transcriber=transcriber,
        analysis=engine,
        spool_dir=tmp_path / "spool",
    )
    await engine.close()
    await pool.close()


async def fetched(deps: AnalyzeDeps, call: audio.RenderedCall, snapshot: ConfigSnapshot) -> CallFetched:
    data = audio.encode(call, "mp3")
    root = Path(str(deps.blobs.root))  # type: ignore[attr-defined]
    spool = root / f"in-{uuid.uuid4().hex}"
    spool.write_bytes(data)
    digest = sha256_of(spool)
    blob = await deps.blobs.put_file(spool, digest, len(data))
    ingested: CallIngested = ingested_event(partner_id="ptn_bleep")
    ingested = ingested.model_copy(
        update={"payload": ingested.payload.model_copy(update={"analysis_config": snapshot})}
    )
    return fetched_event(
        ingested,
        blob_uri=blob.uri,
        sha256=digest,
        size=len(data),
        duration_s=call.duration_s,
        channels=2,
        sample_rate=audio.SAMPLE_RATE,
    )


def channels_of(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    decoded = audio.decode(data)
    assert decoded.channels == 2 and decoded.sample_rate == RATE
    pcm = np.frombuffer(decoded.pcm, dtype="<i2").astype(np.float64)
    return pcm[0::2], pcm[1::2]


def level(pcm: np.ndarray, start_s: float, end_s: float, hz: float = TONE_HZ) -> float:
    """Amplitude of the ``hz`` component of ``pcm[start_s:end_s]`` (a single-bin DFT)."""
    x = pcm[round(start_s * RATE) : round(end_s * RATE)]
    if len(x) < RATE // 50:
        return 0.0
    n = np.arange(len(x))
    return float(abs(np.sum(x * np.exp(-2j * math.pi * hz * n / RATE))) * 2 / len(x))


def gaps(ranges: list[tuple[float, float]], total: float, margin: float) -> list[tuple[float, float]]:
    """The stretches of ``[0, total]`` at least ``margin`` away from every range."""
    out, pos = [], 0.0
    for start, end in sorted(ranges):
        if start - margin > pos:
            out.append((pos, start - margin))
        pos = max(pos, end + margin)
    if total > pos:
        out.append((pos, total))
    return out


def blob_path(uri: str) -> Path:
    return Path(urlsplit(uri).path)


async def test_every_masked_span_is_bleeped_on_the_customers_channel_and_nothing_else_is(
    deps: AnalyzeDeps, call: audio.RenderedCall, transcriber: Transcriber
) -> None:
    event = await fetched(deps, call, bleeping())
    [analyzed] = await handle_fetched(event, deps)
    assert isinstance(analyzed, CallAnalyzed)
    copy = analyzed.payload.redacted_recording
    assert copy is not None and copy.media_type == "audio/mpeg"
    assert copy.blob_uri != event.payload.blob_uri and copy.sha256 != event.payload.sha256
    data = blob_path(copy.blob_uri).read_bytes()

    # The same recognition, masked the same way: the spans the analyzer bleeped.
    async with deps.blobs.open_local(event.payload.blob_uri) as path:
        asr = await transcriber.transcribe(AsrRequest(str(path), ("agent", "customer"), call.duration_s))
    assert asr.word_times is not None and len(asr.word_times) == len(asr.segments)
    masked, spans = Redactor.from_config(Redaction(enabled=True)).redact_transcript(asr.segments)
    assert [s.text for s in masked] == [s.text for s in analyzed.payload.transcript]
    assert spans, f"the redactor masked nothing in {[s.text for s in asr.segments]}"
    ranges = bleep_ranges(asr.segments, spans, asr.word_times)
    assert ranges and {r.speaker for r in ranges} == {"customer"}
    customer_turns = [t for t in call.turns if t.speaker == "customer"]
    for r in ranges:  # the masked words were said in the customer's turns
        assert any(t.start_s - 0.5 <= r.start and r.end <= t.end_s + 0.5 for t in customer_turns), r

    left, right = channels_of(data)
    original_left, original_right = channels_of(audio.encode(call, "mp3"))
    assert abs(len(right) - len(original_right)) < RATE // 10
    # MP3 frames smear the tone's edges by a few milliseconds: edges are left out.
    for r in ranges:
        assert level(right, r.start + 0.03, r.end - 0.03) > 2000, r
        assert level(left, r.start, r.end) < 100, r
    total = min(len(right), len(original_right)) / RATE
    outside = gaps([(r.start, r.end) for r in ranges], total, 0.05)
    assert outside
    for start, end in outside:
        assert level(right, start, end) < 200, (start, end)
        # The rest is the original (MP3 re-encoding aside): same speech energy.
        if end - start > 0.3:
            original = float(np.sqrt(np.mean(original_right[round(start * RATE) : round(end * RATE)] ** 2)))
            kept = float(np.sqrt(np.mean(right[round(start * RATE) : round(end * RATE)] ** 2)))
            assert abs(kept - original) <= 0.15 * original + 50, (start, end, kept, original)
    assert level(left, 0, total) < 100
    assert float(np.sqrt(np.mean(left**2))) == pytest.approx(float(np.sqrt(np.mean(original_left**2))), rel=0.1)


async def test_erasure_deletes_the_copy_once_no_other_call_holds_it(
    deps: AnalyzeDeps, call: audio.RenderedCall, database_url: str
) -> None:
    # Two calls with the same recording get the same copy (content addressed).
    first = await fetched(deps, call, bleeping())
    second = await fetched(deps, call, bleeping())
    [a] = await handle_fetched(first, deps)
    [b] = await handle_fetched(second, deps)
    assert isinstance(a, CallAnalyzed) and isinstance(b, CallAnalyzed)
    assert a.payload.redacted_recording is not None and b.payload.redacted_recording is not None
    assert a.payload.redacted_recording.sha256 == b.payload.redacted_recording.sha256
    copy = blob_path(a.payload.redacted_recording.blob_uri)
    assert copy.is_file()

    [confirmed] = await handle_fetched(erased_event(first), deps)
    assert confirmed.payload.removed == {"analyses": 1, "blobs": 0}
    assert copy.is_file(), "the other call still holds the copy"
    [confirmed] = await handle_fetched(erased_event(second), deps)
    assert confirmed.payload.removed == {"analyses": 1, "blobs": 1}
    assert not copy.exists()
    assert blob_path(first.payload.blob_uri).is_file(), "the original is the fetcher's to delete"


async def test_the_copy_is_deleted_at_the_recordings_retention_expiry(
    deps: AnalyzeDeps, call: audio.RenderedCall, database_url: str
) -> None:
    event = await fetched(deps, call, bleeping(recording_days=1, results_days=3))
    [analyzed] = await handle_fetched(event, deps)
    assert isinstance(analyzed, CallAnalyzed) and analyzed.payload.redacted_recording is not None
    copy = blob_path(analyzed.payload.redacted_recording.blob_uri)
    received = event.payload.ingested.received_at
    assert await handlers.purge(received + timedelta(hours=20), deps) == {
        "analyses": 0,
        "transcripts": 0,
        "recordings": 0,
        "blobs": 0,
    }
    assert copy.is_file()
    assert await handlers.purge(received + timedelta(days=2), deps) == {
        "analyses": 0,
        "transcripts": 0,
        "recordings": 1,
        "blobs": 1,
    }
    assert not copy.exists()
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT * FROM analyzer.analyses WHERE call_id = $1", event.call_id)
    finally:
        await conn.close()
    assert row is not None and row["redacted_sha256"] is None
    stored = json.loads(row["event"])
    assert "redacted_recording" not in stored["payload"] and stored["payload"]["intent"]
    assert await handlers.purge(received + timedelta(days=2), deps) == {
        "analyses": 0,
        "transcripts": 0,
        "recordings": 0,
        "blobs": 0,
    }


async def test_a_copy_rendered_for_a_call_erased_meanwhile_is_deleted_not_recorded(
    deps: AnalyzeDeps, call: audio.RenderedCall, tmp_path: Path
) -> None:
    event = await fetched(deps, call, bleeping())
    await handle_fetched(erased_event(event), deps)
    spool = tmp_path / "copy.mp3"
    spool.write_bytes(b"a bleeped copy")
    digest = sha256_of(spool)
    stored = await deps.blobs.put_file(spool, digest, 14)
    recorded = await deps.repo.record(
        event.partner_id,
        event.call_id,
        {"payload": {}},
        transcript_expires_at=None,
        results_expires_at=None,
        redacted_sha256=digest,
        blobs=deps.blobs,
    )
    assert recorded is False
    assert not blob_path(stored.uri).exists()
