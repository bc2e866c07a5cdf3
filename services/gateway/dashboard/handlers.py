"""The dashboard's logic as plain functions: tokens and sessions, embedding rules, filters and the
data of each page. They know nothing of HTTP; they take the repository and the clock as arguments
and raise the gateway's typed errors."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from schemas.analysis import INTENTS
from services.gateway.dashboard.errors import CrossSiteRefused, ReadOnlySession
from services.gateway.dashboard.facts import LENGTH_BANDS, SCORE_BANDS, UNSCORED_BAND
from services.gateway.dashboard.repository import (
    SORT_COLUMNS,
    TREND_WEEKS_UP_TO_DAYS,
    DashboardRepository,
    Filters,
    Grant,
    Redeemed,
    Scope,
    Session,
    decode_cursor,
    encode_cursor,
    weekly,
)
from services.gateway.errors import CallNotFound, ValidationFailed
from services.gateway.models import MAX_TEXT

TOKEN_PREFIX = "dt_"  # noqa: S105 - a prefix, not a secret
DEFAULT_DAYS = 30
PAGE_SIZE = 50
MAX_PAGE = 200
STATUSES = ("processing", "completed", "failed")
BANT_FIELDS = ("needs", "budget", "authority", "timeline")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def digest(secret: str) -> bytes:
    """Tokens and session ids are 256-bit random strings: a fast hash is preimage-safe."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


# -------------------------------------------------------------------------------------------
# Tokens, sessions and embedding
# -------------------------------------------------------------------------------------------


def parse_token_options(agent_id: str | None, read_only: str | None) -> tuple[str | None, bool]:
    """The token API's optional query: ``agent_id`` (scope to one agent) and ``read_only``."""
    errors: list[dict[str, str]] = []
    agent = None
    if agent_id is not None:
        agent = agent_id.strip()
        if not agent:
            errors.append({"field": "agent_id", "message": "agent_id should not be empty"})
        elif len(agent) > MAX_TEXT or "\x00" in agent:
            errors.append({"field": "agent_id", "message": f"agent_id must be at most {MAX_TEXT} characters"})
    flag = False
    if read_only is not None:
        if read_only.lower() in ("true", "1"):
            flag = True
        elif read_only.lower() not in ("false", "0"):
            errors.append({"field": "read_only", "message": "read_only must be true or false"})
    if errors:
        raise ValidationFailed(errors)
    return agent, flag


async def issue_token(
    repo: DashboardRepository, grant: Grant, *, now: datetime, redeem_s: float, session_ttl_s: float, base_url: str
) -> dict[str, Any]:
    """A single-use token for ``grant``: exchanged once, within ``redeem_s``, for a session that
    lasts until ``session_ttl_s`` after now. Only its hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=session_ttl_s)
    redeem_by = min(now + timedelta(seconds=redeem_s), expires_at)
    await repo.issue_token(digest(token), grant, redeem_by, expires_at)
    return {
        "token": token,
        "url": f"{base_url.rstrip('/')}/dashboard?token={token}",
        "redeem_by": _iso(redeem_by),
        "expires_at": _iso(expires_at),
        "tenant_id": grant.tenant_id,
        "subtenant_id": grant.subtenant_id,
        "agent_id": grant.agent_id,
        "read_only": grant.read_only,
    }


def normalize_origin(value: str) -> str | None:
    """``scheme://host[:port]`` in canonical form, or None for anything that is not an origin
    (paths, wildcards, credentials, other schemes)."""
    text = value.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host or "*" in text or parts.username or parts.password:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if not re.fullmatch(r"[a-z0-9.\-]+|\[[0-9a-f:.]+\]", host if ":" not in host else f"[{host}]"):
        return None
    shown = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{shown}" + (f":{port}" if port is not None and port != default else "")


def frame_ancestors(origins: list[str]) -> str:
    """The CSP source list: the partner's allowed origins, or 'none' (never a wildcard)."""
    return " ".join(origins) if origins else "'none'"


