"""The analyzer's handler on real speech with real dependencies (PostgreSQL, blob store,
PocketSphinx workers, the built-in analysis engine) and no Kafka: the handler is a plain async
function. The scripted calls come from festival (tests/support/audio.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import jsonschema
import pytest
from pydantic import SecretStr

from schemas.analysis import DEFAULT_CONFIG, AnalysisConfig, CallAnalysis, ChannelMap, ConfigSnapshot, RubricParameter
from schemas.events import AnyEvent, CallAnalyzed, CallFailed, CallFetched, CallStageStarted, dump_event
from services.analyzer.analysis import AnalysisSettings, create_analysis_engine
from services.analyzer.asr import AsrSettings, Transcriber, create_transcriber
from services.analyzer.handlers import AnalyzeDeps, handle_fetched
from services.analyzer.repository import AnalyzerRepository
from services.common.blobs import FilesystemBlobStore, sha256_of
from services.common.db import create_pool
from services.common.errors import DependencyUnavailable
from tests.factories import fetched_event, ingested_event
from tests.support import audio
from tests.support.wer import word_attribution

SCHEMA = json.loads((Path(__file__).parents[3] / "schemas" / "json" / "calls.analyzed.v1.json").read_text())

pytestmark = pytest.mark.skipif(not audio.tools_available(), reason="festival is not installed")


class CountingTranscriber:
    """The real transcriber, counting how often it is asked (to prove idempotency)."""

    def __init__(self, inner: Transcriber) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls = 0

    async def transcribe(self, request):  # type: ignore[no-untyped-def]
        self.calls += 1
        return await self.inner.transcribe(request)

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture(scope="module")
def transcriber() -> Iterator[CountingTranscriber]:
    # One worker pool for the module (the model loads once); the pool is not tied to an event
    # loop, so each test's loop can use it.
    t = CountingTranscriber(create_transcriber(AsrSettings()))
    yield t
    asyncio.run(t.close())


@pytest.fixture
async def deps(database_url: str, tmp_path: Path, transcriber: CountingTranscriber) -> AsyncIterator[AnalyzeDeps]:
    pool = await create_pool(SecretStr(database_url), "analyzer", min_size=1, max_size=2)
    engine = create_analysis_engine(AnalysisSettings())
    yield AnalyzeDeps(
        repo=AnalyzerRepository(pool),
        blobs=FilesystemBlobStore(tmp_path / "blobs"),
        transcriber=transcriber,
        analysis=engine,
    )
    await engine.close()
    await pool.close()


async def fetched(
    deps: AnalyzeDeps,
    data: bytes,
    channels: int,
    config: AnalysisConfig | None = None,
    container: str = "mp3",
    duration_s: float = 30.0,
) -> CallFetched:
    """Store ``data`` as the fetcher would and describe it in a ``calls.fetched`` event."""
    spool = Path(str(deps.blobs.root)) / f"in-{uuid.uuid4().hex}"  # type: ignore[attr-defined]
    spool.write_bytes(data)
    digest = sha256_of(spool)
    blob = await deps.blobs.put_file(spool, digest, len(data))
    ingested = ingested_event()
    if config is not None:
        snapshot = ConfigSnapshot(config_id=config.config_id(), config=config, source="tenant")
        ingested = ingested.model_copy(
            update={"payload": ingested.payload.model_copy(update={"analysis_config": snapshot})}
        )
    return fetched_event(
        ingested,
        blob_uri=blob.uri,
        sha256=digest,
        size=len(data),
        container=container,
        duration_s=duration_s,
        channels=channels,
        sample_rate=audio.SAMPLE_RATE,
    )


async def analyze(
    deps: AnalyzeDeps, script: str, *, stereo: bool = True, fmt: str = "mp3", config: AnalysisConfig | None = None
) -> CallAnalyzed:
    call = audio.render_conversation(audio.SCRIPTS[script], stereo=stereo)
    event = await fetched(deps, audio.encode(call, fmt), 2 if stereo else 1, config, fmt, call.duration_s)  # type: ignore[arg-type]
    [result] = await handle_fetched(event, deps)
    assert isinstance(result, CallAnalyzed), result
    return result


def assert_valid_callback_fields(result: CallAnalyzed) -> None:
    document = json.loads(dump_event(result))
    jsonschema.validate(document, SCHEMA)
    callback = {k: document["payload"][k] for k in CallAnalysis.model_fields}
    CallAnalysis.model_validate(callback)


async def test_an_interested_stereo_call_is_transcribed_split_and_analysed(deps: AnalyzeDeps) -> None:
    result = await analyze(deps, "interested")
    p = result.payload
    assert p.intent == "INTERESTED"
    assert {s.speaker for s in p.transcript} == {"agent", "customer"}
    assert all(s.end >= s.start for s in p.transcript)
    assert p.transcript == sorted(p.transcript, key=lambda s: s.start)
    assert p.engines.asr_engine == "pocketsphinx" and p.engines.analysis_engine == "builtin"
    assert p.config_id == DEFAULT_CONFIG.config_id()
    assert [q.parameter_name for q in p.quality] == [r.parameter_name for r in DEFAULT_CONFIG.rubric]
    assert [q.label for q in p.qualification] == DEFAULT_CONFIG.labels
    assert p.summary and all(c.chapter_name and c.chapter_summary for c in p.summary)
    assert 0 <= (p.quality_score or 0) <= 100
    assert p.audio.channels == 2 and p.audio.speech_s > 5
    assert_valid_callback_fields(result)


async def test_a_clear_refusal_is_not_interested(deps: AnalyzeDeps) -> None:
    result = await analyze(deps, "not_interested", fmt="m4a")
    assert result.payload.intent == "NOT_INTERESTED"
    assert result.payload.intent_justification


async def test_a_spoken_budget_reaches_bant(deps: AnalyzeDeps) -> None:
    result = await analyze(deps, "budget_and_timeline", fmt="wav")
    assert "10,000" in (result.payload.bant.budget or ""), result.payload.bant


async def test_a_price_objection_is_categorised_pricing(deps: AnalyzeDeps) -> None:
    result = await analyze(deps, "price_objection")
    assert "Pricing" in (result.payload.bant.concern_categories or ""), result.payload.bant


async def test_setting_context_scores_high_with_an_agenda_and_low_without(deps: AnalyzeDeps) -> None:
    def setting_context(result: CallAnalyzed) -> float:
        [item] = [q for q in result.payload.quality if q.parameter_name == "Setting Context"]
        return float(item.inference_score or 0)

    with_agenda = setting_context(await analyze(deps, "agenda_set"))
    without = setting_context(await analyze(deps, "no_agenda"))
    assert with_agenda >= 7 > without


async def test_a_mono_call_comes_back_with_agent_and_customer_separated(deps: AnalyzeDeps) -> None:
    call = audio.render_conversation(audio.SCRIPTS["interested"], stereo=False)
    result = await analyze(deps, "interested", stereo=False)
    p = result.payload
    assert {s.speaker for s in p.transcript} == {"agent", "customer"}
    right, words = word_attribution(p.transcript, call.turns)
    assert right >= 0.85 * words, (right, words)
    assert p.engines.diarization and p.engines.diarization.startswith("callpipe-voices")
    assert p.intent == "INTERESTED"
    # With the speakers known, the analysis quotes the customer as the customer.
    assert "customer at" in (p.intent_justification or "")
    assert all("Mono recording" not in (q.justification or "") for q in p.quality)
    assert_valid_callback_fields(result)


async def test_a_telephone_recording_is_separated_too(deps: AnalyzeDeps) -> None:
    call = audio.render_conversation(audio.SCRIPTS["not_interested"], stereo=False)
    event = await fetched(deps, audio.telephone(call, "mulaw"), 1, None, "wav", call.duration_s)
    [result] = await handle_fetched(event, deps)
    assert isinstance(result, CallAnalyzed)
    assert {s.speaker for s in result.payload.transcript} == {"agent", "customer"}
    right, words = word_attribution(result.payload.transcript, call.turns)
    assert right >= 0.85 * words, (right, words)
    assert result.payload.intent == "NOT_INTERESTED"


async def test_the_tenant_can_say_who_speaks_first_on_mono(deps: AnalyzeDeps) -> None:
    # A tenant whose recorder starts on the customer's side: the configuration wins over what
    # the voices say (here, wrongly: the scripted agent speaks first).
    config = AnalysisConfig(
        labels=DEFAULT_CONFIG.labels,
        rubric=DEFAULT_CONFIG.rubric,
        channels=ChannelMap(mono_first_speaker="customer"),
    )
    result = await analyze(deps, "not_interested", stereo=False, config=config)
    first = min(result.payload.transcript, key=lambda s: s.start)
    assert first.speaker == "customer"
    assert {s.speaker for s in result.payload.transcript} == {"agent", "customer"}
    assert result.payload.config_id == config.config_id() != DEFAULT_CONFIG.config_id()


async def test_a_failed_fatal_parameter_lowers_the_score_per_the_formula(deps: AnalyzeDeps) -> None:
    relaxed = AnalysisConfig(
        labels=["Needs"],
        rubric=[
            RubricParameter(parameter_name="Professionalism", description="Greet and thank the customer."),
            RubricParameter(
                parameter_name="Setting Context", description="State the agenda of the call.", is_fatal=False
            ),
        ],
    )
    strict = relaxed.model_copy(
        update={"rubric": [relaxed.rubric[0], relaxed.rubric[1].model_copy(update={"is_fatal": True})]}
    )
    lenient = await analyze(deps, "no_agenda", config=relaxed)
    harsh = await analyze(deps, "no_agenda", config=strict)
    [failed] = [q for q in harsh.payload.quality if q.parameter_name == "Setting Context"]
    assert failed.is_fatal and (failed.inference_score or 0) < 5
    assert harsh.payload.quality_score == pytest.approx((lenient.payload.quality_score or 0) * 0.5, abs=0.11)
    assert harsh.payload.config_id == strict.config_id() != lenient.payload.config_id


async def test_silence_completes_as_no_conversation(deps: AnalyzeDeps) -> None:
    silence = audio.render_silence(8.0, stereo=True, noise_dbfs=-60)
    event = await fetched(deps, audio.encode(silence, "mp3"), 2, duration_s=8.0)
    [result] = await handle_fetched(event, deps)
    assert isinstance(result, CallAnalyzed)
    assert result.payload.intent == "NO_CONVERSATION"
    assert result.payload.transcript == []
    assert not result.payload.summary
    assert_valid_callback_fields(result)


async def test_a_redelivered_event_is_answered_without_transcribing_again(
    deps: AnalyzeDeps, transcriber: CountingTranscriber
) -> None:
    call = audio.render_conversation(audio.SCRIPTS["interested"][:2], stereo=True)
    event = await fetched(deps, audio.encode(call, "mp3"), 2, duration_s=call.duration_s)
    before = transcriber.calls
    [first] = await handle_fetched(event, deps)
    [again] = await handle_fetched(event, deps)
    assert transcriber.calls == before + 1
    assert isinstance(again, CallAnalyzed) and again == first


async def test_starting_an_analysis_is_announced_once_and_best_effort(
    deps: AnalyzeDeps, caplog: pytest.LogCaptureFixture
) -> None:
    call = audio.render_conversation(audio.SCRIPTS["interested"][:2], stereo=True)
    event = await fetched(deps, audio.encode(call, "mp3"), 2, duration_s=call.duration_s)
    announced: list[AnyEvent] = []

    async def announce(e: AnyEvent) -> None:
        announced.append(e)

    d = dataclasses.replace(deps, announce=announce)
    [first] = await handle_fetched(event, d)
    [again] = await handle_fetched(event, d)  # redelivered: answered from the table, nothing starts
    assert isinstance(first, CallAnalyzed) and again == first
    [progress] = announced
    assert isinstance(progress, CallStageStarted) and progress.payload.stage == "analyze"
    assert (progress.call_id, progress.key()) == (event.call_id, event.key())

    async def broken(e: AnyEvent) -> None:
        raise RuntimeError("Kafka is down")

    other = await fetched(deps, b"ID3" + bytes(5000), 2)
    with caplog.at_level(logging.WARNING):
        [result] = await handle_fetched(other, dataclasses.replace(deps, announce=broken))
    assert isinstance(result, CallFailed) and result.payload.code == "decode_error"  # its own outcome, unaffected
    assert "progress event not published" in caplog.text


async def test_an_undecodable_recording_fails_with_stage_analyze(deps: AnalyzeDeps) -> None:
    event = await fetched(deps, b"ID3" + bytes(5000), 2)
    [result] = await handle_fetched(event, deps)
    assert isinstance(result, CallFailed)
    assert (result.payload.stage, result.payload.code) == ("analyze", "decode_error")
    assert result.payload.ingested == event.payload.ingested


async def test_a_missing_blob_fails_with_stage_analyze(deps: AnalyzeDeps) -> None:
    event = await fetched(deps, b"x" * 10, 1)
    async with deps.blobs.open_local(event.payload.blob_uri) as path:
        path.unlink()
    [result] = await handle_fetched(event, deps)
    assert isinstance(result, CallFailed) and result.payload.code == "blob_missing"


async def test_an_llm_endpoint_that_is_down_delays_the_call_instead_of_failing_it(deps: AnalyzeDeps) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = create_analysis_engine(
        AnalysisSettings(
            engine="llm", llm_base_url=f"http://127.0.0.1:{port}/v1", llm_model="m", llm_retry_backoff_s=0.01
        )
    )
    call = audio.render_conversation(audio.SCRIPTS["interested"][:2], stereo=True)
    event = await fetched(deps, audio.encode(call, "mp3"), 2, duration_s=call.duration_s)
    try:
        with pytest.raises(DependencyUnavailable):
            await handle_fetched(event, dataclasses.replace(deps, analysis=engine))
    finally:
        await engine.close()
    # Nothing recorded: once the endpoint is back, the redelivered event is analysed for real.
    assert await deps.repo.find(event.partner_id, event.call_id) is None
    [result] = await handle_fetched(event, deps)
    assert isinstance(result, CallAnalyzed)
