"""All SQL of the dashboard (gateway schema, tables of ``migrations/010_dashboard.sql``).

It reads the status read model's ``call_status`` and ``callback_attempts`` (the gateway's own
tables) for a call's pipeline state, result and delivery log; everything else comes from the
dashboard's own tables, folded by ``projector``.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from services.common.erasure import is_erased, lock_call
from services.gateway.dashboard.facts import (
    LENGTH_BANDS,
    SCORE_BANDS,
    STATUS_RANK,
    UNSCORED_BAND,
    CallFact,
    length_band,
    score_band,
)

# -------------------------------------------------------------------------------------------
# Embedding: origins, tokens, sessions
# -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """What a token or a session lets its holder see."""

    partner_id: str
    tenant_id: str
    subtenant_id: str
    agent_id: str | None
    read_only: bool


@dataclass(frozen=True)
class Session:
    grant: Grant
    csrf_token: str
    embed_origin: str | None
    expires_at: datetime


@dataclass(frozen=True)
class Redeemed:
    """A token just exchanged (or found already exchanged, ``fresh`` False)."""

    grant: Grant
    expires_at: datetime
    fresh: bool


# -------------------------------------------------------------------------------------------
# Queries
# -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """The session's scope: one tenant and subtenant, and one agent when the token said so."""

    partner_id: str
    tenant_id: str
    subtenant_id: str
    agent_id: str | None = None


@dataclass(frozen=True)
class Filters:
    """The filters every page shares (dates are UTC days, both inclusive)."""

    date_from: date
    date_to: date
    agent_id: str | None = None
    intent: str | None = None
    status: str | None = None
    score_band: int | None = None
    length_band: int | None = None


SORT_COLUMNS = {"date": "started_at", "score": "score_sort", "duration": "duration_s"}
_LIST_COLUMNS = (
    "call_id, started_at, duration_s, agent_id, agent_name, customer_id, customer_name, status, intent,"
    " quality_score, score_sort"
)
_CONCERN_COLUMNS = (
    ("Pricing", "c_pricing"),
    ("Functionality", "c_functionality"),
    ("Integration", "c_integration"),
    ("Timing", "c_timing"),
    ("Competition", "c_competition"),
    ("Trust", "c_trust"),
    ("Authority", "c_authority"),
    ("Other", "c_other"),
)