def content_security_policy(origins: list[str]) -> str:
    """The dashboard's CSP: scripts, styles, media and requests from itself only (no inline
    script or style), framed only by the partner's allowed origins."""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self';"
        " connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self';"
        f" frame-ancestors {frame_ancestors(origins)}"
    )


@dataclass(frozen=True)
class Embedding:
    """How the browser is loading the page: framed or not, and by which origin if it says."""

    framed: bool
    parent_origin: str | None


def embedding(sec_fetch_dest: str | None, referer: str | None) -> Embedding:
    """Chromium and Firefox send ``Sec-Fetch-Dest: iframe`` for a framed navigation, and the
    embedding page's origin as ``Referer`` (unless the page suppresses it: then only the CSP's
    frame-ancestors decides, in the browser)."""
    framed = (sec_fetch_dest or "").lower() in ("iframe", "frame")
    parent = normalize_origin(_origin_of(referer)) if framed and referer else None
    return Embedding(framed, parent)


def _origin_of(url: str | None) -> str:
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def embedding_refused(how: Embedding, origins: list[str]) -> bool:
    """A framed load by an origin the partner has not allowed (the CSP would block it anyway;
    answering a clear page instead of the app also keeps the token unspent)."""
    return how.framed and how.parent_origin is not None and how.parent_origin not in origins


async def redeem(
    repo: DashboardRepository, token: str, *, how: Embedding, current_session: str | None
) -> tuple[Redeemed, str | None] | None:
    """Exchange ``token`` for a session: (what was redeemed, the new session id or None when the
    caller's own session was reused). None: unknown, spent, expired or revoked token."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    session_id = secrets.token_urlsafe(32)
    redeemed = await repo.redeem_token(
        digest(token),
        session_sha256=digest(session_id),
        csrf_token=secrets.token_urlsafe(32),
        embed_origin=how.parent_origin,
        existing_session_sha256=digest(current_session) if current_session else None,
    )
    if redeemed is None:
        return None
    return redeemed, session_id if redeemed.fresh else None


async def current_session(repo: DashboardRepository, session_id: str | None) -> Session | None:
    if not session_id or len(session_id) > 200:
        return None
    return await repo.find_session(digest(session_id))


def check_state_change(session: Session, *, csrf_header: str | None, origin: str | None, own_origin: str) -> None:
    """A state-changing request must come from the dashboard itself: the session's CSRF token in
    ``X-CSRF-Token`` (a custom header a cross-site form cannot send, compared in constant time)
    and, when the browser sends one, an ``Origin`` equal to the dashboard's own."""
    if origin is not None and origin != "null" and normalize_origin(origin) != normalize_origin(own_origin):
        raise CrossSiteRefused()
    if origin == "null" or not csrf_header or not hmac.compare_digest(csrf_header, session.csrf_token):
        raise CrossSiteRefused()
    if session.grant.read_only:
        raise ReadOnlySession()


def scope_of(grant: Grant) -> Scope:
    return Scope(grant.partner_id, grant.tenant_id, grant.subtenant_id, grant.agent_id)


async def session_view(repo: DashboardRepository, session: Session) -> dict[str, Any]:
    """What the front end needs to start: scope, options of the filters, CSRF token."""
    grant = session.grant
    agents = await repo.agents(scope_of(grant))
    return {
        "tenant_id": grant.tenant_id,
        "subtenant_id": grant.subtenant_id,
        "agent_id": grant.agent_id,
        "read_only": grant.read_only,
        "expires_at": _iso(session.expires_at),
        "embed_origin": session.embed_origin,
        "csrf_token": session.csrf_token,
        "agents": [{"id": a["agent_id"], "name": a["agent_name"]} for a in agents],
        "options": {
            "intents": list(INTENTS),
            "statuses": list(STATUSES),
            "score_bands": [{"value": b, "label": label} for b, label, _, _ in SCORE_BANDS]
            + [{"value": UNSCORED_BAND, "label": "Unscored"}],
            "length_bands": [{"value": b, "label": label} for b, label, _, _ in LENGTH_BANDS],
        },
    }


