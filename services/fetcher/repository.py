"""All SQL of the fetcher (schema ``fetcher``)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


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


class FetcherRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def find(self, partner_id: str, call_id: str) -> Fetch | None:
        row = await self._pool.fetchrow(
            "SELECT sha256, blob_uri, bytes, container, codec, duration_s, channels, sample_rate"
            " FROM fetches WHERE partner_id = $1 AND call_id = $2",
            partner_id,
            call_id,
        )
        return Fetch(**dict(row)) if row else None

    async def record(self, partner_id: str, call_id: str, fetch: Fetch) -> None:
        await self._pool.execute(
            "INSERT INTO fetches (partner_id, call_id, sha256, blob_uri, bytes, container, codec,"
            " duration_s, channels, sample_rate) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
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
        )
