"""All SQL of the analyzer (schema ``analyzer``)."""

from __future__ import annotations

from typing import Any

import asyncpg


class AnalyzerRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def find(self, partner_id: str, call_id: str) -> dict[str, Any] | None:
        """The ``calls.analyzed`` event already published for this call, as JSON."""
        value = await self._pool.fetchval(
            "SELECT event FROM analyses WHERE partner_id = $1 AND call_id = $2", partner_id, call_id
        )
        return dict(value) if value is not None else None

    async def record(self, partner_id: str, call_id: str, event: dict[str, Any]) -> None:
        await self._pool.execute(
            "INSERT INTO analyses (partner_id, call_id, event) VALUES ($1, $2, $3)"
            " ON CONFLICT (partner_id, call_id) DO NOTHING",
            partner_id,
            call_id,
            event,
        )
