"""Events the notifier consumes, as the analyzer, the fetcher and the gateway publish them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from schemas.analysis import Bant, Chapter, EngineInfo, Qualification, QualityItem, TranscriptSegment
from schemas.events import (
    AudioStats,
    CallAnalyzed,
    CallAnalyzedPayload,
    CallbackRedeliverRequested,
    CallbackRedeliverRequestedPayload,
    CallFailed,
    CallFailedPayload,
)
from tests.factories import ingested_event


def analyzed_event(
    callback_url: str | None,
    *,
    call_id: str | None = None,
    partner_id: str = "ptn_test",
    metadata: dict[str, Any] | None = None,
) -> CallAnalyzed:
    """A completed call whose analysis looks like the spec's example."""
    overrides: dict[str, Any] = {"callback_url": callback_url}
    if metadata is not None:
        overrides["metadata"] = metadata
    ingested = ingested_event(call_id, partner_id=partner_id, **overrides)
    return CallAnalyzed(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        partner_id=ingested.partner_id,
        tenant_id=ingested.tenant_id,
        subtenant_id=ingested.subtenant_id,
        call_id=ingested.call_id,
        source="analyzer",
        payload=CallAnalyzedPayload(
            intent="INTERESTED",
            intent_justification="The customer asked for a demo next week (00:42).",
            quality_score=42.0,
            summary=[
                Chapter(chapter_name="Introduction", chapter_summary="Greetings and the agenda."),
                Chapter(chapter_name="Webhook Challenges", chapter_summary="Date formats and agent ids."),
            ],
            bant=Bant(
                needs="- Flexible webhook parameters",
                objection="- No email notifications",
                concern_categories="Functionality",
                objection_handling="- Proposed an email id in the callback",
                budget="$10,000",
                authority=None,
                timeline="next quarter",
            ),
            qualification=[
                Qualification(label="Needs", answer="Flexible webhooks."),
                Qualification(label="Objection", answer="No email updates."),
                Qualification(label="Objection Handling", answer="Email id in the callback."),
            ],
            quality=[
                QualityItem(
                    justification="The agenda was stated.",
                    suggestion="Keep stating the agenda.",
                    parameter_name="Setting Context",
                    inference_score=10.0,
                    parameter_score=10.0,
                    is_fatal=False,
                ),
                QualityItem(
                    justification="The audit feature was not explained.",
                    suggestion="Explain the audit feature.",
                    parameter_name="USP Audits",
                    inference_score=2.5,
                    parameter_score=10.0,
                    is_fatal=True,
                ),
            ],
            transcript=[TranscriptSegment(speaker="agent", start=0.0, end=2.5, text="Hello, this is Ann from Acme.")],
            engines=EngineInfo(
                asr_engine="pocketsphinx",
                asr_model="en-us",
                asr_version="5",
                analysis_engine="builtin",
                analysis_model="builtin",
                analysis_version="1",
            ),
            audio=AudioStats(duration_s=60.0, speech_s=40.0, channels=2),
            config_id="cfg_0123456789abcdef",
            ingested=ingested.payload,
        ),
    )


def failed_event(
    callback_url: str | None, *, call_id: str | None = None, partner_id: str = "ptn_test", stage: str = "fetch"
) -> CallFailed:
    ingested = ingested_event(call_id, partner_id=partner_id, callback_url=callback_url)
    return CallFailed(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        partner_id=ingested.partner_id,
        tenant_id=ingested.tenant_id,
        subtenant_id=ingested.subtenant_id,
        call_id=ingested.call_id,
        source="fetcher",
        payload=CallFailedPayload(
            stage=stage,
            code="http_status",
            message="the recording host answered HTTP 404",
            retryable=False,
            ingested=ingested.payload,
        ),
    )


def redeliver_command(partner_id: str, call_id: str) -> CallbackRedeliverRequested:
    return CallbackRedeliverRequested(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        partner_id=partner_id,
        tenant_id="tenant1",
        subtenant_id="subtenant1",
        call_id=call_id,
        source="gateway",
        payload=CallbackRedeliverRequestedPayload(requested_by="key_test"),
    )