# -------------------------------------------------------------------------------------------
# Filters
# -------------------------------------------------------------------------------------------


def _day(name: str, value: str | None, errors: list[dict[str, str]]) -> date | None:
    if value is None or value == "":
        return None
    if not _DATE.match(value):
        errors.append({"field": name, "message": f"{name} must be a date (YYYY-MM-DD)"})
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors.append({"field": name, "message": f"{name} must be a date (YYYY-MM-DD)"})
        return None


def _band(name: str, value: str | None, top: int, errors: list[dict[str, str]]) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or not 0 <= int(value) <= top:
        errors.append({"field": name, "message": f"{name} must be between 0 and {top}"})
        return None
    return int(value)


def parse_filters(query: Mapping[str, str], today: date, errors: list[dict[str, str]] | None = None) -> Filters:
    """The shared filters: ``from`` and ``to`` (UTC days, inclusive; the last 30 days by
    default), ``agent``, ``intent``, ``status``, ``score_band``, ``length_band``. Every error of
    the query is reported at once (422)."""
    own = errors is None
    errors = [] if errors is None else errors
    start = _day("from", query.get("from"), errors)
    end = _day("to", query.get("to"), errors)
    end = end or today
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        errors.append({"field": "to", "message": "to must not be before from"})
    agent = query.get("agent") or None
    if agent is not None and (len(agent) > MAX_TEXT or "\x00" in agent):
        errors.append({"field": "agent", "message": f"agent must be at most {MAX_TEXT} characters"})
    intent = query.get("intent") or None
    if intent is not None and intent not in INTENTS:
        errors.append({"field": "intent", "message": f"intent must be one of: {', '.join(INTENTS)}"})
    status = query.get("status") or None
    if status is not None and status not in STATUSES:
        errors.append({"field": "status", "message": f"status must be one of: {', '.join(STATUSES)}"})
    score = _band("score_band", query.get("score_band"), UNSCORED_BAND, errors)
    length = _band("length_band", query.get("length_band"), len(LENGTH_BANDS) - 1, errors)
    if own and errors:
        raise ValidationFailed(errors)
    return Filters(start, end, agent, intent, status, score, length)


def _filters_view(filters: Filters) -> dict[str, Any]:
    return {
        "from": filters.date_from.isoformat(),
        "to": filters.date_to.isoformat(),
        "agent": filters.agent_id,
        "intent": filters.intent,
        "status": filters.status,
        "score_band": filters.score_band,
        "length_band": filters.length_band,
    }


def _ratio(numerator: float, denominator: float, digits: int = 1) -> float | None:
    return round(numerator / denominator, digits) if denominator else None


# -------------------------------------------------------------------------------------------
# Pages
# -------------------------------------------------------------------------------------------


