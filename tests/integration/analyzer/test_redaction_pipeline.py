"""PII redaction through the analyzer as a process, on real Kafka and PostgreSQL: a fetched call
whose transcript holds a card number, an email and a phone number (spoken and written) goes in
on ``calls.fetched.v1``; with the tenant's redaction on, the analysis engine's endpoint, the
analyzer's table and the ``calls.analyzed.v1`` event hold none of them; with it off (the
default) they are kept.

The engines are real local HTTP servers playing an OpenAI-compatible transcription endpoint
(it answers the scripted transcript, so the PII is known exactly) and an LLM endpoint (it
records what it was sent, and answers with the PII written into its analysis, as a model
quoting the call would, so the result's own masking is tested too). The audio is festival
speech: the transcription client sends only pieces in which it detects speech.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from schemas.analysis import (
    DEFAULT_CONFIG,
    AnalysisConfig,
    ConfigSnapshot,
    DataProtection,
    Redaction,
    RedactionPattern,
)
from schemas.events import TOPIC_ANALYZED, TOPIC_FETCHED, CallFetched, dump_event
from services.analyzer.repository import AnalyzerRepository
from services.common.blobs import FilesystemBlobStore, sha256_of
from services.common.db import create_pool
from services.common.kafka import make_producer
from services.gateway.config import GatewaySettings
from tests.factories import fetched_event, ingested_event
from tests.support import audio
from tests.support.kafka import consume
from tests.support.openai_asr_server import ReceivedRequest, TranscriptionServer, transcription_server
from tests.support.openai_chat_server import ChatServer, openai_chat_server
from tests.support.pipeline import pipeline

pytestmark = pytest.mark.skipif(not audio.tools_available(), reason="festival is not installed")

# What the (scripted) recognizer heard on each channel: PII in the forms people use.
HEARD = (
    "sure my card is four five three two double one five one uh two eight three oh seven two one seven"
    " and my email is john dot smith at acme dot co dot uk or j.doe@example.org"
    " you can call me back on (415) 555-0132 and my account is ACCT-778899"
)
CARD = "4532115128307217"  # Luhn-valid
# Every piece of PII above, as it may appear after any rendering (the words, the digits).
SECRETS = (
    "four five three two double one",
    "two eight three oh seven",
    CARD,
    "john dot smith",
    "acme dot co",
    "j.doe@example.org",
    "555-0132",
    "(415)",
    "778899",
)
# ... and what the model writes back when it quotes the call.
MODEL_QUOTES = f"Card {CARD[:4]} {CARD[4:8]} {CARD[8:12]} {CARD[12:]}; email john.smith@acme.co.uk; phone 415 555 0132."


def heard(request: ReceivedRequest, index: int) -> tuple[int, Any]:
    duration = request.audio_duration_s()
    segment = {"id": 0, "start": 0.0, "end": duration, "text": HEARD, "avg_logprob": -0.2, "no_speech_prob": 0.01}
    return 200, {
        "task": "transcribe",
        "language": "english",
        "duration": duration,
        "text": HEARD,
        "segments": [segment],
    }


def model_answer(config: AnalysisConfig) -> dict[str, Any]:
    return {
        "intent": "INTERESTED",
        "intent_justification": f"The customer paid. {MODEL_QUOTES}",
        "summary": [{"chapter_name": "Payment", "chapter_summary": f"Details given: {MODEL_QUOTES}"}],
        "bant": {
            "needs": MODEL_QUOTES,
            "objection": None,
            "concern_categories": None,
            "objection_handling": None,
            "budget": "$1,200 a month",
            "authority": None,
            "timeline": "next Tuesday",
        },
        "qualification": [{"label": label, "answer": MODEL_QUOTES} for label in config.labels],
        "quality": [
            {
                "parameter_name": p.parameter_name,
                "inference_score": p.max_score // 2,
                "justification": MODEL_QUOTES,
                "suggestion": "Confirm the callback number 415 555 0132.",
                "parameter_score": p.max_score,
                "is_fatal": p.is_fatal,
            }
            for p in config.rubric
        ],
    }


REDACTING = DEFAULT_CONFIG.model_copy(
    update={
        "data_protection": DataProtection(
            redaction=Redaction(enabled=True, patterns=[RedactionPattern(name="account", regex=r"acct-\d{6}")])
        )
    }
)


@pytest.fixture
async def servers() -> AsyncIterator[tuple[TranscriptionServer, ChatServer]]:
    async with transcription_server(heard) as asr, openai_chat_server() as llm:
        yield asr, llm


async def fetched_call(blob_root: Path, config: AnalysisConfig) -> CallFetched:
    call = audio.render_conversation(
        [
            audio.Turn("agent", "thank you for calling, how can I help you today"),
            audio.Turn("customer", "I would like to pay the invoice with my card please"),
        ],
        stereo=True,
    )
    data = audio.encode(call, "mp3")
    blobs = FilesystemBlobStore(blob_root)
    spool = blob_root / f"in-{uuid.uuid4().hex}"
    blob_root.mkdir(parents=True, exist_ok=True)
    spool.write_bytes(data)
    digest = sha256_of(spool)
    blob = await blobs.put_file(spool, digest, len(data))
    ingested = ingested_event()
    snapshot = ConfigSnapshot(config_id=config.config_id(), config=config, source="tenant")
    ingested = ingested.model_copy(
        update={"payload": ingested.payload.model_copy(update={"analysis_config": snapshot})}
    )
    return fetched_event(
        ingested,
        blob_uri=blob.uri,
        sha256=digest,
        size=len(data),
        container="mp3",
        duration_s=call.duration_s,
        channels=2,
        sample_rate=audio.SAMPLE_RATE,
    )


async def run_through_analyzer(
    settings: GatewaySettings, tmp_path: Path, servers: tuple[TranscriptionServer, ChatServer], config: AnalysisConfig
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The published event, the stored row and everything the LLM endpoint received."""
    asr, llm = servers
    llm.reply_json(model_answer(config))
    blob_root = tmp_path / "blobs"
    event = await fetched_call(blob_root, config)
    env = {
        "ANALYZER_ASR_ENGINE": "openai",
        "ANALYZER_ASR_OPENAI_BASE_URL": asr.base_url,
        "ANALYZER_ANALYSIS_ENGINE": "llm",
        "ANALYZER_LLM_BASE_URL": llm.base_url,
        "ANALYZER_LLM_MODEL": "callpipe-test-model",
    }
    with pipeline(settings, tmp_path / "logs", blob_root=blob_root, services=("analyzer",), extra={"analyzer": env}):
        producer = make_producer(settings.kafka_bootstrap_servers, "redaction-test")
        await producer.start()
        try:
            await producer.send_and_wait(settings.topic(TOPIC_FETCHED), dump_event(event), key=event.key())
        finally:
            await producer.stop()
        records = await consume(settings.kafka_bootstrap_servers, settings.topic(TOPIC_ANALYZED), 1, timeout=90)
    assert len(records) == 1, "no calls.analyzed event"
    published = json.loads(records[0].value)
    pool = await create_pool(SecretStr(settings.database_url.get_secret_value()), "analyzer", min_size=1, max_size=1)
    try:
        stored = await AnalyzerRepository(pool).find(event.partner_id, event.call_id)
    finally:
        await pool.close()
    assert stored is not None and not stored.transcript_purged
    sent = json.dumps([r.body for r in llm.requests])
    assert asr.requests, "the transcription endpoint was not used"
    return published, stored.event, sent


