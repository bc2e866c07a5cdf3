"""The notifier's Kafka side as plain async functions: record what must be delivered.

A handler never sends a callback itself: it records the delivery (the body bytes, built once)
and its ``callbacks.deliveries.v1`` "pending" event in one transaction, and returns. The
dispatcher (``dispatcher.py``) sends due deliveries from the table, so a slow endpoint never holds
a Kafka partition and retries survive restarts. Handlers are idempotent: a redelivered event finds
its delivery and changes nothing; a redeliver command is applied once per event id.

Erasure (``calls.erased.v1``): the call's deliveries, attempts and queued events are deleted and a
tombstone written under the call's lock, so a late ``calls.analyzed`` or ``calls.failed`` records
no delivery and sends no callback. Bodies are cleared at their retention's end once final
(``purge``); a purged body cannot be redelivered, and the command is answered saying so.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from schemas.events import (
    TOPIC_DELIVERIES,
    AnyEvent,
    CallAnalyzed,
    CallbackDelivery,
    CallbackDeliveryPayload,
    CallbackRedeliverRequested,
    CallErased,
    CallFailed,
    DeliveryAttempt,
    call_key,
    dump_event,
)
from services.common.erasure import confirmation, retention_expiries
from services.notifier.callbacks import failure_body, result_body
from services.notifier.repository import Announce, AttemptRecord, Delivery, NewDelivery, NotifierRepository, OutboxEvent

log = logging.getLogger(__name__)

SOURCE = "notifier"

#: The answer to a redeliver command for a delivery whose body the retention purge removed.
PURGED_ERROR = "purged: the callback body was removed under the tenant's retention"


@dataclass(frozen=True)
class NotifyDeps:
    repo: NotifierRepository
    topic: Callable[[str], str]  # base topic name -> full name (the prefix)
    recorded: Callable[[], None] = lambda: None  # wakes the dispatcher and the outbox relay


def new_delivery_id() -> str:
    """A webhook-id: ``msg_`` + 128 random bits."""
    return "msg_" + secrets.token_hex(16)


def announce(
    topic: Callable[[str], str],
    attempt: AttemptRecord | None = None,
    error: str | None = None,
    command_id: uuid.UUID | None = None,
) -> Announce:
    """Builds the ``callbacks.deliveries.v1`` event for a delivery's new state (``command_id``:
    the redelivery command it answers)."""

    def build(d: Delivery) -> OutboxEvent:
        event = CallbackDelivery(
            event_id=uuid.uuid4(),
            occurred_at=datetime.now(UTC),
            partner_id=d.partner_id,
            tenant_id=d.tenant_id,
            subtenant_id=d.subtenant_id,
            call_id=d.call_id,
            source=SOURCE,
            payload=CallbackDeliveryPayload(
                delivery_id=d.delivery_id,
                kind="result" if d.kind == "result" else "failure",
                state=_state(d.state),
                url=d.url,
                attempt=None
                if attempt is None
                else DeliveryAttempt(
                    number=attempt.number,
                    started_at=attempt.started_at,
                    status_code=attempt.status_code,
                    latency_ms=attempt.latency_ms,
                    error=attempt.error,
                ),
                next_attempt_at=d.next_attempt_at if d.state in ("pending", "retrying") else None,
                error=error,
                redelivery_command_id=command_id,
            ),
        )
        return OutboxEvent(topic(TOPIC_DELIVERIES), call_key(d.partner_id, d.call_id), dump_event(event))

    return build


DeliveryState = Literal["pending", "retrying", "delivered", "failed"]
_STATES: tuple[DeliveryState, ...] = ("pending", "retrying", "delivered", "failed")


def _state(value: str) -> DeliveryState:
    for state in _STATES:
        if state == value:
            return state
    raise ValueError(f"unknown delivery state {value!r}")


async def handle_event(event: AnyEvent, deps: NotifyDeps) -> list[AnyEvent]:
    """Route one consumed event; the notifier's own events go out through its outbox, except the
    erasure confirmation, returned for the consumer runtime to publish."""
    if isinstance(event, CallErased):
        return await handle_erased(event, deps)
    if isinstance(event, CallAnalyzed):
        await handle_analyzed(event, deps)
    elif isinstance(event, CallFailed):
        await handle_failed(event, deps)
    elif isinstance(event, CallbackRedeliverRequested):
        await handle_redeliver(event, deps)
    return []


async def handle_analyzed(event: CallAnalyzed, deps: NotifyDeps) -> bool:
    """Record the result callback of a completed call (if it asked for one)."""
    url = event.payload.ingested.callback_url
    if not url:
        return False
    body = result_body(event.call_id, event.payload, datetime.now(UTC))
    # The body holds the transcript and the results: it goes with whichever expires first.
    expiries = retention_expiries(event.payload.ingested)
    ends = [at for at in (expiries["transcript"], expiries["results"]) if at is not None]
    return await _record(event, "result", url, body, deps, body_expires_at=min(ends) if ends else None)


async def handle_failed(event: CallFailed, deps: NotifyDeps) -> bool:
    """Record the failure callback of a call that could not be processed.

    Nothing is sent when the event carries no ingested call (events older than that field) or no
    callback_url, or when the failing stage is the notifier itself: its endpoint is what failed.
    """
    ingested = event.payload.ingested
    if ingested is None or not ingested.callback_url or event.payload.stage == "notify":
        return False
    body = failure_body(event.call_id, event.payload, datetime.now(UTC))
    expires = retention_expiries(ingested)["results"]
    return await _record(event, "failure", ingested.callback_url, body, deps, body_expires_at=expires)


async def _record(
    event: CallAnalyzed | CallFailed,
    kind: str,
    url: str,
    body: bytes,
    deps: NotifyDeps,
    *,
    body_expires_at: datetime | None,
) -> bool:
    new = NewDelivery(
        delivery_id=new_delivery_id(),
        partner_id=event.partner_id,
        call_id=event.call_id,
        kind=kind,
        tenant_id=event.tenant_id,
        subtenant_id=event.subtenant_id,
        url=url,
        body=body,
        source_at=event.occurred_at,
        received_at=event.payload.ingested.received_at if event.payload.ingested is not None else None,
        body_expires_at=body_expires_at,
    )
    created = await deps.repo.create_delivery(new, announce(deps.topic))
    if created:
        deps.recorded()
        log.info(
            "delivery recorded",
            extra={
                "partner_id": event.partner_id,
                "call_id": event.call_id,
                "kind": kind,
                "delivery_id": new.delivery_id,
            },
        )
    return created


async def handle_redeliver(event: CallbackRedeliverRequested, deps: NotifyDeps) -> list[str]:
    """Send the call's finished callbacks again: pending, fresh attempt budget, same webhook-id."""
    reset = await deps.repo.redeliver(
        event.event_id,
        event.partner_id,
        event.call_id,
        announce(deps.topic, command_id=event.event_id),
        purged=announce(deps.topic, error=PURGED_ERROR, command_id=event.event_id),
    )
    if reset:
        deps.recorded()
    log.info(
        "redelivery requested",
        extra={
            "partner_id": event.partner_id,
            "call_id": event.call_id,
            "requested_by": event.payload.requested_by,
            "deliveries": reset,
        },
    )
    return reset


async def handle_erased(event: CallErased, deps: NotifyDeps) -> list[AnyEvent]:
    """Delete what the notifier holds of the call and confirm; a redelivered erasure removes
    nothing more and confirms again (same event id)."""
    removed = await deps.repo.erase(event)
    log.info("call erased", extra={"partner_id": event.partner_id, "call_id": event.call_id, "removed": removed})
    return [confirmation(event, "notifier", removed)]


async def purge(now: datetime, repo: NotifierRepository) -> dict[str, int]:
    """The notifier's retention purge: bodies of final deliveries whose retention ended by ``now``."""
    return await repo.purge_bodies(now)
