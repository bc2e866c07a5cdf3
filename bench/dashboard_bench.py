"""Dashboard benchmark (``make bench``): each page's data endpoint with 1,000,000 calls in one
tenant (and one subtenant, the worst case: a session sees all of them).

Seeding goes straight into PostgreSQL with ``generate_series`` (never through the API): a staging
table of 1M calls (50 agents, a year of start times, 8% failed, five intents, scores, lengths,
talk ratios, concern categories, BANT cues, six rubric parameters), from which the dashboard's
per-call rows, its two aggregate levels and the status read model's rows are inserted with the
same bands and rules as the projector (``services.gateway.dashboard.facts``); the overview's
totals are checked against a direct count of the per-call rows before anything is measured.

Then the gateway runs as its own process (as ``make up`` runs it, read model off, so nothing else
competes) and one client asks each page's data, sequentially, through a real session cookie:
warm-up first, then ``--requests`` requests per variant. Latency is measured at the client.

Usage: python -m bench.dashboard_bench [--calls 1000000] [--requests 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from pydantic import SecretStr

from bench.common import OUT, fresh_database, log, start_service, stop_server
from deploy.local import stack
from schemas.events import CallAnalyzed, follow_up
from services.common.db import create_pool
from services.gateway.dashboard import handlers
from services.gateway.dashboard.projector import project
from services.gateway.dashboard.repository import DashboardRepository, Grant
from tests.factories import analysis_payload, ingested_event

PORT = 18410
DATABASE = "callpipe_bench_dashboard"
PARTNER, TENANT, SUBTENANT = "ptn_bench", "tenant1", "subtenant1"
AGENTS = 50
PARAMETERS = [
    "Setting Context",
    "Needs Discovery",
    "Product Pitch",
    "Objection Handling",
    "Next Steps",
    "Professionalism",
]
CONCERNS = ["Pricing", "Functionality", "Integration", "Timing", "Competition", "Trust", "Authority", "Other"]

_STAGE = """
CREATE UNLOGGED TABLE bench_seed AS
SELECT g,
       'call-' || lpad(g::text, 7, '0') AS call_id,
       'agent-' || lpad(a::text, 2, '0') AS agent_id,
       'cust-' || (c % 200000) AS customer_id,
       'Customer ' || (c % 200000) AS customer_name,
       $1::timestamptz - make_interval(secs => r_day * 365 * 86400) AS started_at,
       round((20 + r_len ^ 2 * 2700)::numeric, 1)::real AS duration_s,
       failed,
       CASE WHEN failed THEN NULL
            WHEN r_int < 0.35 THEN 'INTERESTED' WHEN r_int < 0.60 THEN 'FOLLOW_UP'
            WHEN r_int < 0.80 THEN 'NOT_INTERESTED' WHEN r_int < 0.96 THEN 'UNDECIDED'
            ELSE 'NO_CONVERSATION' END AS intent,
       r_score, r_fatal, r_talk, r_concern, r_bant
FROM (
    SELECT g, floor(random() * 50)::int AS a, floor(random() * 1e9)::bigint AS c, random() AS r_day,
           random() AS r_len, random() < 0.08 AS failed, random() AS r_int, random() AS r_score,
           random() AS r_fatal, random() AS r_talk, random() AS r_concern, random() AS r_bant
    FROM generate_series(1, $2::int) g
) r
"""

# Per-call derived values, exactly as the projector derives them (bands from facts.py).
_DERIVE = """
CREATE UNLOGGED TABLE bench_calls AS
SELECT s.*,
       CASE WHEN failed THEN 'failed' ELSE 'completed' END AS status,
       (started_at AT TIME ZONE 'UTC')::date AS day,
       date_trunc('week', started_at AT TIME ZONE 'UTC')::date AS week,
       CASE WHEN score IS NULL THEN 4 WHEN score < 50 THEN 0 WHEN score < 70 THEN 1 WHEN score < 85 THEN 2 ELSE 3 END
           AS score_band,
       CASE WHEN duration_s < 60 THEN 0 WHEN duration_s < 300 THEN 1 WHEN duration_s < 900 THEN 2 ELSE 3 END
           AS length_band,
       CASE WHEN score IS NULL THEN NULL ELSE r_fatal < 0.18 END AS fatal_failed,
       CASE WHEN failed OR intent = 'NO_CONVERSATION' THEN NULL ELSE round((0.3 + 0.5 * r_talk)::numeric, 3)::real END
           AS talk_ratio,
       CASE WHEN failed OR r_concern >= 0.6 THEN '{}'::text[]
            ELSE ARRAY[($1::text[])[1 + floor(r_concern / 0.6 * 8)::int]] END AS concerns,
       NOT failed AND r_bant < 0.85 AS bant_needs, NOT failed AND r_bant < 0.45 AS bant_budget,
       NOT failed AND r_bant < 0.25 AS bant_authority, NOT failed AND r_bant < 0.6 AS bant_timeline
