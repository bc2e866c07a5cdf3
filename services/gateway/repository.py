"""All SQL of the gateway (schema ``gateway``, see ``migrations/``)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from schemas.events import call_key
from services.common.outbox import outbox_headers


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
    trace: dict[str, str] | None = None  # the call's trace context (Kafka headers), tracing on


#: Rank of each status: the read model only ever moves a call to a higher rank.
STATUS_RANK = {"received": 1, "fetching": 2, "fetched": 3, "analyzing": 4, "completed": 5, "failed": 5}
#: Stage timestamp column of each status.
STAGE_COLUMN = {
    "received": None,
    "fetching": "fetching_at",
    "fetched": "fetched_at",
    "analyzing": "analyzing_at",
    "completed": "completed_at",
    "failed": "failed_at",
}


@dataclass(frozen=True)
class StatusChange:
    """What one event says about a call, for the read model (see ``read_model``)."""

    partner_id: str
    call_id: str
    tenant_id: str
    subtenant_id: str
    status: str  # "received" for events that move no status (deliveries)
    at: datetime  # the event's occurred_at
    received_at: datetime | None = None  # from an event carrying the ingested call
    agent_id: str | None = None
    callback_url: str | None = None
    intent: str | None = None
    quality_score: float | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class DeliveryChange:
    """A ``callbacks.deliveries.v1`` event: the delivery's new state and the attempt behind it."""

    delivery_id: str
    kind: str
    state: str
    url: str
    next_attempt_at: datetime | None
    at: datetime
    error: str | None = None  # the delivery failed without an attempt (e.g. refused URL)
    attempt_number: int | None = None
    attempt_started_at: datetime | None = None
    attempt_status_code: int | None = None
    attempt_latency_ms: float | None = None
    attempt_error: str | None = None
    # The redelivery command this event answers: it lifts the guard that command set.
    redelivery_command_id: uuid.UUID | None = None