async def overview(repo: DashboardRepository, scope: Scope, filters: Filters) -> dict[str, Any]:
    """Calls over time (completed and failed), intent mix, average score trend, rate of calls
    that failed a fatal parameter, top concern categories, BANT coverage."""
    by_week = weekly(filters)
    series, mix = await repo.overview(scope, filters)
    calls = sum(int(r["calls"]) for r in mix)
    completed = sum(int(r["calls"]) for r in mix if r["status"] == "completed")
    scored = sum(int(r["scored"]) for r in mix)
    intents: dict[str, int] = {}
    for r in mix:
        if r["status"] == "completed" and r["intent"]:
            intents[r["intent"]] = intents.get(r["intent"], 0) + int(r["calls"])
    concerns = [
        {"category": name, "calls": sum(int(r[column]) for r in mix)}
        for name, column in (
            ("Pricing", "c_pricing"),
            ("Functionality", "c_functionality"),
            ("Integration", "c_integration"),
            ("Timing", "c_timing"),
            ("Competition", "c_competition"),
            ("Trust", "c_trust"),
            ("Authority", "c_authority"),
            ("Other", "c_other"),
        )
    ]
    return {
        "filters": _filters_view(filters),
        "bucket": "week" if by_week else "day",
        "totals": {
            "calls": calls,
            "completed": completed,
            "failed": calls - completed,
            "average_score": _ratio(sum(float(r["score_sum"]) for r in mix), scored),
            "fatal_failed_rate": _ratio(sum(int(r["fatal_failed"]) for r in mix), scored, 3),
            "average_duration_s": _ratio(sum(float(r["duration_sum"]) for r in mix), calls),
            "talk_ratio": _ratio(sum(float(r["talk_sum"]) for r in mix), sum(int(r["talk_n"]) for r in mix), 3),
        },
        "series": [
            {
                "bucket": r["bucket"].isoformat(),
                "completed": int(r["completed"] or 0),
                "failed": int(r["failed"] or 0),
                "average_score": _ratio(float(r["score_sum"] or 0), float(r["scored"] or 0)),
            }
            for r in series
        ],
        "intents": [{"intent": k, "calls": v} for k, v in sorted(intents.items(), key=lambda kv: (-kv[1], kv[0]))],
        "concerns": sorted((c for c in concerns if c["calls"]), key=lambda c: (-c["calls"], c["category"])),
        "bant": [
            {"field": name, "covered": sum(int(r[f"bant_{name}"]) for r in mix), "of": completed}
            for name in BANT_FIELDS
        ],
    }


async def agents(repo: DashboardRepository, scope: Scope, filters: Filters) -> dict[str, Any]:
    """Per agent: calls, average score against the team's, talk ratio, weakest rubric parameters
    and the weekly score trend. The team's figures are left out of an agent-scoped session (they
    are other agents' calls)."""
    unfiltered = Filters(
        filters.date_from,
        filters.date_to,
        None,
        filters.intent,
        filters.status,
        filters.score_band,
        filters.length_band,
    )
    weekly_rows, params = await repo.agent_stats(scope, unfiltered)
    names = {a["agent_id"]: a["agent_name"] for a in await repo.agents(scope)}
    sums = ("calls", "completed", "scored", "score_sum", "talk_n", "talk_sum", "fatal_failed")
    per_agent: dict[str, dict[str, float]] = {}
    weeks: dict[str, list[dict[str, Any]]] = {}
    for t in weekly_rows:
        acc = per_agent.setdefault(t["agent_id"], dict.fromkeys(sums, 0.0))
        for key in sums:
            acc[key] += float(t[key] or 0)
        average = _ratio(float(t["score_sum"] or 0), float(t["scored"] or 0))
        weeks.setdefault(t["agent_id"], []).append({"bucket": t["week"].isoformat(), "average_score": average})
    totals: list[dict[str, Any]] = [{"agent_id": agent_id, **acc} for agent_id, acc in per_agent.items()]
    team_scored = sum(r["scored"] for r in totals)
    team_score = _ratio(sum(r["score_sum"] for r in totals), team_scored)
    team_params: dict[str, list[float]] = {}
    for p in params:
        acc2 = team_params.setdefault(p["parameter"], [0.0, 0.0])
        acc2[0] += float(p["score_sum"])
        acc2[1] += float(p["max_sum"])
    by_agent: dict[str, list[dict[str, Any]]] = {}
    for p in params:
        by_agent.setdefault(p["agent_id"], []).append(p)
    wanted = filters.agent_id
    rows = []
    for r in sorted(totals, key=lambda r: (-int(r["calls"]), r["agent_id"])):
        agent_id = r["agent_id"]
        if wanted is not None and agent_id != wanted:
            continue
        own = by_agent.get(agent_id, [])
        weakest = sorted(
            (
                {
                    "parameter": p["parameter"],
                    "average": _ratio(100 * float(p["score_sum"]), float(p["max_sum"])),
                    "team_average": None
                    if scope.agent_id
                    else _ratio(100 * team_params[p["parameter"]][0], team_params[p["parameter"]][1]),
                    "calls": int(p["n"]),
                }
                for p in own
                if float(p["max_sum"]) > 0
            ),
            key=lambda p: (p["average"], p["parameter"]),
        )[:3]
        rows.append(
            {
                "agent_id": agent_id,
                "agent_name": names.get(agent_id),
                "calls": int(r["calls"]),
                "completed": int(r["completed"] or 0),
                "average_score": _ratio(float(r["score_sum"] or 0), float(r["scored"] or 0)),
                "fatal_failed_rate": _ratio(float(r["fatal_failed"] or 0), float(r["scored"] or 0), 3),
                "talk_ratio": _ratio(float(r["talk_sum"] or 0), float(r["talk_n"] or 0), 3),
                "weakest": weakest,
                "trend": weeks.get(agent_id, []),
            }
        )
    return {
        "filters": _filters_view(filters),
        "trend_bucket": "month" if (filters.date_to - filters.date_from).days > TREND_WEEKS_UP_TO_DAYS else "week",
        "team": None if scope.agent_id else {"average_score": team_score, "agents": len(totals)},
        "agents": rows,
    }