FROM (
    SELECT *, CASE WHEN failed OR intent = 'NO_CONVERSATION' THEN NULL
                   ELSE round((25 + 75 * r_score)::numeric, 1)::real END AS score
    FROM bench_seed
) s
"""

_CALLS = """
INSERT INTO dashboard_calls (
    partner_id, call_id, tenant_id, subtenant_id, agent_id, agent_name, customer_id, customer_name, started_at,
    duration_s, status, status_rank, intent, quality_score, score_sort, fatal_failed, talk_ratio, concerns,
    blob_uri, media_type, details, counted
)
SELECT $1, call_id, $2, $3, agent_id, 'Agent ' || agent_id, customer_id, customer_name, started_at, duration_s,
       status, 2, intent, score, coalesce(score, -1), fatal_failed, talk_ratio, concerns,
       NULL, NULL,
       jsonb_build_object('contact_number', '+14155550100', 'metadata', jsonb_build_object('campaign', 'Q4')),
       true
FROM bench_calls
"""

_STATUS = """
INSERT INTO call_status (
    partner_id, call_id, tenant_id, subtenant_id, agent_id, callback_url, status, status_rank, received_at,
    completed_at, failed_at, intent, quality_score, result, error
)
SELECT $1, call_id, $2, $3, agent_id, NULL, status, 5, started_at + make_interval(secs => duration_s),
       CASE WHEN NOT failed THEN started_at + make_interval(secs => duration_s + 30) END,
       CASE WHEN failed THEN started_at + make_interval(secs => duration_s + 5) END,
       intent, score,
       CASE WHEN NOT failed THEN json_build_object(
           'call_id', call_id, 'intent', intent, 'intent_justification', 'The customer asked for a demo (00:42).',
           'quality_score', score,
           'summary', json_build_array(json_build_object('chapter_name', 'Introduction',
               'chapter_summary', 'At 00:03 the agent said hello.')),
           'bant', json_build_object('needs', '- Webhooks', 'objection', '', 'concern_categories', '',
               'objection_handling', '', 'budget', '', 'authority', '', 'timeline', ''),
           'qualification', '[]'::json, 'quality', '[]'::json,
           'transcript', json_build_array(json_build_object('speaker', 'agent', 'start', 0.5, 'end', 3.0,
               'text', 'hello this is the agent')))
       END,
       CASE WHEN failed THEN json_build_object('stage', 'fetch', 'code', 'http_status', 'message', 'HTTP 404') END
