"""Data protection mechanisms every service shares: erasure tombstones, the per-call lock that
orders an erasure against work in flight, the confirmation event, and the purge schedule.

Each service keeps, in its own schema, an ``erased_calls`` table (migration ``040``): one row per
erased call, without personal data (partner, call id, erasure id, when). A service checks it,
under ``lock_call``, before it stores or publishes anything about a call, and an erasure takes the
same lock before it deletes and writes the tombstone; so whichever comes second sees the other:
work that finishes after the erasure stores nothing, and an erasure that comes after the work
deletes what it stored. Tombstones are kept for ever (they are tiny), so no event replayed from
Kafka, however late, can bring an erased call back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import asyncpg

from schemas.analysis import DataProtection
from schemas.events import (
    CallErased,
    CallErasureConfirmed,
    CallErasureConfirmedPayload,
    CallIngestedPayload,
    ErasureService,
    call_key,
    follow_up,
)
from services.common.backoff import Backoff
from services.common.blobs import BlobStore

log = logging.getLogger(__name__)

_CONFIRMATION_NAMESPACE = uuid.UUID("0c2f5a7e-91d4-4b8e-a6f3-5d8e1b2c4a90")


# The advisory lock of a call: its key (``call_key``) hashed with a seed of our own. Both
# statements must take the same lock for the same call.
_LOCK_ONE = "SELECT pg_advisory_xact_lock(hashtextextended($1, 7340))"
_LOCK_MANY = """
SELECT count(pg_advisory_xact_lock(hashtextextended(k, 7340)))
FROM (SELECT k FROM unnest($1::text[]) WITH ORDINALITY AS t(k, n) ORDER BY n) AS ordered
"""


async def lock_call(conn: asyncpg.Connection, partner_id: str, call_id: str) -> None:
    """Serialise, until the end of the current transaction, every transaction that stores data
    of this call or erases it (a transaction-scoped advisory lock on the call's key)."""
    await conn.execute(_LOCK_ONE, call_key(partner_id, call_id))


async def lock_blob(conn: asyncpg.Connection, sha256: str) -> None:
    """Serialise, until the end of the transaction, whatever stores or deletes this content in
    the (content-addressed) blob store: several calls may hold one blob."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7341))", f"blob/{sha256}")


async def release_blob(
    conn: asyncpg.Connection, blobs: BlobStore, sha256: str, *, still_held: str, now: datetime
) -> int:
    """Delete the blob unless another live row still holds it (``still_held``: the service's
    query, ``$1`` the digest and ``$2`` now, answering whether one does); the caller holds the
    blob's lock. 1 if a blob was deleted."""
    if await conn.fetchval(still_held, sha256, now):
        return 0
    return 1 if await blobs.delete(sha256) else 0


async def lock_live_call(conn: asyncpg.Connection, partner_id: str, call_id: str) -> bool:
    """``lock_call``, then whether the call may still get data (False: it was erased): what a
    transaction about to store something of the call starts with."""
    await lock_call(conn, partner_id, call_id)
    return not await is_erased(conn, partner_id, call_id)


async def lock_calls(conn: asyncpg.Connection, calls: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """``lock_call`` for many (partner_id, call_id) at once, in key order (so concurrent
    transactions cannot deadlock), in one round trip; returns those among them that are erased."""
    unique = sorted({call_key(p, c): (p, c) for p, c in calls}.items())
    if not unique:
        return set()
    await conn.fetchval(_LOCK_MANY, [k for k, _ in unique])
    rows = await conn.fetch(
        "SELECT e.partner_id, e.call_id FROM erased_calls e"
        " JOIN unnest($1::text[], $2::text[]) AS t(partner_id, call_id) USING (partner_id, call_id)",
        [p for _, (p, _c) in unique],
        [c for _, (_p, c) in unique],
    )
    return {(r["partner_id"], r["call_id"]) for r in rows}


async def is_erased(conn: asyncpg.Connection | asyncpg.Pool, partner_id: str, call_id: str) -> bool:
    """Whether the call was erased (its tombstone exists in this service's schema)."""
    found = await conn.fetchval(
        "SELECT true FROM erased_calls WHERE partner_id = $1 AND call_id = $2", partner_id, call_id
    )
    return bool(found)


async def begin_erasure(conn: asyncpg.Connection, partner_id: str, call_id: str, erasure_id: uuid.UUID) -> bool:
    """What every service's erasure of a call starts with, inside its transaction: the call's
    lock, then its tombstone. False if the tombstone was already there (a redelivered erasure)."""
    await lock_call(conn, partner_id, call_id)
    inserted = await conn.fetchval(
        "INSERT INTO erased_calls (partner_id, call_id, erasure_id, erased_at) VALUES ($1, $2, $3, now())"
        " ON CONFLICT (partner_id, call_id) DO NOTHING RETURNING true",
        partner_id,
        call_id,
        erasure_id,
    )
    return bool(inserted)


def confirmation(event: CallErased, service: ErasureService, removed: dict[str, int]) -> CallErasureConfirmed:
    """The ``calls.erasure_confirmed.v1`` a service publishes once it removed what it held of the
    call; its id is derived from the erasure, call and service, so a redelivery publishes the
    same event (the gateway counts each service once)."""
    event_id = uuid.uuid5(
        _CONFIRMATION_NAMESPACE, f"{event.payload.erasure_id}/{event.partner_id}/{event.call_id}/{service}"
    )
    return CallErasureConfirmed(
        **follow_up(event, event_id=event_id, source=service),
        payload=CallErasureConfirmedPayload(erasure_id=event.payload.erasure_id, service=service, removed=removed),
    )


def retention_expiries(ingested: CallIngestedPayload) -> dict[str, datetime | None]:
    """When the call's recording, transcript and results expire (None: never), under the
    retention snapshotted with the call when it arrived (the defaults for events older than the
    snapshot)."""
    snapshot = ingested.analysis_config
    protection = snapshot.config.data_protection if snapshot is not None else DataProtection()
    return protection.retention.expiries(ingested.received_at)


Purge = Callable[[datetime], Awaitable[dict[str, int]]]


async def run_purges(service: str, purge: Purge, *, interval_s: float, max_backoff_s: float = 300.0) -> None:
    """Run ``purge(now)`` every ``interval_s`` until cancelled (the service's lifespan owns the
    task). A purge is idempotent: it removes what expired and was not removed yet, so a failed
    run is simply retried (with the shared back-off) and nothing is ever purged twice."""
    retries = Backoff(min(interval_s, 5.0), max_backoff_s)
    failures = 0
    while True:
        try:
            removed = await purge(datetime.now(UTC))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures += 1
            delay = retries.delay(failures)
            log.warning("retention purge failed", extra={"service": service, "error": type(exc).__name__})
            await asyncio.sleep(delay)
            continue
        failures = 0
        if any(removed.values()):
            log.info("retention purge", extra={"service": service, "removed": removed})
        await asyncio.sleep(interval_s)


def start_purges(stack: contextlib.AsyncExitStack, service: str, purge: Purge, *, interval_s: float) -> None:
    """Run the service's retention purge on its schedule for as long as ``stack`` is open."""
    task = asyncio.create_task(run_purges(service, purge, interval_s=interval_s), name=f"purge-{service}")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(stop)
