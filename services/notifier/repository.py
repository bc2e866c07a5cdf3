"""All SQL of the notifier (schema ``notifier``).

Every state change of a delivery is written together with its ``callbacks.deliveries.v1`` event
(``outbox`` row) in one transaction, so the status read models never miss or invent a change.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from schemas.events import CallErased, call_key
from services.common import tracing
from services.common.crypto import SecretBox
from services.common.erasure import begin_erasure, lock_live_call
from services.common.outbox import outbox_headers
from services.notifier.signing import new_secret


@dataclass(frozen=True)
class NewDelivery:
    delivery_id: str
    partner_id: str
    call_id: str
    kind: str
    tenant_id: str
    subtenant_id: str
    url: str
    body: bytes
    source_at: datetime
    received_at: datetime | None = None  # when the gateway accepted the call
    # When the body (transcript, results) must be removed under the tenant's retention (None: kept).
    body_expires_at: datetime | None = None


@dataclass(frozen=True)
class Delivery:
    """A delivery as the dispatcher and the event builders see it."""

    delivery_id: str
    partner_id: str
    call_id: str
    kind: str
    tenant_id: str
    subtenant_id: str
    url: str
    state: str
    attempts: int
    round_attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    source_at: datetime
    created_at: datetime
    updated_at: datetime
    # The trace its attempts join (the call's, or the redelivery request's), and when the gateway
    # accepted the call (None once the first round ended).
    trace_context: dict[str, str] | None = None
    received_at: datetime | None = None


@dataclass(frozen=True)
class Claimed:
    """A due delivery reserved by one dispatcher until its lease ends (``token`` proves it)."""

    delivery: Delivery
    body: bytes
    token: uuid.UUID


@dataclass(frozen=True)
class AttemptRecord:
    number: int
    started_at: datetime
    status_code: int | None
    latency_ms: float | None
    error_code: str | None
    error: str | None


@dataclass(frozen=True)
class SigningSecret:
    secret: str
    created_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True)
class OutboxEvent:
    topic: str
    key: str
    payload: bytes


# Builds the event announcing a delivery's new state, from the row as it now is.
Announce = Callable[[Delivery], OutboxEvent]


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(**{k: row[k] for k in Delivery.__dataclass_fields__})


async def _outbox(conn: asyncpg.Connection, events: Sequence[OutboxEvent]) -> None:
    """Queue ``events``; they carry the current trace context (the consumed event's, or the
    callback attempt's)."""
    by_topic: dict[str, list[OutboxEvent]] = {}
    for e in events:
        by_topic.setdefault(e.topic, []).append(e)
    for topic, group in by_topic.items():
        await conn.execute(
            "INSERT INTO outbox (topic, keys, payloads, headers) VALUES ($1, $2, $3, $4)",
            topic,
            [e.key for e in group],
            [e.payload for e in group],
            outbox_headers(len(group)),
        )


# Due deliveries, oldest first, skipping partners already at their in-flight cap. Rows locked by
# another dispatcher's claim are skipped, not waited for.
_CANDIDATES = """
SELECT delivery_id, partner_id FROM deliveries
WHERE next_attempt_at <= now() AND NOT (partner_id = ANY($1::text[])) AND body IS NOT NULL
ORDER BY next_attempt_at
LIMIT $2
FOR UPDATE SKIP LOCKED
"""

# The claim moves next_attempt_at to the end of the lease: if this dispatcher dies, the delivery
# is due again then, for any replica.
_CLAIM = """
UPDATE deliveries
SET next_attempt_at = now() + make_interval(secs => $2), lease_token = $3, updated_at = now()
WHERE delivery_id = ANY($1::text[])
RETURNING *
"""


def _secret_context(partner_id: str) -> str:
    """What a signing secret's ciphertext is bound to: it opens only on its own partner's row."""
    return f"notifier.signing_secret:{partner_id}"


class NotifierRepository:
    def __init__(self, pool: asyncpg.Pool, box: SecretBox) -> None:
        self._pool = pool
        self._box = box

    # -- recording deliveries (Kafka handler) --------------------------------------------------

    async def create_delivery(self, new: NewDelivery, announce: Announce) -> bool:
        """Record a pending delivery due now, with its event; False when this (partner, call,
        kind) already has one (a redelivered Kafka event) or the call was erased (a late event
        must not bring it back), in which case nothing changes."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await lock_live_call(conn, new.partner_id, new.call_id):
                return False
            row = await conn.fetchrow(
                "INSERT INTO deliveries (delivery_id, partner_id, call_id, kind, tenant_id, subtenant_id, url, body,"
                " state, next_attempt_at, source_at, received_at, trace_context, body_expires_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', now(), $9, $10, $11, $12)"
                " ON CONFLICT (partner_id, call_id, kind) DO NOTHING RETURNING *",
                new.delivery_id,
                new.partner_id,
                new.call_id,
                new.kind,
                new.tenant_id,
                new.subtenant_id,
                new.url,
                new.body,
                new.source_at,
                new.received_at,
                tracing.current_carrier(),
                new.body_expires_at,
            )
            if row is None:
                return False
            await _outbox(conn, [announce(_delivery(row))])
            return True

    async def redeliver(
        self, command_id: uuid.UUID, partner_id: str, call_id: str, announce: Announce, purged: Announce
    ) -> list[str]:
        """Apply a redeliver command once: every finished (delivered or failed) delivery of the
        call goes back to pending with a fresh attempt budget, same delivery id. Returns the
        delivery ids reset (empty when the command was applied before or nothing is finished).

        Either way the first time, each of the call's deliveries is announced (``announce`` names
        the command), so the gateway knows the command was acted on and lifts its guard: a
        command that finds nothing finished (a stale view) still gets its answer. A delivery
        whose body was purged under the tenant's retention cannot be sent again: it is left as it
        is and announced with ``purged`` (which names the command and says why)."""
        async with self._pool.acquire() as conn, conn.transaction():
            fresh = await conn.fetchval(
                "INSERT INTO applied_commands (event_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING event_id",
                command_id,
            )
            if fresh is None:
                return []
            # The new round's attempts join the trace of the redelivery request.
            rows = await conn.fetch(
                "UPDATE deliveries SET state = 'pending', round_attempts = 0, next_attempt_at = now(),"
                " lease_token = NULL, last_error = NULL, updated_at = now(),"
                " trace_context = coalesce($3, trace_context)"
                " WHERE partner_id = $1 AND call_id = $2 AND state IN ('delivered', 'failed') AND body IS NOT NULL"
                " RETURNING *",
                partner_id,
                call_id,
                tracing.current_carrier(),
            )
            deliveries = [_delivery(r) for r in rows]
            gone = await conn.fetch(
                "SELECT * FROM deliveries WHERE partner_id = $1 AND call_id = $2 AND body IS NULL",
                partner_id,
                call_id,
            )
            answers = [purged(_delivery(r)) for r in gone]
            if not deliveries:
                unchanged = await conn.fetch(
                    "SELECT * FROM deliveries WHERE partner_id = $1 AND call_id = $2 AND body IS NOT NULL",
                    partner_id,
                    call_id,
                )
                await _outbox(conn, [announce(_delivery(r)) for r in unchanged] + answers)
                return []
            await _outbox(conn, [announce(d) for d in deliveries] + answers)
            return [d.delivery_id for d in deliveries]

    # -- data protection -----------------------------------------------------------------------

    async def erase(self, event: CallErased) -> dict[str, int]:
        """Write the call's tombstone and delete everything held of it: its deliveries (their
        attempts cascade), its records set aside from the outbox, and its events still waiting in
        the outbox. Idempotent. A dispatcher attempt in flight then finds no row to record to
        (as when its lease is lost) and sends nothing more."""
        key = call_key(event.partner_id, event.call_id)
        async with self._pool.acquire() as conn, conn.transaction():
            await begin_erasure(conn, event.partner_id, event.call_id, event.payload.erasure_id)
            deliveries = await conn.fetch(
                "DELETE FROM deliveries WHERE partner_id = $1 AND call_id = $2 RETURNING delivery_id",
                event.partner_id,
                event.call_id,
            )
            dead = await conn.fetch("DELETE FROM outbox_dead WHERE key = $1 RETURNING id", key)
            pending = 0
            # Waits for a relay publishing these rows right now; then only what is left is cut.
            rows = await conn.fetch(
                "SELECT id, keys, payloads, headers FROM outbox WHERE $1 = ANY(keys) ORDER BY id FOR UPDATE", key
            )
            for row in rows:
                keep = [i for i, k in enumerate(row["keys"]) if k != key]
                pending += len(row["keys"]) - len(keep)
                if not keep:
                    await conn.execute("DELETE FROM outbox WHERE id = $1", row["id"])
                    continue
                headers = row["headers"]
                await conn.execute(
                    "UPDATE outbox SET keys = $2, payloads = $3, headers = $4 WHERE id = $1",
                    row["id"],
                    [row["keys"][i] for i in keep],
                    [row["payloads"][i] for i in keep],
                    None if headers is None else [headers[i] if i < len(headers) else None for i in keep],
                )
            return {"deliveries": len(deliveries), "outbox_dead": len(dead), "outbox": pending}

    async def purge_bodies(self, now: datetime, *, batch: int = 500) -> dict[str, int]:
        """Clear the bodies of final deliveries (delivered or failed, nothing scheduled) whose
        retention ended by ``now``; a delivery still being delivered keeps its body until it is
        final. Idempotent; one batch per statement."""
        purged = 0
        while True:
            n = await self._pool.fetchval(
                "WITH due AS (SELECT delivery_id FROM deliveries WHERE body_expires_at <= $1"
                " AND body_purged_at IS NULL AND state IN ('delivered', 'failed') AND next_attempt_at IS NULL"
                " LIMIT $2 FOR UPDATE SKIP LOCKED),"
                " cut AS (UPDATE deliveries d SET body = NULL, body_purged_at = $1 FROM due"
                " WHERE d.delivery_id = due.delivery_id RETURNING 1)"
                " SELECT count(*) FROM cut",
                now,
                batch,
            )
            purged += n
            if n < batch:
                break
        return {"bodies": purged}

    # -- dispatching ---------------------------------------------------------------------------

    async def claim(self, *, limit: int, in_flight: dict[str, int], per_partner: int, lease_s: float) -> list[Claimed]:
        """Reserve up to ``limit`` due deliveries for ``lease_s`` seconds, at most ``per_partner``
        in flight per partner counting ``in_flight`` (this dispatcher's current work)."""
        busy = [p for p, n in in_flight.items() if n >= per_partner]
        token = uuid.uuid4()
        async with self._pool.acquire() as conn, conn.transaction():
            # Look further than ``limit`` so that one partner's backlog does not fill the claim.
            candidates = await conn.fetch(_CANDIDATES, busy, limit * 4)
            room = dict(in_flight)
            picked: list[str] = []
            for row in candidates:
                if len(picked) >= limit:
                    break
                partner = row["partner_id"]
                if room.get(partner, 0) < per_partner:
                    room[partner] = room.get(partner, 0) + 1
                    picked.append(row["delivery_id"])
            if not picked:
                return []
            rows = await conn.fetch(_CLAIM, picked, lease_s, token)
        return [Claimed(_delivery(r), bytes(r["body"]), token) for r in rows]

    async def next_due(self, exclude_partners: Sequence[str] = ()) -> datetime | None:
        """When the earliest scheduled delivery (of the partners not excluded) is due; None when
        nothing is scheduled."""
        value: datetime | None = await self._pool.fetchval(
            "SELECT min(next_attempt_at) FROM deliveries WHERE next_attempt_at IS NOT NULL"
            " AND NOT (partner_id = ANY($1::text[]))",
            list(exclude_partners),
        )
        return value

    async def finish_attempt(
        self,
        claimed: Claimed,
        attempt: AttemptRecord,
        *,
        state: str,
        retry_in_s: float | None,
        announce: Announce,
    ) -> Delivery | None:
        """Record an attempt and the delivery's new state (retrying with ``retry_in_s``,
        delivered or failed), with its event. None, and nothing written, when the claim's lease
        was lost (another dispatcher owns the delivery now)."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE deliveries SET state = $3, attempts = greatest(attempts, $4),"
                " round_attempts = round_attempts + 1,"
                " next_attempt_at = CASE WHEN $5::double precision IS NULL THEN NULL"
                " ELSE now() + make_interval(secs => $5) END,"
                " lease_token = NULL, last_error = $6, updated_at = now(),"
                # The ingest-to-callback latency is measured once, at the end of the first round.
                " received_at = CASE WHEN $3 IN ('delivered', 'failed') THEN NULL ELSE received_at END"
                " WHERE delivery_id = $1 AND lease_token = $2 RETURNING *",
                claimed.delivery.delivery_id,
                claimed.token,
                state,
                attempt.number,
                retry_in_s,
                attempt.error,
            )
            if row is None:
                return None
            await conn.execute(
                "INSERT INTO delivery_attempts (delivery_id, number, started_at, status_code, latency_ms,"
                " error_code, error) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                claimed.delivery.delivery_id,
                attempt.number,
                attempt.started_at,
                attempt.status_code,
                attempt.latency_ms,
                attempt.error_code,
                attempt.error,
            )
            delivery = _delivery(row)
            await _outbox(conn, [announce(delivery)])
            return delivery

    async def refuse(self, claimed: Claimed, error: str, announce: Announce) -> Delivery | None:
        """End a delivery as failed without an attempt (its URL must not be contacted)."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE deliveries SET state = 'failed', next_attempt_at = NULL, lease_token = NULL,"
                " last_error = $3, updated_at = now(), received_at = NULL"
                " WHERE delivery_id = $1 AND lease_token = $2 RETURNING *",
                claimed.delivery.delivery_id,
                claimed.token,
                error,
            )
            if row is None:
                return None
            delivery = _delivery(row)
            await _outbox(conn, [announce(delivery)])
            return delivery

    async def release(self, claims: Sequence[Claimed]) -> None:
        """Hand unfinished claims back (due now), e.g. at shutdown."""
        if claims:
            await self._pool.execute(
                "UPDATE deliveries SET next_attempt_at = now(), lease_token = NULL"
                " WHERE delivery_id = ANY($1::text[]) AND lease_token = ANY($2::uuid[])",
                [c.delivery.delivery_id for c in claims],
                list({c.token for c in claims}),
            )

    # -- signing secrets -----------------------------------------------------------------------

    def _open(self, partner_id: str, row: asyncpg.Record) -> str:
        sealed: str | None = row["secret_sealed"]
        if sealed is None:  # written before secrets were sealed, and not yet sealed at start-up
            plain: str = row["secret"]
            return plain
        return self._box.open(sealed, _secret_context(partner_id))

    async def valid_secrets(self, partner_ids: Sequence[str]) -> tuple[dict[str, list[str]], list[str]]:
        """Each partner's valid signing secrets, newest first, creating a current one for a
        partner that has none; returns them and the partners whose secret was created now."""
        query = (
            "SELECT partner_id, secret, secret_sealed FROM signing_secrets WHERE partner_id = ANY($1::text[])"
            " AND (expires_at IS NULL OR expires_at > now()) ORDER BY partner_id, created_at DESC, id DESC"
        )
        wanted = sorted(set(partner_ids))
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(query, wanted)
            found: dict[str, list[str]] = {}
            for r in rows:
                found.setdefault(r["partner_id"], []).append(self._open(r["partner_id"], r))
            missing = [p for p in wanted if p not in found]
            created: list[str] = []
            if missing:
                # Another replica may create the same partner's secret at the same moment: the
                # partial unique index keeps one, and both read it back.
                inserted = await conn.fetch(
                    "INSERT INTO signing_secrets (partner_id, secret_sealed)"
                    " SELECT * FROM unnest($1::text[], $2::text[])"
                    " ON CONFLICT (partner_id) WHERE expires_at IS NULL DO NOTHING RETURNING partner_id",
                    missing,
                    [self._box.seal(new_secret(), _secret_context(p)) for p in missing],
                )
                created = [r["partner_id"] for r in inserted]
                for r in await conn.fetch(query, missing):
                    found.setdefault(r["partner_id"], []).append(self._open(r["partner_id"], r))
        return found, created

    async def secrets_of(self, partner_id: str) -> list[SigningSecret]:
        """The partner's valid secrets, current (``expires_at`` None) first."""
        rows = await self._pool.fetch(
            "SELECT secret, secret_sealed, created_at, expires_at FROM signing_secrets WHERE partner_id = $1"
            " AND (expires_at IS NULL OR expires_at > now()) ORDER BY expires_at DESC NULLS FIRST, id DESC",
            partner_id,
        )
        return [SigningSecret(self._open(partner_id, r), r["created_at"], r["expires_at"]) for r in rows]

    async def rotate_secret(self, partner_id: str, grace_s: float) -> None:
        """Make a new current secret; the previous one stays valid for ``grace_s`` seconds."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"notifier-secret:{partner_id}")
            await conn.execute(
                "UPDATE signing_secrets SET expires_at = now() + make_interval(secs => $2)"
                " WHERE partner_id = $1 AND expires_at IS NULL",
                partner_id,
                grace_s,
            )
            await conn.execute(
                "INSERT INTO signing_secrets (partner_id, secret_sealed) VALUES ($1, $2)",
                partner_id,
                self._box.seal(new_secret(), _secret_context(partner_id)),
            )

    async def seal_secrets(self) -> dict[str, int]:
        """Seal every signing secret still in plain text, and re-wrap every sealed one whose data
        key is wrapped by an older key (key rotation); idempotent, safe on several replicas at
        once (rows are locked one batch at a time). Returns how many of each."""
        sealed = rewrapped = 0
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, partner_id, secret, secret_sealed FROM signing_secrets"
                " WHERE secret IS NOT NULL OR secret_sealed NOT LIKE $1 FOR UPDATE SKIP LOCKED",
                f"enc:v1:{self._box.current}:%",
            )
            for row in rows:
                context = _secret_context(row["partner_id"])
                if row["secret_sealed"] is None:
                    value, sealed = self._box.seal(row["secret"], context), sealed + 1
                else:
                    value, rewrapped = self._box.rewrap(row["secret_sealed"], context), rewrapped + 1
                await conn.execute(
                    "UPDATE signing_secrets SET secret_sealed = $2, secret = NULL WHERE id = $1", row["id"], value
                )
        return {"sealed": sealed, "rewrapped": rewrapped}

    # -- reading (tests, admin) ----------------------------------------------------------------

    async def find(self, partner_id: str, call_id: str, kind: str) -> Delivery | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM deliveries WHERE partner_id = $1 AND call_id = $2 AND kind = $3",
            partner_id,
            call_id,
            kind,
        )
        return _delivery(row) if row else None

    async def attempts(self, delivery_id: str) -> list[AttemptRecord]:
        rows = await self._pool.fetch(
            "SELECT number, started_at, status_code, latency_ms, error_code, error FROM delivery_attempts"
            " WHERE delivery_id = $1 ORDER BY number",
            delivery_id,
        )
        return [AttemptRecord(**dict(r)) for r in rows]

    async def body(self, delivery_id: str) -> bytes | None:
        value: Any = await self._pool.fetchval("SELECT body FROM deliveries WHERE delivery_id = $1", delivery_id)
        return bytes(value) if value is not None else None
