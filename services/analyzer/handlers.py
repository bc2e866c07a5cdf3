"""The analyzer's work as plain async functions: transcribe a fetched call, analyse it against
its tenant's configuration, and say what came of it.

``handle_fetched`` takes its dependencies as arguments and returns the events to publish; the
consumer runtime does the Kafka side. It is idempotent: a redelivered event is answered with the
analysis already published (same event id), without transcribing again. An engine endpoint
that does not answer (``asr_unavailable``, ``llm_unavailable``) raises ``DependencyUnavailable``:
the call waits for it, retried like a database outage, rather than failing.

Redaction with ``redact_audio``: besides the masked transcript, a copy of the recording with the
masked spans bleeped (``bleep``) is stored in the blob store and named on the event
(``redacted_recording``), for the dashboard to serve instead of the original; the analyzer owns
it (deleted on erasure and at the recording's retention expiry, ``repository``).

Erasure (``calls.erased.v1``, consumed by the same group): the call's analysis (and its bleeped
copy) is deleted and a tombstone written under the call's lock; an erased call is not transcribed, and an analysis that
finishes after its call was erased is neither stored nor published (``services.common.erasure``).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import av

from schemas.analysis import DEFAULT_CONFIG, ChannelMap, ConfigSnapshot, EngineInfo, Speaker, TranscriptSegment
from schemas.events import (
    AnyEvent,
    AudioStats,
    CallAnalyzed,
    CallAnalyzedPayload,
    CallErased,
    CallFailed,
    CallFailedPayload,
    CallFetched,
    RedactedRecording,
    follow_up,
)
from services.analyzer.analysis import AnalysisEngine, AnalysisError, AnalysisInput
from services.analyzer.asr import AsrError, AsrRequest, AsrResult, Transcriber
from services.analyzer.bleep import bleep_ranges, render_bleeped
from services.analyzer.errors import AnalyzeFailed
from services.analyzer.redaction import Redactor, SegmentSpan
from services.analyzer.repository import AnalyzerRepository
from services.analyzer.speakers import attribute
from services.common import backoff, metrics, tracing
from services.common.backoff import Backoff
from services.common.blobs import BlobError, BlobStore
from services.common.erasure import confirmation, retention_expiries
from services.common.errors import DependencyUnavailable
from services.common.kafka import is_permanent
from services.common.progress import Announce, announce_stage

log = logging.getLogger(__name__)

SOURCE = "analyzer"
_EVENT_NAMESPACE = uuid.UUID("0c8e3d2a-5b71-4f0e-9d64-7a1e2b3c4d5f")
#: Waits before recognising a call again after its worker broke.
_ASR_RETRY = Backoff(0.5, 5.0)
# ASR failures that another attempt may fix (a crashed worker, an overloaded endpoint).
_RETRY_ASR = {"asr_failed"}
_RETRYABLE = {"asr_timeout", "asr_failed"}
# The configured engine or endpoint is not answering (down, overloaded, refusing our key): the
# call waits for it, retried by the consumer runtime like a database outage, instead of failing.
_OUTAGE = {"asr_unavailable", "llm_unavailable"}


@dataclass(frozen=True)
class AnalyzeDeps:
    repo: AnalyzerRepository
    blobs: BlobStore
    transcriber: Transcriber
    analysis: AnalysisEngine
    asr_attempts: int = 2
    announce: Announce | None = None  # tells the status API the analysis started
    spool_dir: Path | None = None  # where bleeped copies are written before the blob store takes them


def event_id(event: CallFetched, kind: str) -> uuid.UUID:
    return uuid.uuid5(_EVENT_NAMESPACE, f"{event.partner_id}/{event.call_id}/{kind}")


def effective_config(event: CallFetched) -> ConfigSnapshot:
    """The configuration the gateway snapshotted at ingestion (defaults for older events)."""
    snapshot = event.payload.ingested.analysis_config
    if snapshot is not None:
        return snapshot
    return ConfigSnapshot(config_id=DEFAULT_CONFIG.config_id(), config=DEFAULT_CONFIG, source="default")


def channel_speakers(event: CallFetched, snapshot: ConfigSnapshot) -> tuple[Speaker, ...]:
    """Stereo: one party per channel, as the tenant maps them. Anything else: one unknown voice."""
    if event.payload.channels == 2:
        return (snapshot.config.channels.left, snapshot.config.channels.right)
    return ("unknown",)


async def handle_fetched(event: AnyEvent, deps: AnalyzeDeps) -> list[AnyEvent]:
    """Analyse one fetched call; returns ``calls.analyzed`` or ``calls.failed`` (stage analyze),
    nothing for an erased call or one whose results outlived their retention. An erasure is
    confirmed with ``calls.erasure_confirmed``."""
    if isinstance(event, CallErased):
        return await handle_erased(event, deps)
    if not isinstance(event, CallFetched):
        return []
    context = {"partner_id": event.partner_id, "call_id": event.call_id}
    if await deps.repo.is_erased(event.partner_id, event.call_id):
        log.info("erased call skipped", extra=context)
        return []
    published = await deps.repo.find(event.partner_id, event.call_id)
    if published is not None:
        # A purged transcript: the event published then can no longer be told again.
        return [] if published.transcript_purged else [CallAnalyzed.model_validate(published.event)]
    expiries = retention_expiries(event.payload.ingested)
    results_expire = expiries["results"]
    if results_expire is not None and results_expire <= datetime.now(UTC):
        # Its results were purged (or would be at once): analysing again would bring them back.
        log.info("call past its results retention skipped", extra=context)
        return []
    await announce_stage(
        event, "analyze", deps.announce, event_id=event_id(event, "call.stage_started/analyze"), source=SOURCE
    )
    try:
        analyzed = await analyze_call(event, deps)
    except AnalyzeFailed as failure:
        log.info("call not analysed", extra={**context, "code": failure.code})
        if await deps.repo.is_erased(event.partner_id, event.call_id):
            return []
        return [failed_event(event, failure)]
    copy = analyzed.payload.redacted_recording
    stored = await deps.repo.record(
        event.partner_id,
        event.call_id,
        analyzed.model_dump(mode="json"),
        transcript_expires_at=expiries["transcript"],
        results_expires_at=results_expire,
        redacted_sha256=copy.sha256 if copy is not None else None,
        recording_expires_at=expiries["recording"],
        blobs=deps.blobs,
    )
    if not stored:
        log.info("call erased while it was analysed; nothing kept", extra=context)
        return []
    return [analyzed]


async def handle_erased(event: CallErased, deps: AnalyzeDeps) -> list[AnyEvent]:
    """Delete the call's analysis and confirm; a redelivered erasure removes nothing more and
    confirms again (same event id)."""
    removed = await deps.repo.erase(event, deps.blobs, datetime.now(UTC))
    log.info("call erased", extra={"partner_id": event.partner_id, "call_id": event.call_id, "removed": removed})
    return [confirmation(event, "analyzer", removed)]


async def purge(now: datetime, deps: AnalyzeDeps) -> dict[str, int]:
    """The analyzer's retention purge: transcripts, results and bleeped copies of recordings
    whose retention ended by ``now``."""
    return await deps.repo.purge(now, deps.blobs)


async def analyze_call(event: CallFetched, deps: AnalyzeDeps) -> CallAnalyzed:
    snapshot = effective_config(event)
    heard = await _observed_transcribe(event, deps, channel_speakers(event, snapshot), snapshot.config.channels)
    asr, transcript = heard.asr, heard.transcript
    # PII is masked before the engine sees the transcript (the LLM engine sends it out of the
    # process) and again in the engine's output; what is stored and published is masked only.
    redaction = snapshot.config.data_protection.redaction
    redactor = Redactor.from_config(redaction) if redaction.enabled else None
    redacted_recording = None
    if redactor is not None:
        heard_transcript = transcript
        transcript, spans = await asyncio.to_thread(redactor.redact_transcript, transcript)
        if redaction.redact_audio:
            redacted_recording = await bleeped_copy(
                event, deps, snapshot=snapshot, transcript=heard_transcript, spans=spans, asr=asr
            )
    engine = deps.analysis
    started = time.perf_counter()
    outcome = "analyzed"
    with tracing.span("analyze transcript", attributes={"callpipe.analysis.engine": engine.name}) as span:
        try:
            analysis = await deps.analysis.analyze(
                AnalysisInput(
                    transcript=transcript, config=snapshot.config, duration_s=asr.duration_s, speech_s=asr.speech_s
                )
            )
        except AnalysisError as exc:
            outcome = exc.code
            tracing.fail(span, exc.code)
            if exc.code in _OUTAGE:
                raise DependencyUnavailable(exc.message) from exc
            raise AnalyzeFailed(exc.code, exc.message, retryable=exc.retryable) from None
        finally:
            metrics.ANALYSIS_DURATION.labels(engine.name, outcome).observe(time.perf_counter() - started)
    if redactor is not None:
        analysis = await asyncio.to_thread(redactor.redact_model, analysis)
        for kind, count in redactor.counts.items():
            metrics.REDACTIONS.labels(kind).inc(count)
        metrics.REDACTION_PATTERN_TIMEOUTS.inc(redactor.timeouts)
    return CallAnalyzed(
        **follow_up(event, event_id=event_id(event, "call.analyzed"), source=SOURCE),
        payload=CallAnalyzedPayload(
            **analysis.model_dump(),
            transcript=transcript,
            engines=EngineInfo(
                asr_engine=asr.engine,
                asr_model=asr.model,
                asr_version=asr.version,
                analysis_engine=engine.name,
                analysis_model=engine.model,
                analysis_version=engine.version,
                diarization=heard.diarization,
            ),
            audio=AudioStats(duration_s=asr.duration_s, speech_s=asr.speech_s, channels=event.payload.channels),
            config_id=snapshot.config_id,
            ingested=event.payload.ingested,
            redacted_recording=redacted_recording,
        ),
    )


async def bleeped_copy(
    event: CallFetched,
    deps: AnalyzeDeps,
    *,
    snapshot: ConfigSnapshot,
    transcript: list[TranscriptSegment],
    spans: list[SegmentSpan],
    asr: AsrResult,
) -> RedactedRecording | None:
    """Render the recording with ``spans`` (masked pieces of ``transcript``, the unmasked text)
    bleeped, and store it. A copy is made even when nothing was masked: the dashboard serves only
    the copy for such a call, never the original. A recording that cannot be rendered leaves the
    call without a copy (the analysis is published; the dashboard then plays nothing); a blob
    store that does not answer is an outage (the call waits for it)."""
    context = {"partner_id": event.partner_id, "call_id": event.call_id}
    ranges = bleep_ranges(transcript, spans, asr.word_times)
    spool = deps.spool_dir or Path(tempfile.gettempdir())
    await asyncio.to_thread(spool.mkdir, parents=True, exist_ok=True)
    target = spool / f"bleeped-{uuid.uuid4().hex}.mp3"
    try:
        with tracing.span("render bleeped copy", attributes={"callpipe.redaction.ranges": len(ranges)}):
            try:
                async with deps.blobs.open_local(event.payload.blob_uri) as path:
                    # PyAV and numpy release the GIL while they decode, fill and encode.
                    rendered = await asyncio.to_thread(
                        render_bleeped, str(path), channel_speakers(event, snapshot), ranges, target
                    )
            except (AsrError, av.FFmpegError, OSError, BlobError) as exc:
                log.warning("bleeped copy not rendered", extra={**context, "error": type(exc).__name__})
                return None
        try:
            stored = await deps.blobs.put_file(target, rendered.sha256, rendered.size)
        except (BlobError, OSError) as exc:
            raise DependencyUnavailable(f"the blob store did not take the bleeped copy: {type(exc).__name__}") from exc
    finally:
        await asyncio.to_thread(target.unlink, missing_ok=True)
    log.info("bleeped copy stored", extra={**context, "ranges": len(ranges), "bleeped_s": rendered.bleeped_s})
    return RedactedRecording(blob_uri=stored.uri, sha256=stored.sha256, media_type=rendered.media_type)


async def _observed_transcribe(
    event: CallFetched, deps: AnalyzeDeps, speakers: tuple[Speaker, ...], channels: ChannelMap
) -> Heard:
    """``transcribe`` in a span, timed: duration by outcome, real-time factor, audio seconds."""
    engine = deps.transcriber.name
    started = time.perf_counter()
    with tracing.span("transcribe", attributes={"callpipe.asr.engine": engine}) as span:
        try:
            heard = await transcribe(event, deps, speakers, channels)
        except (AnalyzeFailed, DependencyUnavailable) as exc:
            code = exc.code if isinstance(exc, AnalyzeFailed) else "asr_unavailable"
            metrics.ASR_DURATION.labels(engine, code).observe(time.perf_counter() - started)
            tracing.fail(span, code)
            raise
        elapsed = time.perf_counter() - started
        asr = heard.asr
        metrics.ASR_DURATION.labels(engine, "transcribed").observe(elapsed)
        if asr.duration_s > 0:
            metrics.ASR_REAL_TIME_FACTOR.labels(engine).observe(elapsed / asr.duration_s)
            metrics.ASR_AUDIO.labels(engine).inc(asr.duration_s)
        tracing.set_attributes(span, {"callpipe.audio.duration_s": asr.duration_s})
    return heard


@dataclass(frozen=True)
class Heard:
    """What was recognised, and the transcript with its speakers (``speakers.attribute``)."""

    asr: AsrResult
    transcript: list[TranscriptSegment]
    diarization: str | None


async def transcribe(
    event: CallFetched, deps: AnalyzeDeps, speakers: tuple[Speaker, ...], channels: ChannelMap
) -> Heard:
    """The recording's transcript, speakers separated on mono; a failed worker gets
    ``asr_attempts`` tries in all."""
    attempt = 0
    while True:
        attempt += 1
        try:
            async with deps.blobs.open_local(event.payload.blob_uri) as path:
                asr = await deps.transcriber.transcribe(
                    AsrRequest(path=str(path), channel_speakers=speakers, duration_s=event.payload.duration_s)
                )
                transcript, diarizer = await attribute(str(path), asr, channels)
                return Heard(asr, transcript, diarizer)
        except BlobError as exc:
            raise AnalyzeFailed(
                "blob_missing", f"the stored recording cannot be read: {exc}", retryable=False
            ) from None
        except AsrError as exc:
            if exc.code in _OUTAGE:
                raise DependencyUnavailable(str(exc)) from exc
            if exc.code in _RETRY_ASR and attempt < deps.asr_attempts:
                await backoff.wait(_ASR_RETRY.delay(attempt))
                continue
            raise AnalyzeFailed(exc.code, str(exc), retryable=exc.code in _RETRYABLE) from None


def failed_event(event: CallFetched, failure: AnalyzeFailed) -> CallFailed:
    return CallFailed(
        **follow_up(event, event_id=event_id(event, "call.failed/analyze"), source=SOURCE),
        payload=CallFailedPayload(
            stage="analyze",
            code=failure.code,
            message=failure.message,
            retryable=failure.retryable,
            ingested=event.payload.ingested,
        ),
    )


def gave_up(event: AnyEvent, exc: BaseException) -> list[AnyEvent]:
    """What a call becomes when the consumer runtime gives up on its message (dead-lettered after
    its retries): a failure the partner is told about, never a silent stop. The cause stays in the
    logs and the dead-letter topic, not in the event."""
    if not isinstance(event, CallFetched):
        return []
    return [
        failed_event(
            event,
            AnalyzeFailed("event_too_large", "The call's result is too large to be passed on.", retryable=False)
            if is_permanent(exc)
            else AnalyzeFailed(
                "internal_error", "The call could not be analysed because of an internal error.", retryable=True
            ),
        )
    ]
