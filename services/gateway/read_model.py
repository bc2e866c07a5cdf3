"""The status read model: the gateway's own view of every call, built from the pipeline's events.

``project`` is the consumer's handler (group ``gateway-read-model``): a plain async function that
turns one event into a ``StatusChange`` (plus a ``DeliveryChange`` for callback deliveries) and
folds it into the gateway's tables. Events of different topics are not ordered relative to each
other, and Kafka may deliver any of them again, so the fold is monotonic (see
``repository._APPLY_CHANGE``): a call's status only moves forward, a terminal status never
changes, and a redelivered event changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from schemas.analysis import CallAnalysis
from schemas.events import (
    AnyEvent,
    CallAnalyzed,
    CallbackDelivery,
    CallErased,
    CallErasureConfirmed,
    CallFailed,
    CallFetched,
    CallIngested,
    CallIngestedPayload,
    CallStageStarted,
)
from services.common.erasure import retention_expiries
from services.gateway.repository import DeliveryChange, StatusChange

#: The result's fields: exactly the callback's analysis fields, then the additive ones.
RESULT_FIELDS = (*CallAnalysis.model_fields, "transcript", "engines", "config_id")
#: Stages whose failure ends the call's processing (a notify failure is a delivery matter).
_PROCESSING_STAGES = {"ingest", "fetch", "analyze"}
_STARTED = {"fetch": "fetching", "analyze": "analyzing"}


class ErasureStore(Protocol):
    async def call_erased(self, partner_id: str, call_id: str, erasure_id: UUID) -> dict[str, int]: ...
    async def record_confirmation(
        self, erasure_id: UUID, call_id: str, service: str, removed: dict[str, int]
    ) -> bool: ...


class ReadModelStore(ErasureStore, Protocol):
    async def apply_change(self, change: StatusChange, delivery: DeliveryChange | None = None) -> None: ...


class BatchRepository(ErasureStore, Protocol):
    async def apply_changes(self, changes: Sequence[tuple[StatusChange, DeliveryChange | None]]) -> None: ...

    async def apply_change(self, change: StatusChange, delivery: DeliveryChange | None = None) -> None: ...


class BatchingStore:
    """A ``ReadModelStore`` that folds the changes of events handled at the same time in one
    transaction: at ingestion's rate (thousands of calls per second) one round trip and one
    commit per event would cost PostgreSQL more than ingestion itself.

    ``apply_change`` returns once its change is committed, so the consumer still commits an
    offset only after its effect. A batch is flushed when it has ``max_batch`` changes or
    ``max_delay_s`` after its first; its rows are written in key order, so two gateway processes
    folding overlapping calls lock rows in the same order and cannot deadlock. If a batch fails,
    its changes are applied one by one, so one bad change fails only its own event.
    """

    def __init__(self, repo: BatchRepository, *, max_batch: int = 256, max_delay_s: float = 0.005) -> None:
        self._repo = repo
        self._max_batch = max_batch
        self._max_delay_s = max_delay_s
        self._pending: list[tuple[StatusChange, DeliveryChange | None, asyncio.Future[None]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._flushes: set[asyncio.Task[None]] = set()

    async def call_erased(self, partner_id: str, call_id: str, erasure_id: UUID) -> dict[str, int]:
        """Erasures are rare: written at once, outside the batches (the call's lock orders them)."""
        return await self._repo.call_erased(partner_id, call_id, erasure_id)

    async def record_confirmation(self, erasure_id: UUID, call_id: str, service: str, removed: dict[str, int]) -> bool:
        return await self._repo.record_confirmation(erasure_id, call_id, service, removed)

    async def apply_change(self, change: StatusChange, delivery: DeliveryChange | None = None) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((change, delivery, done))
        if len(self._pending) >= self._max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._max_delay_s, self._flush)
        await done

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.create_task(self._write(batch))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _write(self, batch: list[tuple[StatusChange, DeliveryChange | None, asyncio.Future[None]]]) -> None:
        batch.sort(key=lambda item: (item[0].partner_id, item[0].call_id))
        try:
            await self._repo.apply_changes([(change, delivery) for change, delivery, _ in batch])
        except Exception:
            for change, delivery, done in batch:
                try:
                    await self._repo.apply_change(change, delivery)
                except Exception as exc:
                    if not done.done():
                        done.set_exception(exc)
                else:
                    if not done.done():
                        done.set_result(None)
            return
        for _, _, done in batch:
            if not done.done():
                done.set_result(None)