@dataclass(frozen=True)
class ListFilters:
    tenant_id: str
    subtenant_id: str | None = None  # the header's scope
    subtenant: str | None = None  # the query's filter
    statuses: tuple[str, ...] = ()
    agent_id: str | None = None
    intent: str | None = None
    received_from: datetime | None = None  # inclusive
    received_to: datetime | None = None  # exclusive
    after: tuple[datetime, str] | None = None  # keyset position: (received_at, call_id) of the last row seen


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
    SELECT * FROM unnest($1::text[], $2::bytea[], $8::jsonb[]) WITH ORDINALITY AS t(call_id, event, headers, ord)
), inserted AS (
    INSERT INTO calls (partner_id, call_id, tenant_id, subtenant_id, received_at)
    SELECT $3, call_id, $4, $5, $6 FROM input ORDER BY call_id
    ON CONFLICT (partner_id, call_id) DO NOTHING
    RETURNING call_id
), queued AS (
    INSERT INTO outbox (topic, keys, payloads, headers)
    SELECT $7, array_agg($3 || '/' || input.call_id ORDER BY input.ord), array_agg(input.event ORDER BY input.ord),
           CASE WHEN bool_or(input.headers IS NOT NULL) THEN jsonb_agg(input.headers ORDER BY input.ord) END
    FROM inserted JOIN input USING (call_id)
    HAVING count(*) > 0
)
SELECT call_id FROM inserted
"""


_CALL_COLUMNS = """
partner_id, call_id, tenant_id, subtenant_id, agent_id, callback_url, status, received_at, fetching_at,
fetched_at, analyzing_at, completed_at, failed_at, intent, quality_score, result, error, delivery_id,
delivery_kind, delivery_state, delivery_url, delivery_next_attempt_at, delivery_error,
redelivery_command_id, redelivery_requested_at
"""

# One upsert per event. Every column moves monotonically, so events may arrive in any order and
# any number of times: status by rank (a tie keeps the first terminal state), stage timestamps
# keep the earliest value (LEAST ignores NULL), agent, callback URL, result and error are written
# once, and the delivery columns follow the latest delivery event by its occurred_at. A row
# created before the ingested event takes received_at from the ledger (a primary-key lookup),
# else from the event itself; the ingested call's own received_at always wins.
_APPLY_CHANGE = """
INSERT INTO call_status AS s (
    partner_id, call_id, tenant_id, subtenant_id, agent_id, callback_url, status, status_rank, received_at,
    fetching_at, fetched_at, analyzing_at, completed_at, failed_at, intent, quality_score, result, error,
    delivery_id, delivery_kind, delivery_state, delivery_url, delivery_next_attempt_at, delivery_event_at,
    delivery_error
)
VALUES (
    $1, $2, $3, $4, $5, $6, $7, $8,
    coalesce($9, (SELECT c.received_at FROM calls c WHERE c.partner_id = $1 AND c.call_id = $2), $10),
    CASE WHEN $7 = 'fetching' THEN $10 END,
    CASE WHEN $7 = 'fetched' THEN $10 END,
    CASE WHEN $7 = 'analyzing' THEN $10 END,
    CASE WHEN $7 = 'completed' THEN $10 END,
    CASE WHEN $7 = 'failed' THEN $10 END,
    $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21
)
ON CONFLICT (partner_id, call_id) DO UPDATE SET
    agent_id = coalesce(s.agent_id, excluded.agent_id),
    callback_url = coalesce(s.callback_url, excluded.callback_url),
    status = CASE WHEN excluded.status_rank > s.status_rank THEN excluded.status ELSE s.status END,
    status_rank = greatest(s.status_rank, excluded.status_rank),
    received_at = coalesce($9, s.received_at),
    fetching_at = least(s.fetching_at, excluded.fetching_at),
    fetched_at = least(s.fetched_at, excluded.fetched_at),
    analyzing_at = least(s.analyzing_at, excluded.analyzing_at),
    completed_at = least(s.completed_at, excluded.completed_at),
    failed_at = least(s.failed_at, excluded.failed_at),
    intent = coalesce(s.intent, excluded.intent),
    quality_score = coalesce(s.quality_score, excluded.quality_score),
    result = coalesce(s.result, excluded.result),
    error = coalesce(s.error, excluded.error),
    delivery_id = CASE WHEN s.delivery_event_at IS NULL OR $20 >= s.delivery_event_at
                       THEN coalesce(excluded.delivery_id, s.delivery_id) ELSE s.delivery_id END,
    delivery_kind = CASE WHEN s.delivery_event_at IS NULL OR $20 >= s.delivery_event_at
                         THEN coalesce(excluded.delivery_kind, s.delivery_kind) ELSE s.delivery_kind END,
    delivery_state = CASE WHEN s.delivery_event_at IS NULL OR $20 >= s.delivery_event_at
                          THEN coalesce(excluded.delivery_state, s.delivery_state) ELSE s.delivery_state END,
    delivery_url = CASE WHEN s.delivery_event_at IS NULL OR $20 >= s.delivery_event_at
                        THEN coalesce(excluded.delivery_url, s.delivery_url) ELSE s.delivery_url END,
    delivery_next_attempt_at = CASE WHEN $20 IS NOT NULL AND (s.delivery_event_at IS NULL OR $20 >= s.delivery_event_at)
                                    THEN excluded.delivery_next_attempt_at ELSE s.delivery_next_attempt_at END,
    delivery_error = CASE WHEN $20 IS NOT NULL AND (s.delivery_event_at IS NULL OR $20 >= s.delivery_event_at)
                          THEN excluded.delivery_error ELSE s.delivery_error END,
    delivery_event_at = greatest(s.delivery_event_at, excluded.delivery_event_at),
    redelivery_command_id = CASE WHEN s.redelivery_command_id = $22::uuid THEN NULL
                                 ELSE s.redelivery_command_id END,
    redelivery_requested_at = CASE WHEN s.redelivery_command_id = $22::uuid THEN NULL
                                   ELSE s.redelivery_requested_at END,
    updated_at = now()
"""

# Takes a redelivery request (see ``request_redelivery``); READ COMMITTED re-checks the WHERE
# clause on the row a concurrent request just updated, so only one of them gets it.
_CLAIM_REDELIVERY = """
UPDATE call_status SET redelivery_command_id = $5, redelivery_requested_at = now(), updated_at = now()
WHERE partner_id = $1 AND call_id = $2 AND tenant_id = $3 AND ($4::text IS NULL OR subtenant_id = $4)
  AND (callback_url IS NOT NULL OR delivery_url IS NOT NULL)
  AND delivery_state IN ('delivered', 'failed')
  AND (redelivery_command_id IS NULL OR redelivery_requested_at < now() - make_interval(secs => $6))