class _Where:
    """A WHERE clause assembled from fixed fragments; every value is a parameter."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.args: list[Any] = []

    def param(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, clause: str) -> None:
        self.clauses.append(clause)

    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "true"


def _agent(scope: Scope, filters: Filters) -> tuple[str | None, bool]:
    """The agent to restrict to, and whether the filter asks for an agent outside the scope."""
    if scope.agent_id is not None:
        return scope.agent_id, filters.agent_id is not None and filters.agent_id != scope.agent_id
    return filters.agent_id, False


def _scoped(w: _Where, scope: Scope, table: str = "") -> None:
    p = f"{table}." if table else ""
    w.add(f"{p}partner_id = {w.param(scope.partner_id)}")
    w.add(f"{p}tenant_id = {w.param(scope.tenant_id)}")
    w.add(f"{p}subtenant_id = {w.param(scope.subtenant_id)}")


#: Ranges longer than this read whole weeks from the weekly grains (and chart by week).
WEEKLY_AFTER_DAYS = 92
#: The Agents page's trend is weekly up to this range, monthly beyond.
TREND_WEEKS_UP_TO_DAYS = 182


def weekly(filters: Filters) -> bool:
    return (filters.date_to - filters.date_from).days + 1 > WEEKLY_AFTER_DAYS


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


#: Bits of ``grain`` (see ``010_dashboard.sql``).
WEEK, INTENT, SCORE_BAND, LENGTH_BAND = 1, 2, 4, 8
#: The grains each finished call is added to: every combination of the optional dimensions, by
#: day and by week (the call aggregates always keep the intent, so it is not optional there).
AGG_GRAINS = tuple(m | t for m in (0, SCORE_BAND, LENGTH_BAND, SCORE_BAND | LENGTH_BAND) for t in (0, WEEK))
PARAM_GRAINS = tuple(m | t for m in range(0, INTENT | SCORE_BAND | LENGTH_BAND + 1, INTENT) for t in (0, WEEK))


#: What each aggregate table's pages read (its covering primary key holds all of them).
AGG_COLUMNS = (
    "day, agent_id, status, intent, calls, scored, score_sum, fatal_failed, talk_n, talk_sum, duration_sum,"
    " bant_needs, bant_budget, bant_authority, bant_timeline, c_pricing, c_functionality, c_integration, c_timing,"
    " c_competition, c_trust, c_authority, c_other"
)
PARAM_COLUMNS = "day, agent_id, parameter, n, score_sum, max_sum"


def agg_source(scope: Scope, filters: Filters, *, params: bool = False) -> tuple[str, list[Any]]:
    """A FROM item with the aggregate rows matching the filters, and its arguments.

    The rows come from the grain keeping exactly the dimensions filtered on (see
    ``010_dashboard.sql``), by week for the whole weeks of a long range and by day for its ragged
    ends. Each (grain, days) segment is its own branch of a UNION ALL, whose conditions are all
    equalities on the covering primary key's leading columns and a range on its day: every
    branch is one index-only range scan that reads only matching rows."""
    kept = (
        (INTENT if params and filters.intent is not None else 0)
        | (SCORE_BAND if filters.score_band is not None else 0)
        | (LENGTH_BAND if filters.length_band is not None else 0)
    )
    start, end = filters.date_from, filters.date_to + timedelta(days=1)  # end exclusive
    first_week = monday(filters.date_from + timedelta(days=6))  # the first Monday on or after the start
    end_week = monday(end)  # the Monday after the last whole week
    if weekly(filters) and first_week < end_week:
        segments = [(kept, start, first_week), (kept | WEEK, first_week, end_week), (kept, end_week, end)]
    else:
        segments = [(kept, start, end)]
    w = _Where()
    _scoped(w, scope)
    # The dimensions a grain does not keep hold a constant: stating it keeps the scan on the key.
    if params:
        w.add(f"intent = {w.param(filters.intent if filters.intent is not None else '*')}")
    w.add(f"score_band = {w.param(filters.score_band if filters.score_band is not None else -1)}")
    w.add(f"length_band = {w.param(filters.length_band if filters.length_band is not None else -1)}")
    agent, outside = _agent(scope, filters)
    if outside:
        w.add("false")
    if agent is not None:
        w.add(f"agent_id = {w.param(agent)}")
    if filters.status == "processing":
        w.add("false")  # the aggregates hold finished calls only
    elif filters.status is not None:
        if params:
            if filters.status != "completed":
                w.add("false")  # rubric scores exist for completed calls only
        else:
            w.add(f"status = {w.param(filters.status)}")
    if not params and filters.intent is not None:
        w.add(f"intent = {w.param(filters.intent)}")
    table, columns = ("dashboard_agg_params", PARAM_COLUMNS) if params else ("dashboard_agg", AGG_COLUMNS)
    common = w.sql()
    branches = []
    for grain, low, high in segments:
        if low >= high:
            continue
        branches.append(
            f"SELECT {columns} FROM {table} WHERE {common} AND grain = {w.param(grain)}"  # noqa: S608
            f" AND day >= {w.param(low)} AND day < {w.param(high)}"
        )
    return f"({' UNION ALL '.join(branches)}) AS a", w.args


def calls_where(scope: Scope, filters: Filters, search: str | None, candidates: list[str] | None = None) -> _Where:
    w = _Where()
    _scoped(w, scope)
    start = datetime.combine(filters.date_from, datetime.min.time(), UTC)
    end = datetime.combine(filters.date_to + timedelta(days=1), datetime.min.time(), UTC)
    w.add(f"started_at >= {w.param(start)}")
    w.add(f"started_at < {w.param(end)}")
    agent, outside = _agent(scope, filters)
    if outside:
        w.add("false")
    if agent is not None:
        w.add(f"agent_id = {w.param(agent)}")
    if filters.status is not None:
        w.add(f"status = {w.param(filters.status)}")
    if filters.intent is not None:
        w.add(f"intent = {w.param(filters.intent)}")
    if filters.score_band is not None:
        if filters.score_band == UNSCORED_BAND:
            w.add("score_sort < 0")
        else:
            _, _, low, high = SCORE_BANDS[filters.score_band]
            w.add(f"score_sort >= {w.param(low)}")
            if high != float("inf"):
                w.add(f"score_sort < {w.param(high)}")
    if filters.length_band is not None:
        _, _, low, high = LENGTH_BANDS[filters.length_band]
        w.add(f"duration_s >= {w.param(low)}")
        if high != float("inf"):
            w.add(f"duration_s < {w.param(high)}")
    if candidates is not None:
        w.add(f"call_id = ANY({w.param(candidates)}::text[])")
    elif search:
        prefix = w.param(_like_prefix(search.lower()))
        w.add(
            f"(lower(call_id) LIKE {prefix} OR lower(customer_id) LIKE {prefix} OR lower(customer_name) LIKE {prefix})"
        )
    return w


#: A search whose prefix matches at most this many calls is answered from its matches (three
#: index range scans); a broader one by filtering the sorted scan, which fills a page quickly.
SEARCH_CANDIDATES = 2000
_SEARCH = """
(SELECT call_id FROM dashboard_calls WHERE partner_id = $1 AND tenant_id = $2 AND subtenant_id = $3
   AND lower(call_id) LIKE $4 LIMIT $5)
