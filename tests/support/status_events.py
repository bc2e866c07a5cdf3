"""The events the status read model follows, built as the pipeline's services publish them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.events import (
    CallAnalyzed,
    CallbackDelivery,
    CallbackDeliveryPayload,
    CallFailed,
    CallFailedPayload,
    CallIngested,
    CallStageStarted,
    CallStageStartedPayload,
    DeliveryAttempt,
)
from tests.factories import analysis_payload, fetched_event, ingested_event

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _envelope(ingested: CallIngested, source: str, when: datetime) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4(),
        "occurred_at": when,
        "partner_id": ingested.partner_id,
        "tenant_id": ingested.tenant_id,
        "subtenant_id": ingested.subtenant_id,
        "call_id": ingested.call_id,
        "source": source,
    }


def ingested(
    partner_id: str,
    call_id: str | None = None,
    *,
    tenant: str = "tenant1",
    subtenant: str = "subtenant1",
    received: datetime = T0,
    **overrides: Any,
) -> CallIngested:
    event: CallIngested = ingested_event(call_id, partner_id=partner_id, **overrides)
    payload = event.payload.model_copy(update={"received_at": received})
    return event.model_copy(
        update={"tenant_id": tenant, "subtenant_id": subtenant, "occurred_at": received, "payload": payload}
    )


def started(call: CallIngested, stage: str, when: datetime) -> CallStageStarted:
    source = "fetcher" if stage == "fetch" else "analyzer"
    return CallStageStarted(**_envelope(call, source, when), payload=CallStageStartedPayload(stage=stage))  # type: ignore[arg-type]


def fetched(call: CallIngested, when: datetime) -> Any:
    event = fetched_event(call, blob_uri="file:///blobs/x", sha256="0" * 64, size=1000)
    return event.model_copy(update={"occurred_at": when})


def analyzed(call: CallIngested, when: datetime, intent: str = "INTERESTED", score: float = 72.5) -> CallAnalyzed:
    payload = analysis_payload(call.payload, intent=intent, quality_score=score)  # type: ignore[arg-type]
    return CallAnalyzed(**_envelope(call, "analyzer", when), payload=payload)


def failed(call: CallIngested, when: datetime, stage: str = "fetch", code: str = "http_status") -> CallFailed:
    payload = CallFailedPayload(
        stage=stage, code=code, message="the recording host answered HTTP 404", ingested=call.payload
    )
    return CallFailed(**_envelope(call, "fetcher" if stage == "fetch" else "analyzer", when), payload=payload)


def delivery(
    call: CallIngested,
    when: datetime,
    state: str,
    *,
    number: int | None = None,
    status_code: int | None = None,
    error: str | None = None,
    delivery_id: str = "msg_test",
    next_attempt_at: datetime | None = None,
    kind: str = "result",
) -> CallbackDelivery:
    attempt = (
        DeliveryAttempt(number=number, started_at=when, status_code=status_code, latency_ms=12.5, error=error)
        if number is not None
        else None
    )
    payload = CallbackDeliveryPayload(
        delivery_id=delivery_id,
        kind=kind,  # type: ignore[arg-type]
        state=state,  # type: ignore[arg-type]
        url=call.payload.callback_url or "https://partner.example.com/callback",
        attempt=attempt,
        next_attempt_at=next_attempt_at,
    )
    return CallbackDelivery(**_envelope(call, "notifier", when), payload=payload)


def lifecycle(call: CallIngested) -> list[Any]:
    """A call's events from ingestion to a delivered callback, in pipeline order."""
    return [
        call,
        started(call, "fetch", at(1)),
        fetched(call, at(2)),
        started(call, "analyze", at(3)),
        analyzed(call, at(10)),
        delivery(call, at(11), "pending"),
        delivery(call, at(12), "retrying", number=1, status_code=503, error="HTTP 503", next_attempt_at=at(14)),
        delivery(call, at(14), "delivered", number=2, status_code=200),
    ]