def analysis_and_transcript(document: dict[str, Any]) -> str:
    """The event's payload without ``ingested`` (the partner's own metadata, passed through)."""
    payload = {k: v for k, v in document["payload"].items() if k != "ingested"}
    return json.dumps(payload)


async def test_with_redaction_on_no_pii_is_sent_stored_or_published(
    gateway_settings: GatewaySettings, tmp_path: Path, servers: tuple[TranscriptionServer, ChatServer]
) -> None:
    published, stored, sent = await run_through_analyzer(gateway_settings, tmp_path, servers, REDACTING)
    for where, text in (("LLM request", sent), ("event", analysis_and_transcript(published))):
        for secret in SECRETS:
            assert secret.lower() not in text.lower(), f"{secret!r} left in the {where}"
    assert stored == published
    transcript = " ".join(s["text"] for s in published["payload"]["transcript"])
    for mask in ("[CARD]", "[EMAIL]", "[PHONE]", "[ACCOUNT]"):
        assert mask in transcript
    assert "[CARD]" in sent and "[EMAIL]" in sent
    payload = published["payload"]
    assert "[CARD]" in payload["intent_justification"] and "[EMAIL]" in payload["summary"][0]["chapter_summary"]
    assert payload["quality"][0]["suggestion"] == "Confirm the callback number [PHONE]."
    assert payload["bant"]["budget"] == "$1,200 a month"  # an amount is not PII
    assert payload["intent"] == "INTERESTED"


async def test_with_redaction_off_the_text_is_kept(
    gateway_settings: GatewaySettings, tmp_path: Path, servers: tuple[TranscriptionServer, ChatServer]
) -> None:
    assert not DEFAULT_CONFIG.data_protection.redaction.enabled
    published, stored, sent = await run_through_analyzer(gateway_settings, tmp_path, servers, DEFAULT_CONFIG)
    assert stored == published
    event_text = analysis_and_transcript(published)
    assert "john dot smith at acme dot co dot uk" in sent and "john dot smith at acme dot co dot uk" in event_text
    assert CARD[:4] in event_text and "(415) 555-0132" in event_text and "[CARD]" not in event_text