UNION
(SELECT call_id FROM dashboard_calls WHERE partner_id = $1 AND tenant_id = $2 AND subtenant_id = $3
   AND lower(customer_id) LIKE $4 LIMIT $5)
UNION
(SELECT call_id FROM dashboard_calls WHERE partner_id = $1 AND tenant_id = $2 AND subtenant_id = $3
   AND lower(customer_name) LIKE $4 LIMIT $5)
"""


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def encode_cursor(value: Any, call_id: str) -> str:
    raw = orjson.dumps([value.isoformat() if isinstance(value, datetime) else value, call_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[Any, str]:
    """Raises ValueError when the cursor is not one this sort produced."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    value, call_id = orjson.loads(raw)
    if not isinstance(call_id, str):
        raise ValueError("cursor")
    if sort == "date":
        when = datetime.fromisoformat(value)
        if when.tzinfo is None:
            raise ValueError("cursor")
        return when, call_id
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError("cursor")
    return float(value), call_id


# -------------------------------------------------------------------------------------------
# The fold
# -------------------------------------------------------------------------------------------

_UPSERT_CALL = """
INSERT INTO dashboard_calls AS d (
    partner_id, call_id, tenant_id, subtenant_id, agent_id, agent_name, customer_id, customer_name, started_at,
    duration_s, status, status_rank, intent, quality_score, score_sort, fatal_failed, talk_ratio, concerns,
    blob_uri, media_type, details, audio_redacted
) VALUES (
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::real, coalesce($14::real, -1),
    $15, $16, $17, $18, $19, $20, $21
)
ON CONFLICT (partner_id, call_id) DO UPDATE SET
    agent_id = coalesce(d.agent_id, excluded.agent_id),
    agent_name = coalesce(d.agent_name, excluded.agent_name),
    customer_id = CASE WHEN d.results_purged_at IS NOT NULL THEN NULL
                       ELSE coalesce(d.customer_id, excluded.customer_id) END,
    customer_name = CASE WHEN d.results_purged_at IS NOT NULL THEN NULL
                         ELSE coalesce(d.customer_name, excluded.customer_name) END,
    started_at = coalesce(d.started_at, excluded.started_at),
    duration_s = coalesce(d.duration_s, excluded.duration_s),
    details = CASE WHEN d.results_purged_at IS NOT NULL THEN d.details ELSE coalesce(d.details, excluded.details) END,
    status = CASE WHEN excluded.status_rank > d.status_rank THEN excluded.status ELSE d.status END,
    status_rank = greatest(d.status_rank, excluded.status_rank),
    -- A call that failed first stays failed: a late analysis is not shown or counted.
    intent = CASE WHEN d.status = 'failed' THEN d.intent ELSE coalesce(d.intent, excluded.intent) END,
    quality_score = CASE WHEN d.status = 'failed' THEN d.quality_score
                         ELSE coalesce(d.quality_score, excluded.quality_score) END,
    score_sort = CASE WHEN d.status = 'failed' THEN d.score_sort
                      ELSE coalesce(d.quality_score, excluded.quality_score, -1) END,
    fatal_failed = CASE WHEN d.status = 'failed' THEN d.fatal_failed
                        ELSE coalesce(d.fatal_failed, excluded.fatal_failed) END,
    talk_ratio = CASE WHEN d.status = 'failed' THEN d.talk_ratio ELSE coalesce(d.talk_ratio, excluded.talk_ratio) END,
    concerns = CASE WHEN d.status = 'failed' THEN d.concerns ELSE coalesce(d.concerns, excluded.concerns) END,
    -- The bleeped copy, once known, is the only recording served for the call (the fetched
    -- event of such a call names no recording, in whatever order the two events come).
    blob_uri = CASE WHEN d.recording_purged_at IS NOT NULL THEN NULL
                    WHEN excluded.audio_redacted THEN excluded.blob_uri
                    WHEN d.audio_redacted THEN d.blob_uri
                    ELSE coalesce(d.blob_uri, excluded.blob_uri) END,
    media_type = CASE WHEN excluded.audio_redacted THEN excluded.media_type
                      WHEN d.audio_redacted THEN d.media_type
                      ELSE coalesce(d.media_type, excluded.media_type) END,
    audio_redacted = d.audio_redacted OR excluded.audio_redacted,
    updated_at = now()
"""