FROM bench_calls
"""

_MEASURES = """
count(*), count(score), coalesce(sum(score), 0), count(*) FILTER (WHERE fatal_failed),
count(talk_ratio), coalesce(sum(talk_ratio), 0), sum(duration_s),
count(*) FILTER (WHERE bant_needs), count(*) FILTER (WHERE bant_budget),
count(*) FILTER (WHERE bant_authority), count(*) FILTER (WHERE bant_timeline),
count(*) FILTER (WHERE 'Pricing' = ANY(concerns)), count(*) FILTER (WHERE 'Functionality' = ANY(concerns)),
count(*) FILTER (WHERE 'Integration' = ANY(concerns)), count(*) FILTER (WHERE 'Timing' = ANY(concerns)),
count(*) FILTER (WHERE 'Competition' = ANY(concerns)), count(*) FILTER (WHERE 'Trust' = ANY(concerns)),
count(*) FILTER (WHERE 'Authority' = ANY(concerns)), count(*) FILTER (WHERE 'Other' = ANY(concerns))
"""
_AGG_COLUMNS = """
partner_id, tenant_id, subtenant_id, grain, day, agent_id, status, intent, score_band, length_band,
calls, scored, score_sum, fatal_failed, talk_n, talk_sum, duration_sum, bant_needs, bant_budget, bant_authority,
bant_timeline, c_pricing, c_functionality, c_integration, c_timing, c_competition, c_trust, c_authority, c_other
"""
# Every grain of the projector (``repository.AGG_GRAINS``): CUBE over the optional bands, by day
# and by week; GROUPING() says which dimensions a row keeps.
_AGG_GRAIN = """
    SELECT {week} + CASE WHEN GROUPING(score_band) = 0 THEN 4 ELSE 0 END
                  + CASE WHEN GROUPING(length_band) = 0 THEN 8 ELSE 0 END AS grain,
           {bucket} AS bucket, agent_id, status, coalesce(intent, '') AS intent,
           coalesce(score_band, -1) AS sb, coalesce(length_band, -1) AS lb, {measures}
    FROM bench_calls GROUP BY {bucket}, agent_id, status, coalesce(intent, ''), CUBE(score_band, length_band)
"""
_AGG = (
    f"INSERT INTO dashboard_agg ({_AGG_COLUMNS}) SELECT $1, $2, $3, g.* FROM ("  # noqa: S608 - constant fragments
    + _AGG_GRAIN.format(week=0, bucket="day", measures=_MEASURES)
    + " UNION ALL "
    + _AGG_GRAIN.format(week=1, bucket="week", measures=_MEASURES)
    + ") g"
)
# Six rubric parameters per scored call; each call's scores drawn once, then added up per level.
_PARAMS = """
CREATE UNLOGGED TABLE bench_params AS
SELECT b.day, b.week, b.agent_id, b.intent, b.score_band, b.length_band, p.name AS parameter,
       round((10 * least(1.0, greatest(0.0, b.score / 100 + (random() - 0.5) * 0.6)))::numeric, 1) AS score
FROM bench_calls b CROSS JOIN unnest($1::text[]) AS p(name)
WHERE b.status = 'completed' AND b.score IS NOT NULL
"""
_PARAM_GRAIN = """
    SELECT {week} + CASE WHEN GROUPING(intent) = 0 THEN 2 ELSE 0 END
                  + CASE WHEN GROUPING(score_band) = 0 THEN 4 ELSE 0 END
                  + CASE WHEN GROUPING(length_band) = 0 THEN 8 ELSE 0 END AS grain,
           {bucket} AS bucket, agent_id, coalesce(intent, '*') AS intent, coalesce(score_band, -1) AS sb,
           coalesce(length_band, -1) AS lb, parameter, count(*) AS n, sum(score) AS score_sum, 10 * count(*) AS max_sum
    FROM bench_params GROUP BY {bucket}, agent_id, parameter, CUBE(intent, score_band, length_band)
