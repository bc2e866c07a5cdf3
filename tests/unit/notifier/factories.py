"""Events the notifier consumes, as the analyzer, the fetcher and the gateway publish them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from schemas.events import (
    CallAnalyzed,
    CallbackRedeliverRequested,
    CallbackRedeliverRequestedPayload,
    CallFailed,
    CallFailedPayload,
    follow_up,
)
from tests.factories import analysis_payload, ingested_event


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
        **follow_up(ingested, event_id=uuid.uuid4(), source="analyzer"),
        payload=analysis_payload(ingested.payload),
    )


def failed_event(
    callback_url: str | None, *, call_id: str | None = None, partner_id: str = "ptn_test", stage: str = "fetch"
) -> CallFailed:
    ingested = ingested_event(call_id, partner_id=partner_id, callback_url=callback_url)
    return CallFailed(
        **follow_up(ingested, event_id=uuid.uuid4(), source="fetcher"),
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