_UPSERT_AGENT = """
INSERT INTO dashboard_agents AS a (partner_id, tenant_id, subtenant_id, agent_id, agent_name)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (partner_id, tenant_id, subtenant_id, agent_id) DO UPDATE SET agent_name = excluded.agent_name
WHERE excluded.agent_name IS NOT NULL AND a.agent_name IS DISTINCT FROM excluded.agent_name
"""

# The exactly-once step: the flag flips once, and the aggregates are added to in the same
# transaction; a redelivered or concurrent event finds it flipped (the row lock orders them).
_COUNT_ONCE = """
UPDATE dashboard_calls SET counted = true
WHERE partner_id = $1 AND call_id = $2 AND NOT counted AND status_rank = 2
  AND started_at IS NOT NULL AND agent_id IS NOT NULL
RETURNING tenant_id, subtenant_id, agent_id, started_at, duration_s, status, intent, quality_score, fatal_failed,
          talk_ratio, concerns
"""

_ADD_AGG = """
INSERT INTO dashboard_agg AS a (
    partner_id, tenant_id, subtenant_id, grain, day, agent_id, status, intent, score_band, length_band,
    calls, scored, score_sum, fatal_failed, talk_n, talk_sum, duration_sum,
    bant_needs, bant_budget, bant_authority, bant_timeline,
    c_pricing, c_functionality, c_integration, c_timing, c_competition, c_trust, c_authority, c_other
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
          $21, $22, $23, $24, $25, $26, $27, $28)
ON CONFLICT (partner_id, tenant_id, subtenant_id, grain, score_band, length_band, day, agent_id, status, intent)
DO UPDATE SET
    calls = a.calls + 1, scored = a.scored + excluded.scored, score_sum = a.score_sum + excluded.score_sum,
    fatal_failed = a.fatal_failed + excluded.fatal_failed, talk_n = a.talk_n + excluded.talk_n,
    talk_sum = a.talk_sum + excluded.talk_sum, duration_sum = a.duration_sum + excluded.duration_sum,
    bant_needs = a.bant_needs + excluded.bant_needs, bant_budget = a.bant_budget + excluded.bant_budget,
    bant_authority = a.bant_authority + excluded.bant_authority,
    bant_timeline = a.bant_timeline + excluded.bant_timeline,
    c_pricing = a.c_pricing + excluded.c_pricing, c_functionality = a.c_functionality + excluded.c_functionality,
    c_integration = a.c_integration + excluded.c_integration, c_timing = a.c_timing + excluded.c_timing,
    c_competition = a.c_competition + excluded.c_competition, c_trust = a.c_trust + excluded.c_trust,
    c_authority = a.c_authority + excluded.c_authority, c_other = a.c_other + excluded.c_other
"""

_ADD_PARAM = """
INSERT INTO dashboard_agg_params AS p (
    partner_id, tenant_id, subtenant_id, grain, day, agent_id, intent, score_band, length_band, parameter,
    n, score_sum, max_sum
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $11, $12)
ON CONFLICT (partner_id, tenant_id, subtenant_id, grain, intent, score_band, length_band, day, agent_id, parameter)
DO UPDATE SET n = p.n + 1, score_sum = p.score_sum + excluded.score_sum, max_sum = p.max_sum + excluded.max_sum
"""


