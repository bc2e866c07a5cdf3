"""All SQL of the analyzer (schema ``analyzer``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from schemas.events import CallErased
from services.common.erasure import is_erased, lock_call, lock_live_call, record_erased


@dataclass(frozen=True)
class Stored:
    """The ``calls.analyzed`` event stored for a call, as JSON, and whether its transcript was
    purged under the tenant's retention (then it is no longer the event to republish)."""

    event: dict[str, Any]
    transcript_purged: bool


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
    ) -> bool:
        """Store the call's analysis, unless the call was erased meanwhile (False: nothing stored,
        nothing must be published)."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await lock_live_call(conn, partner_id, call_id):
                return False
            await conn.execute(
                "INSERT INTO analyses (partner_id, call_id, event, transcript_expires_at, results_expires_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (partner_id, call_id) DO NOTHING",
                partner_id,
                call_id,
                event,
                transcript_expires_at,
                results_expires_at,
            )
            return True

    async def erase(self, event: CallErased) -> dict[str, int]:
        """Write the call's tombstone and delete its analysis. Idempotent."""
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_call(conn, event.partner_id, event.call_id)
            await record_erased(conn, event)
            deleted = await conn.fetch(
                "DELETE FROM analyses WHERE partner_id = $1 AND call_id = $2 RETURNING 1",
                event.partner_id,
                event.call_id,
            )
            return {"analyses": len(deleted)}

    async def purge(self, now: datetime, *, batch: int = 500) -> dict[str, int]:
        """Apply retention at ``now``: delete the analyses whose results expired, and remove the
        transcript from those whose transcript expired (``transcript_purged_at`` set). Idempotent;
        one batch per statement, so no transaction holds many rows for long."""
        results = transcripts = 0
        while True:
            n = await self._pool.fetchval(
                "WITH due AS (SELECT partner_id, call_id FROM analyses WHERE results_expires_at <= $1"
                " LIMIT $2 FOR UPDATE SKIP LOCKED),"
                " gone AS (DELETE FROM analyses a USING due"
                " WHERE a.partner_id = due.partner_id AND a.call_id = due.call_id RETURNING 1)"
                " SELECT count(*) FROM gone",
                now,
                batch,
            )
            results += n
            if n < batch:
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
        return {"analyses": results, "transcripts": transcripts}
