"""Test data: call items and batches in the spec's request shape."""

from __future__ import annotations

import copy
import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

from schemas.analysis import Bant, Chapter, EngineInfo, Intent, Qualification, QualityItem, TranscriptSegment
from schemas.events import (
    AudioStats,
    CallAnalyzedPayload,
    CallFetched,
    CallFetchedPayload,
    CallIngestedPayload,
    encode_call_ingested,
    follow_up,
    new_event_ids,
    parse_event,
)

_seq = itertools.count(1)

SPEC_EXAMPLE_ITEM: dict[str, Any] = {
    "call": {
        "id": "call123",
        "recording_url": "https://example.com/recordings/call123.mp3",
        "start_time": "2023-01-01T10:00:00Z",
        "end_time": "2023-01-01T10:30:00Z",
        "contact_number": "+1234567890",
    },
    "agent": {"id": "agent123", "email": "agent@example.com", "name": "John Doe"},
    "customer": {
        "id": "customer123",
        "name": "Jane Smith",
        "email": "customer@example.com",
        "disposition_status": "interested",
    },
    "industry": "Technology",
    "function": "Sales",
    "callback_url": "https://partner.example.com/callback",
    "metadata": {"campaign": "Q1 Outreach", "source": "Website"},
}


def call_item(call_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    """The spec's example item with a fresh call id; ``overrides`` replace top-level keys,
    and ``call__field=value`` style keys replace nested ones (``agent__email=None`` deletes)."""
    item = copy.deepcopy(SPEC_EXAMPLE_ITEM)
    item["call"]["id"] = call_id or f"call-{next(_seq)}-{uuid.uuid4().hex[:8]}"
    for key, value in overrides.items():
        if "__" in key:
            outer, inner = key.split("__", 1)
            if value is None:
                item[outer].pop(inner, None)
            else:
                item[outer][inner] = value
        elif value is None:
            item.pop(key, None)
        else:
            item[key] = value
    return item


def batch(n: int = 1, **overrides: Any) -> dict[str, Any]:
    return {"data": [call_item(**overrides) for _ in range(n)]}


def ingested_event(call_id: str | None = None, partner_id: str = "ptn_test", **overrides: Any) -> Any:
    """A ``CallIngested`` event as the gateway would publish it."""
    item = call_item(call_id, **overrides)
    known = {"call", "agent", "customer", "callback_url", "metadata", "custom_fields"}
    raw = encode_call_ingested(
        event_id=new_event_ids(1)[0],
        occurred_at=datetime.now(UTC),
        partner_id=partner_id,
        tenant_id="tenant1",
        subtenant_id="subtenant1",
        source="gateway",
        call=item["call"],
        agent=item["agent"],
        customer=item["customer"],
        callback_url=item.get("callback_url"),
        metadata=item.get("metadata"),
        custom_fields=item.get("custom_fields"),
        extra={k: v for k, v in item.items() if k not in known},
    )
    return parse_event(raw)


def fetched_event(
    ingested: Any,
    *,
    blob_uri: str,
    sha256: str,
    size: int,
    container: str = "mp3",
    duration_s: float = 30.0,
    channels: int = 2,
    sample_rate: int = 16_000,
) -> CallFetched:
    """The ``CallFetched`` event the fetcher publishes once ``ingested``'s recording is stored."""
    return CallFetched(
        **follow_up(ingested, event_id=uuid.uuid4(), source="fetcher"),
        payload=CallFetchedPayload(
            ingested=ingested.payload,
            blob_uri=blob_uri,
            sha256=sha256,
            bytes=size,
            container=container,
            codec=container,
            duration_s=duration_s,
            channels=channels,
            sample_rate=sample_rate,
        ),
    )


def analysis_payload(
    ingested: CallIngestedPayload, *, intent: Intent = "INTERESTED", quality_score: float | None = 42.0
) -> CallAnalyzedPayload:
    """A ``calls.analyzed.v1`` payload shaped like the spec's example callback (two chapters, a
    fatal parameter scored 2.5 of 10, a budget cue and no authority cue)."""
    return CallAnalyzedPayload(
        intent=intent,
        intent_justification="The customer asked for a demo next week (00:42).",
        quality_score=quality_score,
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
        ingested=ingested,
    )