def _call_args(f: CallFact) -> tuple[Any, ...]:
    return (
        f.partner_id,
        f.call_id,
        f.tenant_id,
        f.subtenant_id,
        f.agent_id,
        f.agent_name,
        f.customer_id,
        f.customer_name,
        f.started_at,
        f.duration_s,
        f.status,
        STATUS_RANK[f.status],
        f.intent,
        f.quality_score,
        f.fatal_failed,
        f.talk_ratio,
        list(f.concerns) if f.concerns is not None else None,
        f.blob_uri,
        f.media_type,
        f.details,
        f.audio_redacted,
    )


def aggregate_rows(
    partner_id: str, counted: asyncpg.Record | dict[str, Any], fact: CallFact
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The aggregate and rubric-parameter rows one finished call adds (all four grains), in key
    order, so concurrent folds lock rows in the same order."""
    day = counted["started_at"].astimezone(UTC).date()
    status = counted["status"]
    intent = counted["intent"] or ""
    score = counted["quality_score"]
    sband, lband = score_band(score), length_band(counted["duration_s"])
    concerns = set(counted["concerns"] or ())
    completed = status == "completed" and fact.status == "completed"
    bant = fact.bant if completed and fact.bant is not None else (False, False, False, False)
    talk = counted["talk_ratio"]
    measures = (
        1 if score is not None else 0,
        float(score or 0.0),
        1 if counted["fatal_failed"] else 0,
        1 if talk is not None else 0,
        float(talk or 0.0),
        float(counted["duration_s"] or 0.0),
        *(int(flag) for flag in bant),
        *(int(name in concerns) for name, _ in _CONCERN_COLUMNS),
    )
    base = (partner_id, counted["tenant_id"], counted["subtenant_id"])
    agent = counted["agent_id"]

    def keys(grain: int) -> tuple[date, int, int]:
        return (
            monday(day) if grain & WEEK else day,
            sband if grain & SCORE_BAND else -1,
            lband if grain & LENGTH_BAND else -1,
        )

    agg = []
    for grain in AGG_GRAINS:
        bucket, s, length = keys(grain)
        agg.append((*base, grain, bucket, agent, status, intent, s, length, *measures))
    params: list[tuple[Any, ...]] = []
    if completed:
        for grain in PARAM_GRAINS:
            bucket, s, length = keys(grain)
            kept_intent = intent if grain & INTENT else "*"
            params.extend(
                (*base, grain, bucket, agent, kept_intent, s, length, p.parameter, p.score, p.max_score)
                for p in fact.params
            )
    # Key order, so concurrent folds lock rows in the same order and cannot deadlock.
    agg.sort(key=lambda row: row[3:10])
    params.sort(key=lambda row: row[3:10])
    return agg, params


class DashboardRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # -- the fold ------------------------------------------------------------------------------

    async def fold(self, fact: CallFact) -> bool:
        """Fold one event's fact; returns whether this fold counted the call in the aggregates.
        Nothing of an erased call is folded (checked under the call's erasure lock)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_call(conn, fact.partner_id, fact.call_id)
            if await is_erased(conn, fact.partner_id, fact.call_id):
                return False
            await conn.execute(_UPSERT_CALL, *_call_args(fact))
            counted = await conn.fetchrow(_COUNT_ONCE, fact.partner_id, fact.call_id)
            if counted is not None:
                agg, params = aggregate_rows(fact.partner_id, counted, fact)
                await conn.executemany(_ADD_AGG, agg)
                if params:
                    await conn.executemany(_ADD_PARAM, params)
            if fact.agent_id is not None:
                await conn.execute(
                    _UPSERT_AGENT, fact.partner_id, fact.tenant_id, fact.subtenant_id, fact.agent_id, fact.agent_name
                )
        return counted is not None

    async def erase(self, partner_id: str, call_id: str) -> bool:
        """Delete an erased call's row; returns whether there was one. The aggregates keep the
        call's counts: they are anonymous (counts and sums by agent, day and band, no customer
        data), and a call's exact contribution cannot be rebuilt to subtract it (its rubric
        scores are not kept), so subtracting would risk wrong charts for no privacy gain. The
        call's tombstone keeps it from being counted again."""
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_call(conn, partner_id, call_id)
            status = await conn.execute(
                "DELETE FROM dashboard_calls WHERE partner_id = $1 AND call_id = $2", partner_id, call_id
            )
        return bool(status.endswith(" 1"))

    # -- embedding -----------------------------------------------------------------------------

    async def allowed_origins(self, partner_id: str) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT origin FROM dashboard_origins WHERE partner_id = $1 ORDER BY origin", partner_id
        )
        return [r["origin"] for r in rows]

    async def allow_origin(self, partner_id: str, origin: str) -> None:
        await self._pool.execute(
            "INSERT INTO dashboard_origins (partner_id, origin) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            partner_id,
            origin,
        )

    async def disallow_origin(self, partner_id: str, origin: str) -> bool:
        status = await self._pool.execute(
            "DELETE FROM dashboard_origins WHERE partner_id = $1 AND origin = $2", partner_id, origin
        )
        return bool(status.endswith(" 1"))

    async def issue_token(self, token_sha256: bytes, grant: Grant, redeem_by: datetime, expires_at: datetime) -> None:
        await self._pool.execute(
            "INSERT INTO dashboard_tokens (token_sha256, partner_id, tenant_id, subtenant_id, agent_id, read_only,"
            " redeem_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            token_sha256,
            grant.partner_id,
            grant.tenant_id,
            grant.subtenant_id,
            grant.agent_id,
            grant.read_only,
            redeem_by,
            expires_at,
        )

    async def token_partner(self, token_sha256: bytes) -> str | None:
        """The partner a token belongs to (to apply its embedding rules before spending it)."""
        value = await self._pool.fetchval(
            "SELECT partner_id FROM dashboard_tokens WHERE token_sha256 = $1", token_sha256
        )
        return str(value) if value is not None else None

    async def redeem_token(
        self,
        token_sha256: bytes,
        *,
        session_sha256: bytes,
        csrf_token: str,
        embed_origin: str | None,
        existing_session_sha256: bytes | None,
    ) -> Redeemed | None:
        """Exchange the token for a new session, once. A token already exchanged still answers
        (``fresh`` False) when the caller holds the session it was exchanged for, so a reload of
        the embedding page keeps working; otherwise None, as for an unknown or expired token."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE dashboard_tokens SET redeemed_at = now()"
                " WHERE token_sha256 = $1 AND redeemed_at IS NULL AND redeem_by > now() AND expires_at > now()"
                " RETURNING partner_id, tenant_id, subtenant_id, agent_id, read_only, expires_at",
                token_sha256,
            )
            if row is None:
                if existing_session_sha256 is None:
                    return None
                held = await conn.fetchrow(
                    "SELECT s.partner_id, s.tenant_id, s.subtenant_id, s.agent_id, s.read_only, s.expires_at"
                    " FROM dashboard_tokens t JOIN dashboard_sessions s ON s.session_sha256 = $2"
                    " AND s.partner_id = t.partner_id AND s.tenant_id = t.tenant_id"
                    " AND s.subtenant_id = t.subtenant_id AND s.agent_id IS NOT DISTINCT FROM t.agent_id"
                    " AND s.read_only = t.read_only AND s.expires_at = t.expires_at"
                    " WHERE t.token_sha256 = $1 AND t.redeemed_at IS NOT NULL AND s.expires_at > now()",
                    token_sha256,
                    existing_session_sha256,
                )
                if held is None:
                    return None
                return Redeemed(_grant(held), held["expires_at"], fresh=False)
            await conn.execute(
                "INSERT INTO dashboard_sessions (session_sha256, partner_id, tenant_id, subtenant_id, agent_id,"
                " read_only, csrf_token, embed_origin, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                session_sha256,
                row["partner_id"],
                row["tenant_id"],
                row["subtenant_id"],
                row["agent_id"],
                row["read_only"],
                csrf_token,
                embed_origin,
                row["expires_at"],
            )
        return Redeemed(_grant(row), row["expires_at"], fresh=True)

    async def find_session(self, session_sha256: bytes) -> Session | None:
        row = await self._pool.fetchrow(
            "SELECT partner_id, tenant_id, subtenant_id, agent_id, read_only, csrf_token, embed_origin, expires_at"
            " FROM dashboard_sessions WHERE session_sha256 = $1 AND expires_at > now()",
            session_sha256,
        )
        if row is None:
            return None
        return Session(_grant(row), row["csrf_token"], row["embed_origin"], row["expires_at"])

    async def revoke_sessions(self, partner_id: str) -> tuple[int, int]:
        """End every session of the partner and void its unredeemed tokens; returns the counts."""
        async with self._pool.acquire() as conn, conn.transaction():
            sessions = await conn.execute("DELETE FROM dashboard_sessions WHERE partner_id = $1", partner_id)
            tokens = await conn.execute(
                "UPDATE dashboard_tokens SET redeem_by = now() - interval '1 second'"
                " WHERE partner_id = $1 AND redeemed_at IS NULL AND redeem_by > now()",
                partner_id,
            )
        return int(sessions.split()[-1]), int(tokens.split()[-1])

    async def purge_expired(self) -> None:
        await self._pool.execute("DELETE FROM dashboard_sessions WHERE expires_at < now() - interval '1 day'")
        await self._pool.execute("DELETE FROM dashboard_tokens WHERE expires_at < now() - interval '1 day'")

    # -- pages -----------------------------------------------------------------------------------

    async def agents(self, scope: Scope) -> list[dict[str, Any]]:
        w = _Where()
        _scoped(w, scope)
        if scope.agent_id is not None:
            w.add(f"agent_id = {w.param(scope.agent_id)}")
        rows = await self._pool.fetch(
            f"SELECT agent_id, agent_name FROM dashboard_agents WHERE {w.sql()} ORDER BY agent_id",  # noqa: S608
            *w.args,
        )
        return [dict(r) for r in rows]

    async def overview(self, scope: Scope, filters: Filters) -> tuple[list[dict[str, Any]], ...]:
        source, args = agg_source(scope, filters)
        bucket = "date_trunc('week', day)::date" if weekly(filters) else "day"
        series_sql = (
            f"SELECT {bucket} AS bucket,"  # noqa: S608 - fixed fragments
            " sum(calls) FILTER (WHERE status = 'completed') AS completed,"
            " sum(calls) FILTER (WHERE status = 'failed') AS failed,"
            " sum(scored) AS scored, sum(score_sum) AS score_sum"
            f" FROM {source} GROUP BY 1 ORDER BY 1"
        )
        concern_sums = ", ".join(f"sum({column}) AS {column}" for _, column in _CONCERN_COLUMNS)
        mix_sql = (
            "SELECT intent, status, sum(calls) AS calls, sum(scored) AS scored, sum(score_sum) AS score_sum,"  # noqa: S608
            " sum(fatal_failed) AS fatal_failed, sum(talk_n) AS talk_n, sum(talk_sum) AS talk_sum,"
            " sum(duration_sum) AS duration_sum, sum(bant_needs) AS bant_needs, sum(bant_budget) AS bant_budget,"
            " sum(bant_authority) AS bant_authority, sum(bant_timeline) AS bant_timeline, "
            f"{concern_sums} FROM {source} GROUP BY intent, status"
        )
        # Two connections: both scans run at once.
        series, mix = await asyncio.gather(self._pool.fetch(series_sql, *args), self._pool.fetch(mix_sql, *args))
        return [dict(r) for r in series], [dict(r) for r in mix]

    async def agent_stats(self, scope: Scope, filters: Filters) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Per agent and week or month (the page adds them up), and per agent and rubric parameter."""
        source, args = agg_source(scope, filters)
        # A trend of at most about 26 points: by week, or by month over more than half a year.
        unit = "month" if (filters.date_to - filters.date_from).days > TREND_WEEKS_UP_TO_DAYS else "week"
        weekly_sql = (
            f"SELECT agent_id, date_trunc('{unit}', day)::date AS week, sum(calls) AS calls,"  # noqa: S608
            " sum(calls) FILTER (WHERE status = 'completed') AS completed, sum(scored) AS scored,"
            " sum(score_sum) AS score_sum, sum(talk_n) AS talk_n, sum(talk_sum) AS talk_sum,"
            f" sum(fatal_failed) AS fatal_failed FROM {source} GROUP BY 1, 2 ORDER BY 2"
        )
        param_source, param_args = agg_source(scope, filters, params=True)
        params_sql = (
            "SELECT agent_id, parameter, sum(n) AS n, sum(score_sum) AS score_sum, sum(max_sum) AS max_sum"  # noqa: S608
            f" FROM {param_source} GROUP BY 1, 2"
        )
        weeks, params = await asyncio.gather(
            self._pool.fetch(weekly_sql, *args), self._pool.fetch(params_sql, *param_args)
        )
        return [dict(r) for r in weeks], [dict(r) for r in params]

    async def list_calls(
        self,
        scope: Scope,
        filters: Filters,
        *,
        search: str | None,
        sort: str,
        descending: bool,
        after: tuple[Any, str] | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        w = calls_where(scope, filters, search, await self._candidates(scope, search))
        column = SORT_COLUMNS[sort]
        if after is not None:
            op = "<" if descending else ">"
            w.add(f"({column}, call_id) {op} ({w.param(after[0])}, {w.param(after[1])})")
        direction = "DESC" if descending else "ASC"
        sql = (
            f"SELECT {_LIST_COLUMNS} FROM dashboard_calls WHERE {w.sql()}"  # noqa: S608 - fixed fragments
            f" ORDER BY {column} {direction}, call_id {direction} LIMIT {w.param(limit)}"
        )
        return [dict(r) for r in await self._pool.fetch(sql, *w.args)]

    async def export_calls(
        self, scope: Scope, filters: Filters, *, search: str | None, limit: int, chunk: int = 2000
    ) -> AsyncIterator[Sequence[asyncpg.Record]]:
        """The filtered calls, newest first, in chunks (a server-side cursor: memory stays flat)."""
        w = calls_where(scope, filters, search, await self._candidates(scope, search))
        sql = (
            f"SELECT {_LIST_COLUMNS} FROM dashboard_calls WHERE {w.sql()}"  # noqa: S608 - fixed fragments
            f" ORDER BY started_at DESC, call_id DESC LIMIT {w.param(limit)}"
        )
        async with self._pool.acquire() as conn, conn.transaction():
            cursor = await conn.cursor(sql, *w.args)
            while rows := await cursor.fetch(chunk):
                yield rows

    async def _candidates(self, scope: Scope, search: str | None) -> list[str] | None:
        """The calls a selective search matches, or None (no search, or too many to list)."""
        if not search:
            return None
        rows = await self._pool.fetch(
            _SEARCH,
            scope.partner_id,
            scope.tenant_id,
            scope.subtenant_id,
            _like_prefix(search.lower()),
            SEARCH_CANDIDATES + 1,
        )
        return [r["call_id"] for r in rows] if len(rows) <= SEARCH_CANDIDATES else None

    async def call_detail(self, scope: Scope, call_id: str) -> dict[str, Any] | None:
        """The call's dashboard row joined with its status read-model row (None outside the scope)."""
        row = await self._pool.fetchrow(
            "SELECT d.call_id, d.tenant_id, d.subtenant_id, d.agent_id, d.agent_name, d.customer_id, d.customer_name,"
            " d.started_at, d.duration_s, d.status, d.intent, d.quality_score, d.fatal_failed, d.talk_ratio,"
            " d.blob_uri IS NOT NULL AS has_audio, d.details,"
            " s.status AS stage, s.received_at, s.completed_at, s.failed_at, s.result, s.error, s.callback_url,"
            " s.delivery_id, s.delivery_state, s.delivery_url, s.delivery_next_attempt_at, s.delivery_error"
            " FROM dashboard_calls d LEFT JOIN call_status s USING (partner_id, call_id)"
            " WHERE d.partner_id = $1 AND d.call_id = $2 AND d.tenant_id = $3 AND d.subtenant_id = $4"
            " AND ($5::text IS NULL OR d.agent_id = $5)",
            scope.partner_id,
            call_id,
            scope.tenant_id,
            scope.subtenant_id,
            scope.agent_id,
        )
        return dict(row) if row is not None else None

    async def callback_attempts(self, partner_id: str, call_id: str) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            "SELECT delivery_id, number, kind, started_at, status_code, latency_ms, error"
            " FROM callback_attempts WHERE partner_id = $1 AND call_id = $2 ORDER BY started_at, delivery_id, number",
            partner_id,
            call_id,
        )
        return [dict(r) for r in rows]

    async def recording(self, scope: Scope, call_id: str) -> tuple[str, str] | None:
        """(blob URI, media type) of the call's recording, within the scope."""
        row = await self._pool.fetchrow(
            "SELECT blob_uri, media_type FROM dashboard_calls"
            " WHERE partner_id = $1 AND call_id = $2 AND tenant_id = $3 AND subtenant_id = $4"
            " AND ($5::text IS NULL OR agent_id = $5) AND blob_uri IS NOT NULL",
            scope.partner_id,
            call_id,
            scope.tenant_id,
            scope.subtenant_id,
            scope.agent_id,
        )
        return (row["blob_uri"], row["media_type"]) if row is not None else None


def _grant(row: asyncpg.Record) -> Grant:
    return Grant(row["partner_id"], row["tenant_id"], row["subtenant_id"], row["agent_id"], row["read_only"])