def parse_list_options(query: Mapping[str, str], errors: list[dict[str, str]]) -> dict[str, Any]:
    """Search, sort, direction, cursor and page size of the Calls table."""
    search = (query.get("q") or "").strip() or None
    if search is not None and (len(search) > MAX_TEXT or "\x00" in search):
        errors.append({"field": "q", "message": f"q must be at most {MAX_TEXT} characters"})
    sort = query.get("sort") or "date"
    if sort not in SORT_COLUMNS:
        errors.append({"field": "sort", "message": f"sort must be one of: {', '.join(SORT_COLUMNS)}"})
        sort = "date"
    direction = query.get("dir") or "desc"
    if direction not in ("asc", "desc"):
        errors.append({"field": "dir", "message": "dir must be asc or desc"})
    limit = PAGE_SIZE
    raw_limit = query.get("limit")
    if raw_limit:
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE:
            errors.append({"field": "limit", "message": f"limit must be between 1 and {MAX_PAGE}"})
        else:
            limit = int(raw_limit)
    after = None
    if query.get("cursor"):
        try:
            after = decode_cursor(query["cursor"], sort)
        except (ValueError, TypeError):
            errors.append({"field": "cursor", "message": "cursor is invalid"})
    return {"search": search, "sort": sort, "descending": direction != "asc", "after": after, "limit": limit}


def _call_row(r: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "call_id": r["call_id"],
        "started_at": _iso(r["started_at"]),
        "duration_s": round(float(r["duration_s"]), 1) if r["duration_s"] is not None else None,
        "agent_id": r["agent_id"],
        "agent_name": r["agent_name"],
        "customer_id": r["customer_id"],
        "customer_name": r["customer_name"],
        "status": r["status"],
        "intent": r["intent"],
        "quality_score": r["quality_score"],
    }


async def calls(repo: DashboardRepository, scope: Scope, filters: Filters, options: dict[str, Any]) -> dict[str, Any]:
    """One page of the Calls table and the cursor of the next (keyset: no page repeats a call)."""
    rows = await repo.list_calls(
        scope,
        filters,
        search=options["search"],
        sort=options["sort"],
        descending=options["descending"],
        after=options["after"],
        limit=options["limit"] + 1,
    )
    page = rows[: options["limit"]]
    column = SORT_COLUMNS[options["sort"]]
    more = len(rows) > options["limit"]
    return {
        "filters": _filters_view(filters),
        "calls": [_call_row(r) for r in page],
        "next_cursor": encode_cursor(page[-1][column], page[-1]["call_id"]) if more else None,
    }


