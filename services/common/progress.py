"""Progress events (``calls.progress.v1``): a worker says it started on a call, best-effort.

Progress only feeds the status API, so it must never fail or slow a call: ``announce_stage``
gives up after ``ANNOUNCE_TIMEOUT_S`` and logs, and ``progress_announcer`` sends without waiting
for Kafka's acknowledgement (a send that fails later is logged too).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Literal
from uuid import UUID

from fastapi import FastAPI

from schemas.events import AnyEvent, CallStageStarted, CallStageStartedPayload, dump_event, follow_up
from services.common import tracing

log = logging.getLogger(__name__)

Announce = Callable[[AnyEvent], Awaitable[None]]
ANNOUNCE_TIMEOUT_S = 5.0


async def announce_stage(
    event: AnyEvent,
    stage: Literal["fetch", "analyze"],
    announce: Announce | None,
    *,
    event_id: UUID,
    source: str,
) -> None:
    """Announce that ``stage`` started on ``event``'s call (no-op without ``announce``)."""
    if announce is None:
        return
    started = CallStageStarted(
        **follow_up(event, event_id=event_id, source=source), payload=CallStageStartedPayload(stage=stage)
    )
    try:
        await asyncio.wait_for(announce(started), ANNOUNCE_TIMEOUT_S)
    except Exception as exc:
        log.warning(
            "progress event not published",
            extra={"partner_id": event.partner_id, "call_id": event.call_id, "error": type(exc).__name__},
        )


def progress_announcer(app: FastAPI, topic: str) -> Announce:
    """``announce`` for a worker's handlers: sends with the worker's producer (``app.state.worker``)
    without waiting for the acknowledgement."""

    def sent(ack: asyncio.Future[object]) -> None:
        if not ack.cancelled() and ack.exception() is not None:
            log.warning("progress event not published", extra={"error": type(ack.exception()).__name__})

    async def announce(event: AnyEvent) -> None:
        worker = getattr(app.state, "worker", None)
        producer = worker.producer if worker is not None else None
        if producer is None:
            raise RuntimeError("the worker's producer is not started")
        ack = await producer.send(topic, dump_event(event), key=event.key(), headers=tracing.current_headers())
        ack.add_done_callback(sent)

    return announce