def expiries_of(ingested: CallIngestedPayload | None) -> dict[str, datetime | None]:
    """When the call's recording, transcript and results expire (by part), as every service
    reckons it (``retention_expiries``); empty when the event carries no ingested call."""
    return {} if ingested is None else retention_expiries(ingested)


def _base(event: AnyEvent, status: str, ingested: CallIngestedPayload | None, **fields: Any) -> StatusChange:
    expiries = expiries_of(ingested)
    return StatusChange(
        recording_expires_at=expiries.get("recording"),
        transcript_expires_at=expiries.get("transcript"),
        results_expires_at=expiries.get("results"),
        partner_id=event.partner_id,
        call_id=event.call_id,
        tenant_id=event.tenant_id,
        subtenant_id=event.subtenant_id,
        status=status,
        at=event.occurred_at,
        received_at=ingested.received_at if ingested else None,
        agent_id=ingested.agent.id if ingested else None,
        callback_url=ingested.callback_url if ingested else None,
        **fields,
    )


def result_of(event: CallAnalyzed) -> dict[str, Any]:
    """The result the API shows: ``call_id`` and the callback's analysis fields, plus the
    transcript, the engines and the configuration id."""
    body = event.payload.model_dump(mode="json", include=set(RESULT_FIELDS))
    return {"call_id": event.call_id, **{name: body.get(name) for name in RESULT_FIELDS}}


def changes_of(event: AnyEvent) -> tuple[StatusChange, DeliveryChange | None] | None:
    """What ``event`` says about its call; None for events the read model does not follow."""
    if isinstance(event, CallIngested):
        return _base(event, "received", event.payload), None
    if isinstance(event, CallStageStarted):
        return _base(event, _STARTED[event.payload.stage], None), None
    if isinstance(event, CallFetched):
        return _base(event, "fetched", event.payload.ingested), None
    if isinstance(event, CallAnalyzed):
        analyzed = event.payload
        change = _base(
            event,
            "completed",
            analyzed.ingested,
            intent=analyzed.intent,
            quality_score=analyzed.quality_score,
            result=result_of(event),
        )
        return change, None
    if isinstance(event, CallFailed):
        failed = event.payload
        if failed.stage not in _PROCESSING_STAGES:
            # Still recorded (tenancy, agent), but a failure after analysis is the callback's
            # state, shown in the callback block, and must not turn a completed call failed.
            return _base(event, "received", failed.ingested), None
        error = {"stage": failed.stage, "code": failed.code, "message": failed.message}
        return _base(event, "failed", failed.ingested, error=error), None
    if isinstance(event, CallbackDelivery):
        reported = event.payload
        attempt = reported.attempt
        delivery = DeliveryChange(
            delivery_id=reported.delivery_id,
            kind=reported.kind,
            state=reported.state,
            url=reported.url,
            next_attempt_at=reported.next_attempt_at,
            at=event.occurred_at,
            # Additive field (newer notifiers); read leniently so older events still fold.
            error=getattr(reported, "error", None),
            attempt_number=attempt.number if attempt else None,
            attempt_started_at=attempt.started_at if attempt else None,
            attempt_status_code=attempt.status_code if attempt else None,
            attempt_latency_ms=attempt.latency_ms if attempt else None,
            attempt_error=attempt.error if attempt else None,
            redelivery_command_id=getattr(reported, "redelivery_command_id", None),
        )
        return _base(event, "received", None), delivery
    return None


async def project(event: AnyEvent, store: ReadModelStore) -> Sequence[AnyEvent]:
    """Consumer handler: fold ``event`` into the read model; publishes nothing.

    ``calls.erased.v1``: remove again whatever a projection racing the erasure wrote, and record
    the gateway's confirmation; ``calls.erasure_confirmed.v1``: record the other services'."""
    if isinstance(event, CallErased):
        await store.call_erased(event.partner_id, event.call_id, event.payload.erasure_id)
        return []
    if isinstance(event, CallErasureConfirmed):
        confirmed = event.payload
        await store.record_confirmation(confirmed.erasure_id, event.call_id, confirmed.service, confirmed.removed)
        return []
    changes = changes_of(event)
    if changes is not None:
        await store.apply_change(*changes)
    return []
