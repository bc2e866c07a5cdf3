"""All SQL of the gateway (schema ``gateway``, see ``migrations/``)."""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from schemas.events import ERASURE_SERVICES, call_key
from services.common.erasure import begin_erasure, lock_call, lock_calls
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
    customer_key: bytes | None = None  # salted hash of the customer id (handlers.subject_key)
    contact_key: bytes | None = None  # salted hash of the contact number's digits


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
    # Retention, from the configuration snapshot of an event carrying the ingested call.
    recording_expires_at: datetime | None = None
    transcript_expires_at: datetime | None = None
    results_expires_at: datetime | None = None


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
    SELECT * FROM unnest($1::text[], $2::bytea[], $8::jsonb[], $9::bytea[], $10::bytea[])
        WITH ORDINALITY AS t(call_id, event, headers, customer_key, contact_key, ord)
), inserted AS (
    INSERT INTO calls (partner_id, call_id, tenant_id, subtenant_id, received_at, customer_key, contact_key)
    SELECT $3, call_id, $4, $5, $6, customer_key, contact_key FROM input ORDER BY call_id
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
redelivery_command_id, redelivery_requested_at, recording_expires_at, transcript_expires_at, results_expires_at,
recording_purged_at, transcript_purged_at, results_purged_at
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
    delivery_error, recording_expires_at, transcript_expires_at, results_expires_at
)
VALUES (
    $1, $2, $3, $4, $5, $6, $7, $8,
    coalesce($9, (SELECT c.received_at FROM calls c WHERE c.partner_id = $1 AND c.call_id = $2), $10),
    CASE WHEN $7 = 'fetching' THEN $10 END,
    CASE WHEN $7 = 'fetched' THEN $10 END,
    CASE WHEN $7 = 'analyzing' THEN $10 END,
    CASE WHEN $7 = 'completed' THEN $10 END,
    CASE WHEN $7 = 'failed' THEN $10 END,
    $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $23, $24, $25
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
    -- Once purged, a replayed analysis must not bring the result (or its transcript) back.
    result = CASE WHEN s.transcript_purged_at IS NOT NULL OR s.results_purged_at IS NOT NULL THEN s.result
                  ELSE coalesce(s.result, excluded.result) END,
    recording_expires_at = coalesce(s.recording_expires_at, excluded.recording_expires_at),
    transcript_expires_at = coalesce(s.transcript_expires_at, excluded.transcript_expires_at),
    results_expires_at = coalesce(s.results_expires_at, excluded.results_expires_at),
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
  AND transcript_purged_at IS NULL AND results_purged_at IS NULL
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
        change.recording_expires_at,
        change.transcript_expires_at,
        change.results_expires_at,
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


@dataclass(frozen=True)
class ErasureCall:
    """A call an erasure covers: identity and tenancy (from the ledger), nothing personal."""

    call_id: str
    tenant_id: str
    subtenant_id: str


@dataclass(frozen=True)
class ErasureRequest:
    """What an erasure records: who asked for what, in which scope (selector without personal data)."""

    erasure_id: uuid.UUID
    partner_id: str
    tenant_id: str
    subtenant_id: str | None
    scope: str  # "call" | "customer"
    selector: dict[str, Any]
    requested_by: str
    requested_at: datetime
    topic: str  # calls.erased.v1, prefixed


# Everything the gateway holds of the calls, by (partner, call ids); the call's ledger row stays
# (its id stays taken) without its customer keys.
_ERASE_ROWS = (
    ("call_status", "DELETE FROM call_status WHERE partner_id = $1 AND call_id = ANY($2::text[])"),
    ("callback_attempts", "DELETE FROM callback_attempts WHERE partner_id = $1 AND call_id = ANY($2::text[])"),
    ("dashboard_calls", "DELETE FROM dashboard_calls WHERE partner_id = $1 AND call_id = ANY($2::text[])"),
)
_FORGET_KEYS = (
    "UPDATE calls SET customer_key = NULL, contact_key = NULL"
    " WHERE partner_id = $1 AND call_id = ANY($2::text[]) AND (customer_key IS NOT NULL OR contact_key IS NOT NULL)"
)

# An erasure completes when every call has every service's confirmation; the erasure's row lock
# (taken first) orders concurrent confirmations, so the last one always sees all the others.
_COMPLETE_ERASURE = """
UPDATE erasures e SET completed_at = now()
WHERE e.erasure_id = $1 AND e.completed_at IS NULL
  AND (SELECT count(*) FROM erasure_confirmations c
       JOIN erasure_calls ec ON ec.erasure_id = c.erasure_id AND ec.call_id = c.call_id
       WHERE c.erasure_id = $1 AND c.service = ANY($2::text[])) >= e.calls * cardinality($2::text[])
"""

_RECORD_CONFIRMATION = """
INSERT INTO erasure_confirmations (erasure_id, call_id, service, removed)
SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM erasure_calls WHERE erasure_id = $1 AND call_id = $2)
ON CONFLICT DO NOTHING
"""

_ERASURE_COLUMNS = "erasure_id, partner_id, tenant_id, subtenant_id, scope, requested_at, completed_at, calls"


async def _erase_rows(conn: asyncpg.Connection, partner_id: str, call_ids: list[str]) -> dict[str, int]:
    removed: dict[str, int] = {}
    for table, sql in _ERASE_ROWS:
        removed[table] = int((await conn.execute(sql, partner_id, call_ids)).split()[-1])
    status = await conn.execute(
        "DELETE FROM outbox_dead WHERE key = ANY($1::text[])", [call_key(partner_id, c) for c in call_ids]
    )
    removed["outbox_dead"] = int(status.split()[-1])
    return removed


# Retention: each part is purged once its expiry passed and the call reached a final state (so
# the part exists and no later event of the pipeline adds it again), a bounded batch at a time.
_PURGE_BATCH = 500
_PURGE_TRANSCRIPTS = """
WITH due AS (
    SELECT partner_id, call_id FROM call_status
    WHERE transcript_expires_at <= $1 AND transcript_purged_at IS NULL AND status_rank = 5
    LIMIT $2 FOR UPDATE SKIP LOCKED
), purged AS (
    UPDATE call_status s SET
        -- json, not jsonb: rebuilt key by key in the original order, without the transcript.
        result = (SELECT json_object_agg(f.key, f.value ORDER BY f.n)
                  FROM json_each(s.result) WITH ORDINALITY AS f(key, value, n) WHERE f.key <> 'transcript'),
        transcript_purged_at = $1, updated_at = now()
    FROM due WHERE s.partner_id = due.partner_id AND s.call_id = due.call_id
    RETURNING s.partner_id, s.call_id
), dashboard AS (
    UPDATE dashboard_calls d SET details = d.details - 'transcript', updated_at = now()
    FROM purged WHERE d.partner_id = purged.partner_id AND d.call_id = purged.call_id AND d.details ? 'transcript'
)
SELECT count(*) FROM purged
"""
_PURGE_RESULTS = """
WITH due AS (
    SELECT partner_id, call_id FROM call_status
    WHERE results_expires_at <= $1 AND results_purged_at IS NULL AND status_rank = 5
    LIMIT $2 FOR UPDATE SKIP LOCKED
), purged AS (
    UPDATE call_status s SET result = NULL, results_purged_at = $1,
        transcript_purged_at = coalesce(s.transcript_purged_at, $1), updated_at = now()
    FROM due WHERE s.partner_id = due.partner_id AND s.call_id = due.call_id
    RETURNING s.partner_id, s.call_id
), dashboard AS (
    -- The customer's name and id came with the call's data: they go with its results.
    UPDATE dashboard_calls d SET details = NULL, customer_id = NULL, customer_name = NULL,
        results_purged_at = $1, updated_at = now()
    FROM purged WHERE d.partner_id = purged.partner_id AND d.call_id = purged.call_id
)
SELECT count(*) FROM purged
"""
_PURGE_RECORDINGS = """
WITH due AS (
    SELECT partner_id, call_id FROM call_status
    WHERE recording_expires_at <= $1 AND recording_purged_at IS NULL
    LIMIT $2 FOR UPDATE SKIP LOCKED
), purged AS (
    UPDATE call_status s SET recording_purged_at = $1, updated_at = now()
    FROM due WHERE s.partner_id = due.partner_id AND s.call_id = due.call_id
    RETURNING s.partner_id, s.call_id
), dashboard AS (
    UPDATE dashboard_calls d SET blob_uri = NULL, recording_purged_at = $1, updated_at = now()
    FROM purged WHERE d.partner_id = purged.partner_id AND d.call_id = purged.call_id
)
SELECT count(*) FROM purged
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
            # NULL rather than an array of NULLs when tracing is off: the hot path stays as it was.
            [c.trace for c in calls] if any(c.trace for c in calls) else None,
            [c.customer_key for c in calls],
            [c.contact_key for c in calls],
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
        """Fold several events in one transaction (statements pipelined, one commit). Each call's
        lock is taken first and erased calls are left out, so a late event cannot bring back a
        call an erasure removed (see ``services.common.erasure``)."""
        async with self._pool.acquire() as conn, conn.transaction():
            erased = await lock_calls(conn, [(c.partner_id, c.call_id) for c, _ in changes])
            kept = [(c, d) for c, d in changes if (c.partner_id, c.call_id) not in erased]
            if not kept:
                return
            await conn.executemany(_APPLY_CHANGE, [_change_args(c, d) for c, d in kept])
            attempts = [_attempt_args(c, d) for c, d in kept if d is not None and _has_attempt(d)]
            if attempts:
                await conn.executemany(_RECORD_ATTEMPT, attempts)

    async def apply_change(self, change: StatusChange, delivery: DeliveryChange | None = None) -> None:
        """Fold one event into the read model (idempotent, order-independent; see ``_APPLY_CHANGE``)."""
        await self.apply_changes([(change, delivery)])

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
        """An accepted, not erased call from the ingestion ledger (identity and tenancy only)."""
        row = await self._pool.fetchrow(
            "SELECT partner_id, call_id, tenant_id, subtenant_id, received_at FROM calls c"
            " WHERE partner_id = $1 AND call_id = $2 AND tenant_id = $3 AND ($4::text IS NULL OR subtenant_id = $4)"
            # The ledger row of an erased call stays (its id stays taken); the call does not.
            " AND NOT EXISTS (SELECT 1 FROM erased_calls e"
            " WHERE e.partner_id = c.partner_id AND e.call_id = c.call_id)",
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
        if current.get("transcript_purged_at") is not None or current.get("results_purged_at") is not None:
            return "purged", current
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

    # -- erasure -------------------------------------------------------------------------------

    async def erase_call(
        self, request: ErasureRequest, call_id: str, event: Callable[[ErasureCall], bytes]
    ) -> tuple[str, dict[str, Any] | None]:
        """Erase one call of the caller's scope. Returns ("erased", erasure), ("already", the
        erasure that erased it earlier) or ("not_found", None)."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT call_id, tenant_id, subtenant_id FROM calls WHERE partner_id = $1 AND call_id = $2"
                " AND tenant_id = $3 AND ($4::text IS NULL OR subtenant_id = $4)",
                request.partner_id,
                call_id,
                request.tenant_id,
                request.subtenant_id,
            )
            if row is None:
                return "not_found", None
            await lock_call(conn, request.partner_id, call_id)
            earlier = await conn.fetchval(
                "SELECT erasure_id FROM erased_calls WHERE partner_id = $1 AND call_id = $2",
                request.partner_id,
                call_id,
            )
            if earlier is not None:
                found = await conn.fetchrow(
                    f"SELECT {_ERASURE_COLUMNS} FROM erasures WHERE erasure_id = $1",  # noqa: S608 - constant
                    earlier,
                )
                return "already", dict(found) if found is not None else None
            call = ErasureCall(row["call_id"], row["tenant_id"], row["subtenant_id"])
            # A call's erasure is recorded in the call's own subtenant: who may see it is who may see the call.
            scoped = dataclasses.replace(request, subtenant_id=call.subtenant_id)
            return "erased", await self._erase(conn, scoped, [call], event)

    async def erase_customer(
        self,
        request: ErasureRequest,
        customer_key: bytes | None,
        contact_key: bytes | None,
        event: Callable[[ErasureCall], bytes],
    ) -> dict[str, Any]:
        """Erase every call of the scope whose customer id or contact number hashes to the given
        keys (either matches), skipping calls erased meanwhile; returns the erasure."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT call_id, tenant_id, subtenant_id FROM calls"
                " WHERE partner_id = $1 AND tenant_id = $2 AND ($3::text IS NULL OR subtenant_id = $3)"
                " AND (customer_key = $4 OR contact_key = $5)",
                request.partner_id,
                request.tenant_id,
                request.subtenant_id,
                customer_key,
                contact_key,
            )
            calls = sorted(
                (ErasureCall(r["call_id"], r["tenant_id"], r["subtenant_id"]) for r in rows),
                key=lambda c: call_key(request.partner_id, c.call_id),
            )
            for call in calls:
                await lock_call(conn, request.partner_id, call.call_id)
            erased = await conn.fetch(
                "SELECT call_id FROM erased_calls WHERE partner_id = $1 AND call_id = ANY($2::text[])",
                request.partner_id,
                [c.call_id for c in calls],
            )
            gone = {r["call_id"] for r in erased}
            return await self._erase(conn, request, [c for c in calls if c.call_id not in gone], event)

    async def _erase(
        self,
        conn: asyncpg.Connection,
        request: ErasureRequest,
        calls: list[ErasureCall],
        event: Callable[[ErasureCall], bytes],
    ) -> dict[str, Any]:
        """In the caller's transaction, with every call's lock held: the audit row, the calls it
        covers, the tombstones, the deletions, and one ``calls.erased.v1`` per call in the outbox."""
        ids = [c.call_id for c in calls]
        erasure = await conn.fetchrow(
            "INSERT INTO erasures (erasure_id, partner_id, tenant_id, subtenant_id, scope, selector, requested_by,"  # noqa: S608
            " requested_at, calls, completed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
            " CASE WHEN $9::int = 0 THEN $8::timestamptz END)"
            f" RETURNING {_ERASURE_COLUMNS}",
            request.erasure_id,
            request.partner_id,
            request.tenant_id,
            request.subtenant_id,
            request.scope,
            request.selector,
            request.requested_by,
            request.requested_at,
            len(calls),
        )
        if calls:
            await conn.execute(
                "INSERT INTO erasure_calls (erasure_id, partner_id, call_id) SELECT $1, $2, unnest($3::text[])",
                request.erasure_id,
                request.partner_id,
                ids,
            )
            await conn.execute(
                "INSERT INTO erased_calls (partner_id, call_id, erasure_id, erased_at)"
                " SELECT $1, unnest($2::text[]), $3, $4 ON CONFLICT (partner_id, call_id) DO NOTHING",
                request.partner_id,
                ids,
                request.erasure_id,
                request.requested_at,
            )
            await _erase_rows(conn, request.partner_id, ids)
            await conn.execute(_FORGET_KEYS, request.partner_id, ids)
            await conn.execute(
                "INSERT INTO outbox (topic, keys, payloads, headers) VALUES ($1, $2, $3, $4)",
                request.topic,
                [call_key(request.partner_id, c) for c in ids],
                [event(c) for c in calls],
                outbox_headers(len(calls)),
            )
        if erasure is None:  # an INSERT with RETURNING always returns its row
            raise RuntimeError("erasure insert returned no row")
        return dict(erasure)

    async def find_erasure(
        self, partner_id: str, erasure_id: uuid.UUID, tenant_id: str, subtenant_id: str | None
    ) -> dict[str, Any] | None:
        """The erasure with its confirmations by service, within the caller's partner and tenant
        (and, with a subtenant, only erasures of that subtenant)."""
        row = await self._pool.fetchrow(
            f"SELECT {_ERASURE_COLUMNS} FROM erasures"  # noqa: S608 - constant column list
            " WHERE erasure_id = $1 AND partner_id = $2 AND tenant_id = $3"
            " AND ($4::text IS NULL OR subtenant_id = $4)",
            erasure_id,
            partner_id,
            tenant_id,
            subtenant_id,
        )
        if row is None:
            return None
        confirmed = await self._pool.fetch(
            "SELECT c.service, count(*) AS n FROM erasure_confirmations c"
            " JOIN erasure_calls ec ON ec.erasure_id = c.erasure_id AND ec.call_id = c.call_id"
            " WHERE c.erasure_id = $1 GROUP BY c.service",
            erasure_id,
        )
        return {**dict(row), "confirmed": {r["service"]: int(r["n"]) for r in confirmed}}

    async def call_erased(self, partner_id: str, call_id: str, erasure_id: uuid.UUID) -> dict[str, int]:
        """The read model's side of ``calls.erased.v1``: under the call's lock, remove again
        whatever a projection racing the erasure wrote, keep the tombstone, and record the
        gateway's confirmation (idempotent: a redelivery removes nothing and confirms nothing new)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await begin_erasure(conn, partner_id, call_id, erasure_id)
            removed = await _erase_rows(conn, partner_id, [call_id])
            await conn.execute(_FORGET_KEYS, partner_id, [call_id])
            await self._confirm(conn, erasure_id, call_id, "gateway", removed)
        return removed

    async def record_confirmation(
        self, erasure_id: uuid.UUID, call_id: str, service: str, removed: dict[str, int]
    ) -> bool:
        """Record one service's confirmation; returns whether the erasure is now complete."""
        async with self._pool.acquire() as conn, conn.transaction():
            return await self._confirm(conn, erasure_id, call_id, service, removed)

    async def _confirm(
        self, conn: asyncpg.Connection, erasure_id: uuid.UUID, call_id: str, service: str, removed: dict[str, int]
    ) -> bool:
        await conn.execute("SELECT 1 FROM erasures WHERE erasure_id = $1 FOR UPDATE", erasure_id)
        await conn.execute(_RECORD_CONFIRMATION, erasure_id, call_id, service, removed)
        status = await conn.execute(_COMPLETE_ERASURE, erasure_id, list(ERASURE_SERVICES))
        return bool(status.endswith(" 1"))

    # -- retention ------------------------------------------------------------------------------

    async def purge_expired(self, now: datetime) -> dict[str, int]:
        """Purge what retention says has expired by ``now``: transcripts (from the result and the
        dashboard), results (the result and the dashboard's details) and recordings (dashboard
        playback), each marked purged; idempotent, in batches. Returns counts by part."""
        removed = {}
        for part, sql in (
            ("results", _PURGE_RESULTS),
            ("transcripts", _PURGE_TRANSCRIPTS),
            ("recordings", _PURGE_RECORDINGS),
        ):
            total = 0
            while True:
                n = int(await self._pool.fetchval(sql, now, _PURGE_BATCH))
                total += n
                if n < _PURGE_BATCH:
                    break
            removed[part] = total
        return removed

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
