"""All SQL of the fetcher (schema ``fetcher``).

Blobs are content addressed: calls with the same recording (even of different partners) share
one blob, so a blob is deleted only when no other *live* row (not purged, not yet expired) holds
its sha256. Every path that stores, erases or purges a blob takes the blob's advisory lock
(``lock_blob``) first, so a fetch recording a row and an erasure or purge deleting the same
content are ordered: whichever comes second sees what the first did.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from schemas.events import CallErased
from services.common.blobs import BlobStore
from services.common.erasure import begin_erasure, is_erased, lock_blob, lock_live_call, release_blob
from services.fetcher.errors import BlobVanished


@dataclass(frozen=True)
class Fetch:
    sha256: str
    blob_uri: str
    bytes: int
    container: str
    codec: str
    duration_s: float
    channels: int
    sample_rate: int


@dataclass(frozen=True)
class Known:
    """A call's recorded fetch, and when its recording was purged (None: still kept)."""

    fetch: Fetch
    purged_at: datetime | None


# Another row still holding the content: neither purged nor expired at $2.
_SHARED = (
    "SELECT EXISTS (SELECT 1 FROM fetches WHERE sha256 = $1 AND recording_purged_at IS NULL"
    " AND (recording_expires_at IS NULL OR recording_expires_at > $2))"
)


class FetcherRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def find(self, partner_id: str, call_id: str) -> Known | None:
        row = await self._pool.fetchrow(
            "SELECT sha256, blob_uri, bytes, container, codec, duration_s, channels, sample_rate,"
            " recording_purged_at FROM fetches WHERE partner_id = $1 AND call_id = $2",
            partner_id,
            call_id,
        )
        if row is None:
            return None
        values = dict(row)
        purged_at = values.pop("recording_purged_at")
        return Known(Fetch(**values), purged_at)

    async def is_erased(self, partner_id: str, call_id: str) -> bool:
        return await is_erased(self._pool, partner_id, call_id)

    async def record(
        self,
        partner_id: str,
        call_id: str,
        fetch: Fetch,
        *,
        recording_expires_at: datetime | None,
        blobs: BlobStore,
        now: datetime,
    ) -> bool:
        """Record the call's fetch, unless the call was erased meanwhile: then nothing is stored,
        the blob just stored is deleted (unless another live row holds the same content) and
        False is returned. Raises ``BlobVanished`` when the blob was deleted by another call's
        erasure or purge between storing it and this record (the message is retried)."""
        async with self._pool.acquire() as conn, conn.transaction():
            live = await lock_live_call(conn, partner_id, call_id)
            await lock_blob(conn, fetch.sha256)
            if not live:
                await release_blob(conn, blobs, fetch.sha256, still_held=_SHARED, now=now)
                return False
            if not await blobs.exists(fetch.sha256):
                raise BlobVanished("the stored recording was deleted before it was recorded")
            await conn.execute(
                "INSERT INTO fetches (partner_id, call_id, sha256, blob_uri, bytes, container, codec, duration_s,"
                " channels, sample_rate, recording_expires_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                " ON CONFLICT (partner_id, call_id) DO NOTHING",
                partner_id,
                call_id,
                fetch.sha256,
                fetch.blob_uri,
                fetch.bytes,
                fetch.container,
                fetch.codec,
                fetch.duration_s,
                fetch.channels,
                fetch.sample_rate,
                recording_expires_at,
            )
            return True

    async def release_blob(self, sha256: str, blobs: BlobStore, now: datetime) -> int:
        """Delete a blob this service stored but will not record (its call was erased), unless a
        live row holds the same content; 1 if deleted."""
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_blob(conn, sha256)
            return await release_blob(conn, blobs, sha256, still_held=_SHARED, now=now)

    async def erase(self, event: CallErased, blobs: BlobStore, now: datetime) -> dict[str, int]:
        """Write the call's tombstone and delete its fetch row and its blob (unless another live
        row holds the same content). Idempotent: a second erasure removes nothing more."""
        async with self._pool.acquire() as conn, conn.transaction():
            await begin_erasure(conn, event.partner_id, event.call_id, event.payload.erasure_id)
            row = await conn.fetchrow(
                "DELETE FROM fetches WHERE partner_id = $1 AND call_id = $2 RETURNING sha256, recording_purged_at",
                event.partner_id,
                event.call_id,
            )
            if row is None:
                return {"fetches": 0, "blobs": 0}
            removed_blobs = 0
            if row["recording_purged_at"] is None:
                await lock_blob(conn, row["sha256"])
                # Deleted before the commit, under the locks: if the deletion fails, the whole
                # erasure is rolled back and retried, tombstone included.
                removed_blobs = await release_blob(conn, blobs, row["sha256"], still_held=_SHARED, now=now)
            return {"fetches": 1, "blobs": removed_blobs}

    async def purge_recordings(self, blobs: BlobStore, now: datetime, *, batch: int = 200) -> dict[str, int]:
        """Remove the recordings whose retention ended at ``now``: each blob is deleted unless a
        live row still holds the same content, and the rows are marked purged (they stay, so a
        redelivered ingested event is still recognised). Idempotent; one batch per transaction."""
        recordings = blobs_removed = 0
        while True:
            async with self._pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    "SELECT partner_id, call_id, sha256 FROM fetches"
                    " WHERE recording_expires_at <= $1 AND recording_purged_at IS NULL"
                    " ORDER BY recording_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                    now,
                    batch,
                )
                if not rows:
                    break
                # The rows are marked first, so they no longer count as holding their content.
                await conn.execute(
                    "UPDATE fetches SET recording_purged_at = $3"
                    " WHERE (partner_id, call_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
                    [r["partner_id"] for r in rows],
                    [r["call_id"] for r in rows],
                    now,
                )
                for sha256 in sorted({r["sha256"] for r in rows}):  # one lock order: no deadlock
                    await lock_blob(conn, sha256)
                    blobs_removed += await release_blob(conn, blobs, sha256, still_held=_SHARED, now=now)
                recordings += len(rows)
            if len(rows) < batch:
                break
        return {"recordings": recordings, "blobs": blobs_removed}
