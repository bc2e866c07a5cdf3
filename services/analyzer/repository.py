"""All SQL of the analyzer (schema ``analyzer``).

The analyzer owns one kind of blob: the bleeped copy of a recording (``redacted_sha256``), which
it deletes on erasure and at the recording's retention expiry. Blobs are content addressed, so a
copy is deleted only when no other live row holds the same digest, under the digest's advisory
lock (``services.common.erasure.lock_blob`` and ``release_blob``, the fetcher's rule for
originals). The fetcher's originals are never checked here: a bleeped copy is an MP3 this service
encoded with a tone in it, which no partner's recording equals in practice, so neither service
ever deletes the other's blob by sharing a digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from schemas.events import CallErased
from services.common.blobs import BlobStore
from services.common.erasure import begin_erasure, is_erased, lock_blob, lock_live_call, release_blob


@dataclass(frozen=True)
class Stored:
    """The ``calls.analyzed`` event stored for a call, as JSON, and whether its transcript was
    purged under the tenant's retention (then it is no longer the event to republish)."""

    event: dict[str, Any]
    transcript_purged: bool


# Another row still holding the copy: recording not expired at $2 (the purge clears the digest).
_SHARED = (
    "SELECT EXISTS (SELECT 1 FROM analyses WHERE redacted_sha256 = $1"
    " AND (recording_expires_at IS NULL OR recording_expires_at > $2))"
)


async def _release_all(conn: asyncpg.Connection, blobs: BlobStore, digests: set[str], now: datetime) -> int:
    removed = 0
    for sha256 in sorted(digests):  # one lock order: no deadlock
        await lock_blob(conn, sha256)
        removed += await release_blob(conn, blobs, sha256, still_held=_SHARED, now=now)
    return removed


class AnalyzerRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def find(self, partner_id: str, call_id: str) -> Stored | None:
        """The ``calls.analyzed`` event already published for this call."""
        row = await self._pool.fetchrow(
            "SELECT event, transcript_purged_at FROM analyses WHERE partner_id = $1 AND call_id = $2",
            partner_id,
            call_id,
        )
        if row is None:
            return None
        return Stored(dict(row["event"]), row["transcript_purged_at"] is not None)

    async def is_erased(self, partner_id: str, call_id: str) -> bool:
        return await is_erased(self._pool, partner_id, call_id)

    async def record(
        self,
        partner_id: str,
        call_id: str,
        event: dict[str, Any],
        *,
        transcript_expires_at: datetime | None,
        results_expires_at: datetime | None,
        redacted_sha256: str | None = None,
        recording_expires_at: datetime | None = None,
        blobs: BlobStore | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Store the call's analysis, unless the call was erased meanwhile (False: nothing stored,
        nothing must be published). The bleeped copy ``redacted_sha256`` (already in ``blobs``)
        is recorded with it; when it is not recorded (an erased call, or another delivery stored
        its analysis first with another copy) it is deleted unless a live row holds it."""
        async with self._pool.acquire() as conn, conn.transaction():
            # Locks in one order everywhere (the call or its row, then the blob): no deadlock
            # with an erasure or a purge.
            live = await lock_live_call(conn, partner_id, call_id)
            if redacted_sha256 is not None:
                await lock_blob(conn, redacted_sha256)
            if not live:
                await self._drop_copy(conn, blobs, redacted_sha256, now)
                return False
            stored = await conn.fetchval(
                "INSERT INTO analyses (partner_id, call_id, event, transcript_expires_at, results_expires_at,"
                " redacted_sha256, recording_expires_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (partner_id, call_id) DO NOTHING RETURNING true",
                partner_id,
                call_id,
                event,
                transcript_expires_at,
                results_expires_at,
                redacted_sha256,
                recording_expires_at,
            )
            if not stored:
                await self._drop_copy(conn, blobs, redacted_sha256, now)
            return True

    @staticmethod
    async def _drop_copy(
        conn: asyncpg.Connection, blobs: BlobStore | None, sha256: str | None, now: datetime | None
    ) -> None:
        if sha256 is not None and blobs is not None:
            await release_blob(conn, blobs, sha256, still_held=_SHARED, now=now or datetime.now(UTC))

    async def erase(self, event: CallErased, blobs: BlobStore, now: datetime) -> dict[str, int]:
        """Write the call's tombstone and delete its analysis and its bleeped copy. Idempotent."""
        async with self._pool.acquire() as conn, conn.transaction():
            await begin_erasure(conn, event.partner_id, event.call_id, event.payload.erasure_id)
            deleted = await conn.fetch(
                "DELETE FROM analyses WHERE partner_id = $1 AND call_id = $2 RETURNING redacted_sha256",
                event.partner_id,
                event.call_id,
            )
            digests = {r["redacted_sha256"] for r in deleted if r["redacted_sha256"] is not None}
            removed = await _release_all(conn, blobs, digests, now)
            return {"analyses": len(deleted), "blobs": removed}

    async def purge(self, now: datetime, blobs: BlobStore, *, batch: int = 500) -> dict[str, int]:
        """Apply retention at ``now``: delete the analyses whose results expired, remove the
        transcript from those whose transcript expired (``transcript_purged_at`` set), and delete
        the bleeped copies whose recording expired (the digest cleared, the copy taken out of the
        stored event). Idempotent; one batch per transaction, so none holds many rows for long."""
        results = transcripts = recordings = removed = 0
        while True:
            async with self._pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    "WITH due AS (SELECT partner_id, call_id FROM analyses WHERE results_expires_at <= $1"
                    " LIMIT $2 FOR UPDATE SKIP LOCKED)"
                    " DELETE FROM analyses a USING due"
                    " WHERE a.partner_id = due.partner_id AND a.call_id = due.call_id RETURNING a.redacted_sha256",
                    now,
                    batch,
                )
                digests = {r["redacted_sha256"] for r in rows if r["redacted_sha256"] is not None}
                removed += await _release_all(conn, blobs, digests, now)
            results += len(rows)
            if len(rows) < batch:
                break
        while True:
            async with self._pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    "WITH due AS (SELECT partner_id, call_id, redacted_sha256 FROM analyses"
                    " WHERE recording_expires_at <= $1 AND redacted_sha256 IS NOT NULL"
                    " LIMIT $2 FOR UPDATE SKIP LOCKED)"
                    " UPDATE analyses a SET redacted_sha256 = NULL, event = a.event #- '{payload,redacted_recording}'"
                    " FROM due WHERE a.partner_id = due.partner_id AND a.call_id = due.call_id"
                    " RETURNING due.redacted_sha256",
                    now,
                    batch,
                )
                removed += await _release_all(conn, blobs, {r["redacted_sha256"] for r in rows}, now)
            recordings += len(rows)
            if len(rows) < batch:
                break
        while True:
            n = await self._pool.fetchval(
                "WITH due AS (SELECT partner_id, call_id FROM analyses"
                " WHERE transcript_expires_at <= $1 AND transcript_purged_at IS NULL"
                " LIMIT $2 FOR UPDATE SKIP LOCKED),"
                " cut AS (UPDATE analyses a SET event = a.event #- '{payload,transcript}', transcript_purged_at = $1"
                " FROM due WHERE a.partner_id = due.partner_id AND a.call_id = due.call_id RETURNING 1)"
                " SELECT count(*) FROM cut",
                now,
                batch,
            )
            transcripts += n
            if n < batch:
                break
        return {"analyses": results, "transcripts": transcripts, "recordings": recordings, "blobs": removed}
