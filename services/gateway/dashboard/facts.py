"""What the dashboard keeps about a call, derived from one event (pure functions, no I/O).

Bands, talk ratio, fatal failures, concern categories and BANT coverage are computed here once,
when the event is folded, so pages only ever add up stored numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.analysis import CONCERN_CATEGORIES, FATAL_FAIL_RATIO
from schemas.events import AnyEvent, CallAnalyzed, CallFailed, CallFetched, CallIngested, CallIngestedPayload

#: (band, label, lower bound inclusive, upper bound exclusive) of the quality score.
SCORE_BANDS: tuple[tuple[int, str, float, float], ...] = (
    (0, "0-49", 0.0, 50.0),
    (1, "50-69", 50.0, 70.0),
    (2, "70-84", 70.0, 85.0),
    (3, "85-100", 85.0, math.inf),
)
UNSCORED_BAND = 4
#: (band, label, lower bound inclusive, upper bound exclusive) of the call's length, in seconds.
LENGTH_BANDS: tuple[tuple[int, str, float, float], ...] = (
    (0, "Under 1 min", 0.0, 60.0),
    (1, "1-5 min", 60.0, 300.0),
    (2, "5-15 min", 300.0, 900.0),
    (3, "15 min or more", 900.0, math.inf),
)
#: Dashboard statuses: everything before a final state is "processing".
STATUS_RANK = {"processing": 1, "completed": 2, "failed": 2}
#: Stages whose failure ends the call (a notify failure is the callback's business).
_PROCESSING_STAGES = {"fetch", "analyze"}
MEDIA_TYPES = {
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "m4a": "audio/mp4",
    "mp4": "audio/mp4",
    "ogg": "audio/ogg",
    "oga": "audio/ogg",
    "opus": "audio/ogg",
    "flac": "audio/flac",
    "webm": "audio/webm",
}
_CONCERN_KEYS = {name.lower(): name for name in CONCERN_CATEGORIES}


def score_band(score: float | None) -> int:
    if score is None:
        return UNSCORED_BAND
    for band, _, low, high in SCORE_BANDS:
        if low <= score < high:
            return band
    return UNSCORED_BAND


def length_band(seconds: float | None) -> int:
    value = max(seconds or 0.0, 0.0)
    for band, _, low, high in LENGTH_BANDS:
        if low <= value < high:
            return band
    return LENGTH_BANDS[-1][0]


@dataclass(frozen=True)
class ParamScore:
    parameter: str
    score: float
    max_score: float


@dataclass(frozen=True)
class CallFact:
    """One event's contribution to a call's dashboard row (None: the event does not know)."""

    partner_id: str
    call_id: str
    tenant_id: str
    subtenant_id: str
    status: str
    agent_id: str | None = None
    agent_name: str | None = None
    customer_id: str | None = None
    customer_name: str | None = None
    started_at: datetime | None = None
    duration_s: float | None = None
    intent: str | None = None
    quality_score: float | None = None
    fatal_failed: bool | None = None
    talk_ratio: float | None = None
    concerns: tuple[str, ...] | None = None
    bant: tuple[bool, bool, bool, bool] | None = None  # needs, budget, authority, timeline found
    blob_uri: str | None = None
    media_type: str | None = None
    #: The recording named is the bleeped copy (redaction with ``redact_audio``): it replaces
    #: any other, and no other replaces it.
    audio_redacted: bool = False
    details: dict[str, Any] | None = None
    params: tuple[ParamScore, ...] = field(default=())


def _identity(event: AnyEvent, status: str, ingested: CallIngestedPayload | None) -> dict[str, Any]:
    base: dict[str, Any] = {
        "partner_id": event.partner_id,
        "call_id": event.call_id,
        "tenant_id": event.tenant_id,
        "subtenant_id": event.subtenant_id,
        "status": status,
    }
    if ingested is None:
        return base
    call, agent, customer = ingested.call, ingested.agent, ingested.customer
    base.update(
        agent_id=agent.id,
        agent_name=agent.name,
        customer_id=customer.id,
        customer_name=customer.name,
        started_at=call.start_time,
        duration_s=max((call.end_time - call.start_time).total_seconds(), 0.0),
        details={
            "contact_number": call.contact_number,
            "agent_email": agent.email,
            "customer_email": customer.email,
            "disposition_status": customer.disposition_status,
            "metadata": dict(ingested.metadata),
            "custom_fields": [f.model_dump(mode="json") for f in ingested.custom_fields],
            "extra": dict(ingested.extra),
        },
    )
    return base


def concerns_of(text: str | None) -> tuple[str, ...]:
    """The closed set of concern categories named in ``bant.concern_categories`` (comma or
    semicolon separated); anything unknown counts as Other."""
    if not text:
        return ()
    found: list[str] = []
    for raw in text.replace(";", ",").split(","):
        name = raw.strip().lower()
        if not name:
            continue
        category = _CONCERN_KEYS.get(name, "Other")
        if category not in found:
            found.append(category)
    return tuple(found)


def _found(text: str | None) -> bool:
    return bool(text and text.strip())


def bleeps_audio(ingested: CallIngestedPayload) -> bool:
    """Whether the call's redaction replaces its recording with a bleeped copy (the snapshot
    taken when it arrived decides, as it does in the analyzer)."""
    snapshot = ingested.analysis_config
    if snapshot is None:
        return False
    redaction = snapshot.config.data_protection.redaction
    return redaction.enabled and redaction.redact_audio


def fact_of(event: AnyEvent) -> CallFact | None:
    """The event's contribution, or None for events the dashboard does not follow."""
    if isinstance(event, CallIngested):
        return CallFact(**_identity(event, "processing", event.payload))
    if isinstance(event, CallFetched):
        fetched = event.payload
        if bleeps_audio(fetched.ingested):
            # Only the analyzer's bleeped copy is ever played for such a call, never the original.
            return CallFact(**_identity(event, "processing", fetched.ingested))
        return CallFact(
            **_identity(event, "processing", fetched.ingested),
            blob_uri=fetched.blob_uri,
            media_type=MEDIA_TYPES.get(fetched.container.lower(), "application/octet-stream"),
        )
    if isinstance(event, CallFailed):
        failed = event.payload
        status = "failed" if failed.stage in _PROCESSING_STAGES else "processing"
        return CallFact(**_identity(event, status, failed.ingested))
    if isinstance(event, CallAnalyzed):
        analyzed = event.payload
        scored = [q for q in analyzed.quality if q.parameter_score and q.inference_score is not None]
        fatal = any(
            q.is_fatal and (q.inference_score or 0.0) < FATAL_FAIL_RATIO * (q.parameter_score or 0.0) for q in scored
        )
        speech = {"agent": 0.0, "customer": 0.0}
        for segment in analyzed.transcript:
            if segment.speaker in speech:
                speech[segment.speaker] += max(segment.end - segment.start, 0.0)
        spoken = speech["agent"] + speech["customer"]
        bant = analyzed.bant
        copy = analyzed.redacted_recording
        return CallFact(
            **_identity(event, "completed", analyzed.ingested),
            blob_uri=copy.blob_uri if copy is not None else None,
            media_type=copy.media_type if copy is not None else None,
            audio_redacted=copy is not None,
            intent=analyzed.intent,
            quality_score=analyzed.quality_score,
            fatal_failed=fatal if scored else None,
            talk_ratio=speech["agent"] / spoken if spoken > 0 else None,
            concerns=concerns_of(bant.concern_categories),
            bant=(_found(bant.needs), _found(bant.budget), _found(bant.authority), _found(bant.timeline)),
            params=tuple(
                ParamScore(q.parameter_name or "", float(q.inference_score or 0.0), float(q.parameter_score or 0.0))
                for q in scored
                if q.parameter_name
            ),
        )
    return None