CSV_COLUMNS = (
    "call_id",
    "started_at",
    "duration_s",
    "agent_id",
    "agent_name",
    "customer_id",
    "customer_name",
    "status",
    "intent",
    "quality_score",
)


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text: partner strings starting like a formula get a quote."""
    if value is None:
        return ""
    text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


_CLOCK = re.compile(r"\b(?:(\d{1,2}):)?(\d{1,2}):(\d{2})\b")


def chapter_marks(summary: list[dict[str, Any]], duration_s: float | None) -> list[dict[str, Any]]:
    """Chapters placed on the timeline. Chapters carry no times of their own; the built-in
    engine's summaries quote when things were said ("At 01:05 the customer said ..."), so a
    chapter starts at its earliest quoted time (the first at 0). A chapter without one is listed
    without a position."""
    marks = []
    for i, chapter in enumerate(summary):
        text = str(chapter.get("chapter_summary") or "")
        times = [
            int(h or 0) * 3600 + int(m) * 60 + int(s) for h, m, s in _CLOCK.findall(text) if int(m) < 60 or h is None
        ]
        start: float | None = 0.0 if i == 0 else (float(min(times)) if times else None)
        if start is not None and duration_s and start > duration_s:
            start = None
        marks.append({"name": chapter.get("chapter_name"), "summary": chapter.get("chapter_summary"), "start": start})
    return marks


async def call_detail(repo: DashboardRepository, scope: Scope, call_id: str) -> dict[str, Any]:
    """Everything the call page shows; 404 outside the session's scope, like an unknown id."""
    if "\x00" in call_id or len(call_id) > MAX_TEXT:
        raise CallNotFound()
    row = await repo.call_detail(scope, call_id)
    if row is None:
        raise CallNotFound()
    result = row["result"] if row["status"] == "completed" and row["result"] else None
    attempts = await repo.callback_attempts(scope.partner_id, call_id)
    url = row["delivery_url"] or row["callback_url"]
    duration = float(row["duration_s"]) if row["duration_s"] is not None else None
    return {
        "call_id": row["call_id"],
        "status": row["status"],
        "stage": row["stage"],
        "started_at": _iso(row["started_at"]),
        "duration_s": duration,
        "agent": {"id": row["agent_id"], "name": row["agent_name"]},
        "customer": {"id": row["customer_id"], "name": row["customer_name"]},
        "details": row["details"] or {},
        "has_audio": bool(row["has_audio"]),
        "error": row["error"] if row["status"] == "failed" else None,
        "analysis": None
        if result is None
        else {
            "intent": result.get("intent"),
            "intent_justification": result.get("intent_justification"),
            "quality_score": result.get("quality_score"),
            "fatal_failed": row["fatal_failed"],
            "talk_ratio": row["talk_ratio"],
            "chapters": chapter_marks(result.get("summary") or [], duration),
            "bant": result.get("bant") or {},
            "qualification": result.get("qualification") or [],
            "quality": result.get("quality") or [],
            "transcript": result.get("transcript") or [],
        },
        "callback": None
        if not url
        else {
            "url": url,
            "delivery_id": row["delivery_id"],
            "state": row["delivery_state"],
            "next_attempt_at": _iso(row["delivery_next_attempt_at"]),
            "error": row["delivery_error"],
            "redeliverable": row["delivery_state"] in ("delivered", "failed"),
            "attempts": [
                {
                    "delivery_id": a["delivery_id"],
                    "kind": a["kind"],
                    "number": a["number"],
                    "started_at": _iso(a["started_at"]),
                    "status_code": a["status_code"],
                    "latency_ms": a["latency_ms"],
                    "error": a["error"],
                }
                for a in attempts
            ],
        },
    }


def today_utc(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(UTC).date()
