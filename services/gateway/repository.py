"""All SQL of the gateway (schema ``gateway``, see ``migrations/``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Credential:
    partner_id: str
    secret_sha256: bytes
    rate_limit_per_minute: int | None


@dataclass(frozen=True)
class ConfigLevel:
    version: int
    config: dict[str, Any]
    updated_at: datetime


@dataclass(frozen=True)
class NewCall:
    call_id: str
    event: bytes  # the encoded calls.ingested.v1 event


_FIND_CREDENTIAL = """
SELECT c.partner_id, c.secret_sha256, p.rate_limit_per_minute
FROM api_credentials c JOIN partners p USING (partner_id)
WHERE c.api_key = $1 AND c.revoked_at IS NULL AND (c.expires_at IS NULL OR c.expires_at > now())
"""

# GCRA in one atomic statement: a request is allowed when, after adding one emission interval
# to the partner's theoretical arrival time (TAT), it is at most one window (the burst) ahead of
# now. A backlog recorded under another limit is rescaled, in requests, to the current interval.
# $2 = seconds per request (60 / limit), $3 = window seconds (60).
_CONSUME_RATE_SLOT = """
INSERT INTO rate_limits AS r (partner_id, tat, interval_s, allowed)
VALUES ($1, now() + make_interval(secs => $2), $2, true)
ON CONFLICT (partner_id) DO UPDATE SET
    allowed = now() + greatest(r.tat - now(), interval '0') * ($2 / r.interval_s)
              + make_interval(secs => $2) <= now() + make_interval(secs => $3),
    tat = now() + greatest(r.tat - now(), interval '0') * ($2 / r.interval_s)
          + CASE WHEN now() + greatest(r.tat - now(), interval '0') * ($2 / r.interval_s)
                          + make_interval(secs => $2) <= now() + make_interval(secs => $3)
                 THEN make_interval(secs => $2) ELSE interval '0' END,
    interval_s = $2
RETURNING allowed,
          extract(epoch FROM tat + make_interval(secs => $2) - make_interval(secs => $3) - now())::float8
"""

# One statement, so one implicit transaction: the ledger rows and their outbox events are
# committed together or not at all. ON CONFLICT makes a known (partner, call id) a no-op, and
# sorted insertion keeps concurrent batches from deadlocking on each other's keys.
_RECORD_CALLS = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS t(call_id, event, ord)
), inserted AS (
    INSERT INTO calls (partner_id, call_id, tenant_id, subtenant_id, received_at)
    SELECT $3, call_id, $4, $5, $6 FROM input ORDER BY call_id
    ON CONFLICT (partner_id, call_id) DO NOTHING
    RETURNING call_id
), queued AS (
    INSERT INTO outbox (topic, keys, payloads)
    SELECT $7, array_agg($3 || '/' || input.call_id ORDER BY input.ord), array_agg(input.event ORDER BY input.ord)
    FROM inserted JOIN input USING (call_id)
    HAVING count(*) > 0
)
SELECT call_id FROM inserted
"""


class GatewayRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # -- request path -------------------------------------------------------------------------

    async def find_credential(self, api_key: str) -> Credential | None:
        row = await self._pool.fetchrow(_FIND_CREDENTIAL, api_key)
        if row is None:
            return None
        return Credential(row["partner_id"], bytes(row["secret_sha256"]), row["rate_limit_per_minute"])

    async def take_rate_token(self, partner_id: str, limit_per_minute: int) -> tuple[bool, int]:
        """Count one request; returns (allowed, seconds until the next one would be)."""
        row = await self._pool.fetchrow(_CONSUME_RATE_SLOT, partner_id, 60.0 / limit_per_minute, 60.0)
        if row is None:  # an upsert with RETURNING always returns its row
            raise RuntimeError("rate limit statement returned no row")
        return bool(row[0]), max(1, math.ceil(row[1]))

    async def record_calls(
        self,
        partner_id: str,
        *,
        tenant_id: str,
        subtenant_id: str,
        received_at: datetime,
        calls: list[NewCall],
        topic: str,
    ) -> set[str]:
        """Insert the calls not seen before with their outbox events; returns their ids."""
        rows = await self._pool.fetch(
            _RECORD_CALLS,
            [c.call_id for c in calls],
            [c.event for c in calls],
            partner_id,
            tenant_id,
            subtenant_id,
            received_at,
            topic,
        )
        return {r["call_id"] for r in rows}

    # -- analysis configuration ---------------------------------------------------------------

    async def config_levels(self, partner_id: str, tenant_id: str, subtenant_id: str) -> dict[str, ConfigLevel]:
        """The latest tenant-level ('') and subtenant-level documents, by level."""
        rows = await self._pool.fetch(
            "SELECT DISTINCT ON (subtenant_id) subtenant_id, version, config, created_at"
            " FROM analysis_configs WHERE partner_id = $1 AND tenant_id = $2 AND subtenant_id IN ('', $3)"
            " ORDER BY subtenant_id, version DESC",
            partner_id,
            tenant_id,
            subtenant_id,
        )
        return {
            ("tenant" if r["subtenant_id"] == "" else "subtenant"): ConfigLevel(
                r["version"], r["config"], r["created_at"]
            )
            for r in rows
        }

    async def save_config(self, partner_id: str, tenant_id: str, subtenant_id: str, config: dict[str, Any]) -> int:
        """Store a new version of one level's document; returns its version number."""
        async with self._pool.acquire() as conn, conn.transaction():
            # Serialises concurrent writers of the same level, so versions never collide.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"config:{partner_id}/{tenant_id}/{subtenant_id}"
            )
            version = await conn.fetchval(
                "INSERT INTO analysis_configs (partner_id, tenant_id, subtenant_id, version, config)"
                " SELECT $1, $2, $3, coalesce(max(version), 0) + 1, $4 FROM analysis_configs"
                " WHERE partner_id = $1 AND tenant_id = $2 AND subtenant_id = $3 RETURNING version",
                partner_id,
                tenant_id,
                subtenant_id,
                config,
            )
        return int(version)

    # -- administration -----------------------------------------------------------------------

    async def create_partner(self, partner_id: str, name: str, rate_limit: int | None) -> None:
        await self._pool.execute(
            "INSERT INTO partners (partner_id, name, rate_limit_per_minute) VALUES ($1, $2, $3)",
            partner_id,
            name,
            rate_limit,
        )

    async def find_partner_by_name(self, name: str) -> str | None:
        value = await self._pool.fetchval(
            "SELECT partner_id FROM partners WHERE name = $1 ORDER BY created_at LIMIT 1", name
        )
        return str(value) if value is not None else None

    async def list_partners(self) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._pool.fetch(
            "SELECT p.partner_id, p.name, p.rate_limit_per_minute, p.created_at,"
            " count(c.api_key) FILTER (WHERE c.revoked_at IS NULL"
            "   AND (c.expires_at IS NULL OR c.expires_at > now())) AS active_keys"
            " FROM partners p LEFT JOIN api_credentials c USING (partner_id)"
            " GROUP BY p.partner_id ORDER BY p.created_at"
        )
        return rows

    async def set_rate_limit(self, partner_id: str, rate_limit: int | None) -> bool:
        status = await self._pool.execute(
            "UPDATE partners SET rate_limit_per_minute = $2 WHERE partner_id = $1",
            partner_id,
            rate_limit,
        )
        return bool(status.endswith(" 1"))

    async def add_credential(self, partner_id: str, api_key: str, secret_sha256: bytes) -> None:
        await self._pool.execute(
            "INSERT INTO api_credentials (api_key, partner_id, secret_sha256) VALUES ($1, $2, $3)",
            api_key,
            partner_id,
            secret_sha256,
        )

    async def rotate_credential(self, partner_id: str, api_key: str, secret_sha256: bytes, grace_seconds: float) -> int:
        """Add a credential and let the partner's other active ones expire after the grace period;
        returns how many were set to expire."""
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "UPDATE api_credentials SET expires_at = LEAST("
                " coalesce(expires_at, 'infinity'), now() + make_interval(secs => $2))"
                " WHERE partner_id = $1 AND revoked_at IS NULL",
                partner_id,
                grace_seconds,
            )
            await conn.execute(
                "INSERT INTO api_credentials (api_key, partner_id, secret_sha256) VALUES ($1, $2, $3)",
                api_key,
                partner_id,
                secret_sha256,
            )
        return int(status.split()[-1])

    async def revoke_credential(self, api_key: str) -> bool:
        status = await self._pool.execute(
            "UPDATE api_credentials SET revoked_at = now() WHERE api_key = $1 AND revoked_at IS NULL",
            api_key,
        )
        return bool(status.endswith(" 1"))

    async def partner_exists(self, partner_id: str) -> bool:
        return bool(await self._pool.fetchval("SELECT 1 FROM partners WHERE partner_id = $1", partner_id))