"""
_AGG_PARAMS = (
    "INSERT INTO dashboard_agg_params (partner_id, tenant_id, subtenant_id, grain, day, agent_id, intent,"  # noqa: S608
    " score_band, length_band, parameter, n, score_sum, max_sum) SELECT $1, $2, $3, g.* FROM ("
    + _PARAM_GRAIN.format(week=0, bucket="day")
    + " UNION ALL "
    + _PARAM_GRAIN.format(week=1, bucket="week")
    + ") g"
)


async def seed(db_url: str, calls: int, now: datetime) -> dict[str, Any]:
    conn = await asyncpg.connect(db_url)
    timings: dict[str, float] = {}
    try:
        await conn.execute("SET search_path TO gateway, public")
        await conn.execute("SET work_mem = '256MB'")
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.execute("SELECT setseed(0.42)")
        steps: list[tuple[str, str, tuple[Any, ...]]] = [
            ("stage", _STAGE, (now, calls)),
            ("derive", _DERIVE, (CONCERNS,)),
            ("dashboard_calls", _CALLS, (PARTNER, TENANT, SUBTENANT)),
            ("call_status", _STATUS, (PARTNER, TENANT, SUBTENANT)),
            ("dashboard_agg", _AGG, (PARTNER, TENANT, SUBTENANT)),
            ("params", _PARAMS, (PARAMETERS,)),
            ("dashboard_agg_params", _AGG_PARAMS, (PARTNER, TENANT, SUBTENANT)),
        ]
        for name, sql, args in steps:
            t0 = time.monotonic()
            await conn.execute(sql, *args)
            timings[name] = round(time.monotonic() - t0, 1)
            log(f"seeded {name} in {timings[name]} s")
        await conn.execute(
            "INSERT INTO dashboard_agents (partner_id, tenant_id, subtenant_id, agent_id, agent_name)"
            " SELECT DISTINCT $1, $2, $3, agent_id, 'Agent ' || agent_id FROM bench_calls",
            PARTNER,
            TENANT,
            SUBTENANT,
        )
        await conn.execute("DROP TABLE bench_seed, bench_params")
        t0 = time.monotonic()
        await conn.execute("VACUUM ANALYZE")
        timings["vacuum_analyze"] = round(time.monotonic() - t0, 1)
        sizes = {
            r["relname"]: int(r["n"])
            for r in await conn.fetch(
                "SELECT relname, n_live_tup AS n FROM pg_stat_user_tables WHERE schemaname = 'gateway'"
                " AND relname IN ('dashboard_calls', 'dashboard_agg', 'dashboard_agg_params', 'call_status')"
            )
        }
        levels = {
            str(r["grain"]): int(r["n"])
            for r in await conn.fetch("SELECT grain, count(*) AS n FROM dashboard_agg GROUP BY grain ORDER BY grain")
        }
    finally:
        await conn.close()
    return {"seconds": timings, "rows": sizes, "agg_rows_by_grain": levels}


async def session_cookie(db_url: str, client: httpx.AsyncClient) -> str:
    pool = await create_pool(SecretStr(db_url), "gateway", min_size=1, max_size=1)
    try:
        issued = await handlers.issue_token(
            DashboardRepository(pool),
            Grant(PARTNER, TENANT, SUBTENANT, None, False),
            now=datetime.now(UTC),
            redeem_s=300,
            session_ttl_s=86400,
            base_url=str(client.base_url),
        )
    finally:
        await pool.close()
    response = await client.get("/dashboard", params={"token": issued["token"]})
    if response.status_code != 303:
        raise RuntimeError(f"token exchange failed: {response.status_code}")
    return response.headers["set-cookie"].split(";", 1)[0]


def variants(today: date, rng: random.Random) -> dict[str, list[tuple[str, Any]]]:
    """Per page: (variant name, params factory). A factory draws fresh values per request, so
    the requests do not all hit the same cached rows."""

    def window(days: int) -> dict[str, str]:
        end = today - timedelta(days=rng.randrange(0, 365 - days + 1))
        return {"from": (end - timedelta(days=days - 1)).isoformat(), "to": end.isoformat()}

    def agent() -> str:
        return f"agent-{rng.randrange(AGENTS):02d}"

    year = {"from": (today - timedelta(days=365)).isoformat(), "to": today.isoformat()}
    return {
        "overview": [
            ("last 30 days (default)", lambda: window(30)),
            ("one year", lambda: year),
            ("one year, one agent", lambda: {**year, "agent": agent()}),
            ("one year, score band", lambda: {**year, "score_band": str(rng.randrange(5))}),
            ("one year, intent + length band", lambda: {**year, "intent": "INTERESTED", "length_band": "2"}),
        ],
        "agents": [
            ("last 30 days (default)", lambda: window(30)),
            ("one year", lambda: year),
            ("one year, score band", lambda: {**year, "score_band": str(rng.randrange(4))}),
        ],
        "calls": [
            ("last 30 days, first page", lambda: window(30)),
            ("one year, sorted by score", lambda: {**year, "sort": "score", "dir": rng.choice(["asc", "desc"])}),
            ("one year, sorted by length", lambda: {**year, "sort": "duration", "dir": "desc"}),
            ("one year, agent + intent", lambda: {**year, "agent": agent(), "intent": "FOLLOW_UP"}),
            ("one year, search customer", lambda: {**year, "q": f"Customer {rng.randrange(1, 2000)}"}),
            (
                "one year, agent + intent + score + length",
                lambda: {**year, "agent": agent(), "intent": "UNDECIDED", "score_band": "1", "length_band": "3"},
            ),
            ("one year, page 2 (cursor)", lambda: {**year, "cursor": "next"}),
        ],
        "call detail": [("a random call", lambda: {"call": f"call-{rng.randrange(1, 1_000_001):07d}"})],
    }


PATHS = {"overview": "/overview", "agents": "/agents", "calls": "/calls"}


async def measure(client: httpx.AsyncClient, page: str, make: Any, requests: int, calls: int) -> list[float]:
    latencies = []
    for i in range(requests + 5):  # the first 5 warm the plan and the cache; not counted
        params = dict(make())
        if page == "call detail":
            number = int(params["call"].split("-")[1]) % calls or 1
            path, params = f"/calls/call-{number:07d}", {}
        else:
            path = PATHS[page]
        if params.get("cursor") == "next":
            first = await client.get(f"/dashboard/api{path}", params={k: v for k, v in params.items() if k != "cursor"})
            params["cursor"] = first.json()["data"]["next_cursor"]
        t0 = time.perf_counter()
        response = await client.get(f"/dashboard/api{path}", params=params)
        elapsed = (time.perf_counter() - t0) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{path} {params}: HTTP {response.status_code} {response.text[:300]}")
        if i >= 5:
            latencies.append(elapsed)
    return latencies


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else values[0]


async def run(calls: int, requests: int, reuse: bool) -> dict[str, Any]:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    now = datetime.now(UTC).replace(microsecond=0)
    if reuse:  # measure again on the database a previous run seeded (same data, same "now")
        db_url = stack.database_url(DATABASE)
        conn = await asyncpg.connect(db_url)
        try:
            latest = await conn.fetchval("SELECT max(started_at) FROM gateway.dashboard_calls")
            calls = int(await conn.fetchval("SELECT count(*) FROM gateway.dashboard_calls"))
        finally:
            await conn.close()
        now = latest.astimezone(UTC)
        seeded: dict[str, Any] = {"reused": DATABASE, "total_seconds": 0.0, "agg_rows_by_grain": "as seeded"}
    else:
        db_url = await fresh_database(DATABASE, ["gateway"])
        t0 = time.monotonic()
        seeded = await seed(db_url, calls, now)
        seeded["total_seconds"] = round(time.monotonic() - t0, 1)
    env = {
        "DATABASE_URL": db_url,
        "KAFKA_BOOTSTRAP_SERVERS": stack.default_kafka().bootstrap,
        "KAFKA_TOPIC_PREFIX": f"dashbench-{stamp}.",
        "GATEWAY_PORT": str(PORT),
        "GATEWAY_WORKERS": "1",
        "GATEWAY_READ_MODEL_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.to_thread(
        start_service,
        [sys.executable, "-m", "services.gateway"],
        env,
        OUT / f"{stamp}-dashboard.log",
        f"http://127.0.0.1:{PORT}/healthz",
    )
    results: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORT}", timeout=60) as client:
            client.headers["cookie"] = await session_cookie(db_url, client)
            total = (await client.get("/dashboard/api/overview", params={"from": "2000-01-01"})).json()["data"]
            conn = await asyncpg.connect(db_url)
            try:
                direct = await conn.fetchrow(
                    "SELECT count(*) AS calls, count(*) FILTER (WHERE status = 'completed') AS completed,"
                    " round(avg(quality_score)::numeric, 1)::float8 AS score FROM gateway.dashboard_calls"
                )
            finally:
                await conn.close()
            seen = total["totals"]
            if (seen["calls"], seen["completed"], seen["average_score"]) != tuple(direct):
                raise RuntimeError(f"aggregates {seen} disagree with the calls {dict(direct)}")
            rng = random.Random(7)
            for page, cases in variants(now.date(), rng).items():
                page_latencies: list[float] = []
                results[page] = {"variants": {}}
                for name, make in cases:
                    lat = await measure(client, page, make, requests, calls)
                    page_latencies += lat
                    results[page]["variants"][name] = {
                        "p50_ms": round(statistics.median(lat), 1),
                        "p95_ms": round(p95(lat), 1),
                        "max_ms": round(max(lat), 1),
                    }
                    log(f"{page} / {name}: p50 {statistics.median(lat):.1f} ms, p95 {p95(lat):.1f} ms")
                results[page]["p95_ms"] = round(p95(page_latencies), 1)
                results[page]["p50_ms"] = round(statistics.median(page_latencies), 1)
    finally:
        stop_server(proc)
    return {"started": stamp, "calls": calls, "requests_per_variant": requests, "seed": seeded, "pages": results}


async def fold_rate(events: int, concurrency: int = 64) -> dict[str, Any]:
    """How many finished calls per second the projector's fold adds (one transaction each: the
    call's row, 8 aggregate rows and 16 x 6 rubric-parameter rows), ``concurrency`` at a time as
    the consumer runs them; the ingested events before them are folded first, not timed."""
    db_url = await fresh_database(DATABASE + "_fold", ["gateway"])
    pool = await create_pool(SecretStr(db_url), "gateway", min_size=1, max_size=4)
    repo = DashboardRepository(pool)
    rng = random.Random(5)
    calls = [
        ingested_event(f"fold-{i:06d}", partner_id=PARTNER, agent__id=f"agent-{rng.randrange(AGENTS):02d}")
        for i in range(events)
    ]
    done = [
        CallAnalyzed(
            **follow_up(c, event_id=uuid.uuid4(), source="analyzer"),
            payload=analysis_payload(c.payload, quality_score=round(rng.uniform(20, 100), 1)),
        )
        for c in calls
    ]
    slots = asyncio.Semaphore(concurrency)

    async def one(event: Any) -> None:
        async with slots:
            await project(event, repo)

    try:
        await asyncio.gather(*(one(c) for c in calls))
        t0 = time.monotonic()
        await asyncio.gather(*(one(d) for d in done))
        seconds = time.monotonic() - t0
    finally:
        await pool.close()
    return {"events": events, "seconds": round(seconds, 1), "calls_per_s": round(events / seconds, 1)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--reuse", action="store_true", help="measure again on the last seeded database")
    parser.add_argument("--fold-events", type=int, default=3000, help="analysed calls folded for the fold rate")
    args = parser.parse_args()
    stack.ensure_postgres()
    stack.default_kafka().start()
    OUT.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(run(args.calls, args.requests, args.reuse))
    if args.fold_events:
        result["fold"] = asyncio.run(fold_rate(args.fold_events))
    (OUT / f"dashboard-{result['started']}.json").write_text(json.dumps(result, indent=2))
    s = result["seed"]
    lines = [
        f"Run {result['started']} UTC: {result['calls']:,} calls in one tenant and subtenant (50 agents, one year), "
        f"seeded in {s['total_seconds']} s; dashboard_agg rows by grain {s['agg_rows_by_grain']}. "
        f"One client, sequential requests, {result['requests_per_variant']} per variant after 5 warm-up requests; "
        "the gateway as its own process (1 worker, read model off).",
        "",
        "| page | variant | p50 ms | p95 ms | max ms |",
        "|---|---|---|---|---|",
    ]
    for page, data in result["pages"].items():
        for name, v in data["variants"].items():
            lines.append(f"| {page} | {name} | {v['p50_ms']} | {v['p95_ms']} | {v['max_ms']} |")
        lines.append(f"| **{page}** | **all variants** | **{data['p50_ms']}** | **{data['p95_ms']}** | |")
    if "fold" in result:
        f = result["fold"]
        lines += [
            "",
            f"Projector fold: {f['events']} analysed calls (their ingested events folded first) in {f['seconds']} s,"
            f" **{f['calls_per_s']} calls/s** (64 in flight, one transaction per event).",
        ]
    (OUT / f"dashboard-{result['started']}.json").write_text(json.dumps(result, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