RETURNING tenant_id, subtenant_id, delivery_id, redelivery_requested_at
"""

_RECORD_ATTEMPT = """
INSERT INTO callback_attempts (
    partner_id, call_id, delivery_id, number, kind, url, started_at, status_code, latency_ms, error
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT DO NOTHING
"""


def _has_attempt(d: DeliveryChange) -> bool:
    return d.attempt_number is not None and d.attempt_started_at is not None


def _change_args(change: StatusChange, d: DeliveryChange | None) -> tuple[Any, ...]:
    return (
        change.partner_id,
        change.call_id,
        change.tenant_id,
        change.subtenant_id,
        change.agent_id,
        change.callback_url,
        change.status,
        STATUS_RANK[change.status],
        change.received_at,
        change.at,
        change.intent,
        change.quality_score,
        change.result,
        change.error,
        d.delivery_id if d else None,
        d.kind if d else None,
        d.state if d else None,
        d.url if d else None,
        d.next_attempt_at if d else None,
        d.at if d else None,
        d.error if d else None,
        d.redelivery_command_id if d else None,
    )


def _attempt_args(change: StatusChange, d: DeliveryChange) -> tuple[Any, ...]:
    return (
        change.partner_id,
        change.call_id,
        d.delivery_id,
        d.attempt_number,
        d.kind,
        d.url,
        d.attempt_started_at,
        d.attempt_status_code,
        d.attempt_latency_ms,
        d.attempt_error,
    )


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
            # NULL rather than an array of NULLs when tracing is off: the hot path stays as it was.
            [c.trace for c in calls] if any(c.trace for c in calls) else None,
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

    # -- status read model ---------------------------------------------------------------------

    async def apply_changes(self, changes: Sequence[tuple[StatusChange, DeliveryChange | None]]) -> None:
        """Fold several events in one transaction (statements pipelined, one commit)."""
        rows = [_change_args(change, delivery) for change, delivery in changes]
        attempts = [_attempt_args(change, d) for change, d in changes if d is not None and _has_attempt(d)]
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.executemany(_APPLY_CHANGE, rows)
            if attempts:
                await conn.executemany(_RECORD_ATTEMPT, attempts)

    async def apply_change(self, change: StatusChange, delivery: DeliveryChange | None = None) -> None:
        """Fold one event into the read model (idempotent, order-independent; see ``_APPLY_CHANGE``)."""
        args = _change_args(change, delivery)
        if delivery is None or not _has_attempt(delivery):
            await self._pool.execute(_APPLY_CHANGE, *args)
            return
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_APPLY_CHANGE, *args)
            await conn.execute(_RECORD_ATTEMPT, *_attempt_args(change, delivery))

    async def find_call(
        self, partner_id: str, call_id: str, tenant_id: str, subtenant_id: str | None
    ) -> dict[str, Any] | None:
        """The call's read-model row, within the caller's tenant (and subtenant, when given)."""
        row = await self._pool.fetchrow(
            f"SELECT {_CALL_COLUMNS} FROM call_status"  # noqa: S608 - constant column list
            " WHERE partner_id = $1 AND call_id = $2 AND tenant_id = $3 AND ($4::text IS NULL OR subtenant_id = $4)",
            partner_id,
            call_id,
            tenant_id,
            subtenant_id,
        )
        return dict(row) if row is not None else None

    async def find_ledger_call(
        self, partner_id: str, call_id: str, tenant_id: str, subtenant_id: str | None
    ) -> dict[str, Any] | None:
        """An accepted call from the ingestion ledger (identity and tenancy only)."""
        row = await self._pool.fetchrow(
            "SELECT partner_id, call_id, tenant_id, subtenant_id, received_at FROM calls"
            " WHERE partner_id = $1 AND call_id = $2 AND tenant_id = $3 AND ($4::text IS NULL OR subtenant_id = $4)",
            partner_id,
            call_id,
            tenant_id,
            subtenant_id,
        )
        return dict(row) if row is not None else None

    async def callback_attempts(self, partner_id: str, call_id: str) -> list[dict[str, Any]]:
        """Every reported attempt to deliver the call's callback, oldest first."""
        rows = await self._pool.fetch(
            "SELECT delivery_id, number, kind, url, started_at, status_code, latency_ms, error"
            " FROM callback_attempts WHERE partner_id = $1 AND call_id = $2"
            " ORDER BY started_at, delivery_id, number",
            partner_id,
            call_id,
        )
        return [dict(r) for r in rows]

    async def list_calls(self, partner_id: str, filters: ListFilters, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` calls, newest first by (received_at, call_id), after the keyset position.

        The WHERE clause is assembled from fixed fragments only (values are always parameters), so
        each combination of filters gets a plan that can use the matching index."""
        clauses = ["partner_id = $1", "tenant_id = $2"]
        args: list[Any] = [partner_id, filters.tenant_id]

        def param(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if filters.subtenant_id is not None:
            clauses.append(f"subtenant_id = {param(filters.subtenant_id)}")
        if filters.subtenant is not None:
            clauses.append(f"subtenant_id = {param(filters.subtenant)}")
        if filters.statuses:
            clauses.append(f"status = ANY({param(list(filters.statuses))}::text[])")
        if filters.agent_id is not None:
            clauses.append(f"agent_id = {param(filters.agent_id)}")
        if filters.intent is not None:
            clauses.append(f"intent = {param(filters.intent)}")
        if filters.received_from is not None:
            clauses.append(f"received_at >= {param(filters.received_from)}")
        if filters.received_to is not None:
            clauses.append(f"received_at < {param(filters.received_to)}")
        if filters.after is not None:
            at, call_id = filters.after
            clauses.append(f"(received_at, call_id) < ({param(at)}, {param(call_id)})")
        sql = (
            f"SELECT {_CALL_COLUMNS} FROM call_status WHERE {' AND '.join(clauses)}"  # noqa: S608 - fixed fragments
            f" ORDER BY received_at DESC, call_id DESC LIMIT {param(limit)}"
        )
        return [dict(r) for r in await self._pool.fetch(sql, *args)]

    async def request_redelivery(
        self,
        partner_id: str,
        call_id: str,
        tenant_id: str,
        subtenant_id: str | None,
        *,
        command_id: uuid.UUID,
        guard_s: float,
        topic: str,
        command: Callable[[dict[str, Any]], bytes],
    ) -> tuple[str, dict[str, Any] | None]:
        """Record a redelivery request and its command atomically, at most one at a time.

        In one transaction: the call's row takes the request only if its delivery is final
        (delivered or failed) and no other request is outstanding (or the outstanding one is
        older than ``guard_s``: its command was lost); then the command (``command(row)``) goes
        to the outbox. Concurrent requests queue on the row's lock and find it taken.
        Returns ("requested", row), else the reason and the row: "not_found" (nothing in the
        caller's scope), "received" (only in the ledger), "no_callback", "not_final"."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                _CLAIM_REDELIVERY, partner_id, call_id, tenant_id, subtenant_id, command_id, guard_s
            )
            if row is not None:
                found = dict(row)
                await conn.execute(
                    "INSERT INTO outbox (topic, keys, payloads, headers) VALUES ($1, $2, $3, $4)",
                    topic,
                    [call_key(partner_id, call_id)],
                    [command(found)],
                    outbox_headers(1),
                )
                return "requested", found
        current = await self.find_call(partner_id, call_id, tenant_id, subtenant_id)
        if current is None:
            ledger = await self.find_ledger_call(partner_id, call_id, tenant_id, subtenant_id)
            return ("received" if ledger is not None else "not_found"), ledger
        if not (current.get("callback_url") or current.get("delivery_url")):
            return "no_callback", current
        return "not_final", current

    async def enqueue_event(self, topic: str, key: str, payload: bytes) -> None:
        """Queue one event in the outbox: durable once this returns, on Kafka once the relay ran."""
        await self._pool.execute(
            "INSERT INTO outbox (topic, keys, payloads, headers) VALUES ($1, $2, $3, $4)",
            topic,
            [key],
            [payload],
            outbox_headers(1),
        )

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
