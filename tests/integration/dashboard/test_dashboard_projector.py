"""The dashboard's projector on real PostgreSQL: one row per call, aggregates that count every
finished call exactly once, whatever the order and however often events arrive (also when the
same event is folded concurrently)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from schemas.analysis import DEFAULT_CONFIG, ConfigSnapshot, DataProtection, Redaction
from schemas.events import CallAnalyzed, RedactedRecording
from services.common.db import create_pool
from services.gateway.dashboard import handlers
from services.gateway.dashboard.projector import project
from services.gateway.dashboard.repository import DashboardRepository, Filters, Scope
from tests.support.status_events import analyzed, at, failed, fetched, ingested, started

DAY = at(0).date()


@pytest.fixture
async def repo(database_url: str) -> AsyncIterator[DashboardRepository]:
    pool = await create_pool(SecretStr(database_url), "gateway", min_size=1, max_size=6)
    yield DashboardRepository(pool)
    await pool.close()


@pytest.fixture
def partner_id() -> str:
    return f"ptn_{uuid.uuid4().hex[:12]}"


def scope(partner_id: str, agent: str | None = None) -> Scope:
    return Scope(partner_id, "tenant1", "subtenant1", agent)


def day_filters(**kw: Any) -> Filters:
    return Filters(date(2023, 1, 1), date(2023, 1, 1), **kw)


async def fold(repo: DashboardRepository, *events: Any) -> None:
    for event in events:
        assert await project(event, repo) == []


async def overview(repo: DashboardRepository, partner_id: str, **kw: Any) -> dict[str, Any]:
    return await handlers.overview(repo, scope(partner_id), day_filters(**kw))


async def test_a_completed_call_counts_once_whatever_is_redelivered(repo: DashboardRepository, partner_id: str) -> None:
    call = ingested(partner_id)
    done = analyzed(call, at(10), score=72.5)
    events = [call, started(call, "fetch", at(1)), fetched(call, at(2)), done]
    await fold(repo, *events, *events, done, done)
    data = await overview(repo, partner_id)
    # The spec's example call starts 2023-01-01T10:00Z and lasts 30 minutes.
    assert data["totals"] == {
        "calls": 1,
        "completed": 1,
        "failed": 0,
        "average_score": 72.5,
        "fatal_failed_rate": 1.0,  # tests.factories: a fatal parameter scored 2.5 of 10
        "average_duration_s": 1800.0,
        "talk_ratio": 1.0,  # the factory's transcript has the agent only
    }
    assert data["intents"] == [{"intent": "INTERESTED", "calls": 1}]
    assert data["concerns"] == [{"category": "Functionality", "calls": 1}]
    assert {b["field"]: (b["covered"], b["of"]) for b in data["bant"]} == {
        "needs": (1, 1),
        "budget": (1, 1),
        "authority": (0, 1),
        "timeline": (1, 1),
    }
    assert data["series"] == [{"bucket": "2023-01-01", "completed": 1, "failed": 0, "average_score": 72.5}]


async def test_any_order_and_concurrent_duplicates_count_each_call_once(
    repo: DashboardRepository, partner_id: str
) -> None:
    rng = random.Random(12)
    calls = []
    for i in range(12):
        call = ingested(partner_id, agent__id=f"agent-{i % 3}")
        final = failed(call, at(5)) if i % 4 == 0 else analyzed(call, at(10), score=40.0 + i)
        events = [call, started(call, "fetch", at(1)), fetched(call, at(2)), final]
        events = events * 3
        rng.shuffle(events)
        calls.append((call, final, events))
    # Every call's events folded concurrently with every other call's, and the final event of
    # each call folded 5 times at once (as two replicas after a rebalance would).
    await asyncio.gather(*(fold(repo, *events) for _, _, events in calls))
    await asyncio.gather(*(project(final, repo) for _, final, _ in calls for _ in range(5)))
    data = await overview(repo, partner_id)
    assert data["totals"]["calls"] == 12
    assert data["totals"]["failed"] == 3 and data["totals"]["completed"] == 9
    per_agent = await handlers.agents(repo, scope(partner_id), day_filters())
    assert sorted((a["agent_id"], a["calls"]) for a in per_agent["agents"]) == [
        ("agent-0", 4),
        ("agent-1", 4),
        ("agent-2", 4),
    ]
    # The detailed level adds up to the same totals.
    by_band = [await overview(repo, partner_id, score_band=b) for b in range(5)]
    assert sum(d["totals"]["calls"] for d in by_band) == 12


async def test_a_failure_after_completion_changes_nothing_and_the_first_final_state_wins(
    repo: DashboardRepository, partner_id: str
) -> None:
    completed = ingested(partner_id)
    await fold(repo, completed, analyzed(completed, at(10)), failed(completed, at(11), stage="analyze"))
    lost = ingested(partner_id)
    # Failed first, then a late analysis: stays failed, counted once, no intent.
    await fold(repo, failed(lost, at(5)), analyzed(lost, at(10)), lost)
    data = await overview(repo, partner_id)
    assert (data["totals"]["completed"], data["totals"]["failed"]) == (1, 1)
    page = await handlers.calls(
        repo, scope(partner_id), day_filters(status="failed"), handlers.parse_list_options({}, [])
    )
    assert [(c["call_id"], c["intent"]) for c in page["calls"]] == [(lost.call_id, None)]


async def test_a_failure_known_before_its_call_counts_when_the_call_arrives(
    repo: DashboardRepository, partner_id: str
) -> None:
    call = ingested(partner_id)
    bare = failed(call, at(5))
    bare = bare.model_copy(update={"payload": bare.payload.model_copy(update={"ingested": None})})
    await fold(repo, bare)
    assert (await overview(repo, partner_id))["totals"]["calls"] == 0  # no agent or date yet
    await fold(repo, call, bare)
    assert (await overview(repo, partner_id))["totals"]["failed"] == 1


async def test_filters_agents_and_calls_table(repo: DashboardRepository, partner_id: str) -> None:
    for i, (agent, score, intent) in enumerate(
        [("ann", 90.0, "INTERESTED"), ("ann", 55.0, "FOLLOW_UP"), ("bob", 30.0, "NOT_INTERESTED")]
    ):
        call = ingested(partner_id, call_id=f"c{i}-{partner_id}", agent__id=agent, agent__name=agent.title())
        await fold(repo, call, analyzed(call, at(10), intent=intent, score=score))
    assert (await overview(repo, partner_id, agent_id="ann"))["totals"]["calls"] == 2
    assert (await overview(repo, partner_id, intent="FOLLOW_UP"))["totals"]["calls"] == 1
    assert (await overview(repo, partner_id, score_band=3))["totals"]["average_score"] == 90.0
    assert (await overview(repo, partner_id, status="processing"))["totals"]["calls"] == 0
    agents = await handlers.agents(repo, scope(partner_id), day_filters())
    assert agents["team"] == {"average_score": 58.3, "agents": 2}
    ann = next(a for a in agents["agents"] if a["agent_id"] == "ann")
    assert ann["agent_name"] == "Ann" and ann["average_score"] == 72.5
    assert [p["parameter"] for p in ann["weakest"]] == ["USP Audits", "Setting Context"]
    options = handlers.parse_list_options({"sort": "score", "dir": "asc", "limit": "2"}, [])
    page = await handlers.calls(repo, scope(partner_id), day_filters(), options)
    assert [c["quality_score"] for c in page["calls"]] == [30.0, 55.0] and page["next_cursor"]
    rest = handlers.parse_list_options({"sort": "score", "dir": "asc", "cursor": page["next_cursor"]}, [])
    page = await handlers.calls(repo, scope(partner_id), day_filters(), rest)
    assert [c["quality_score"] for c in page["calls"]] == [90.0] and page["next_cursor"] is None
    found = await handlers.calls(repo, scope(partner_id), day_filters(), handlers.parse_list_options({"q": "C1-"}, []))
    assert [c["call_id"] for c in found["calls"]] == [f"c1-{partner_id}"]
    # An agent-scoped session sees its own agent only, whatever the filter asks, and no team.
    own = await handlers.agents(repo, scope(partner_id, "bob"), day_filters())
    assert [a["agent_id"] for a in own["agents"]] == ["bob"] and own["team"] is None
    other = await handlers.overview(repo, scope(partner_id, "bob"), day_filters(agent_id="ann"))
    assert other["totals"]["calls"] == 0


async def test_long_ranges_add_whole_weeks_and_ragged_ends_exactly(repo: DashboardRepository, partner_id: str) -> None:
    """Ranges over a quarter read the weekly grains for whole weeks and the daily ones for the
    ends: every range must count exactly the calls that started in it."""
    rng = random.Random(3)
    first = date(2023, 1, 1)
    days = [rng.randrange(0, 200) for _ in range(40)]
    scores = [float(30 + n) for n in range(40)]
    for n, offset in enumerate(days):
        start = datetime.combine(first + timedelta(days=offset), datetime.min.time(), UTC) + timedelta(hours=n % 20)
        call = ingested(
            partner_id,
            agent__id=f"agent-{n % 4}",
            call__start_time=iso(start),
            call__end_time=iso(start + timedelta(minutes=1 + n)),
        )
        await fold(repo, call, analyzed(call, at(10), score=scores[n]))
    for _ in range(12):
        a, b = sorted(rng.sample(range(0, 200), 2))
        if b - a < 93:
            b = min(a + 93 + rng.randrange(0, 100), 230)
        window = Filters(first + timedelta(days=a), first + timedelta(days=b))
        expected = sum(a <= d <= b for d in days)
        data = await handlers.overview(repo, scope(partner_id), window)
        assert data["bucket"] == "week"
        assert data["totals"]["calls"] == expected, (a, b)
        assert sum(p["completed"] for p in data["series"]) == expected
        agents = await handlers.agents(repo, scope(partner_id), window)
        assert sum(x["calls"] for x in agents["agents"]) == expected
        banded = [
            await handlers.overview(repo, scope(partner_id), dataclasses.replace(window, score_band=s))
            for s in range(5)
        ]
        assert sum(d["totals"]["calls"] for d in banded) == expected
        # The rubric parameters under two filters at once (intent and score band): the grain
        # keeping both, counted exactly.
        for band in range(4):
            low, high = ((0, 50), (50, 70), (70, 85), (85, 101))[band]
            wanted = sum(a <= d <= b and low <= sc < high for d, sc in zip(days, scores, strict=True))
            both = dataclasses.replace(window, intent="INTERESTED", score_band=band)
            rows = (await handlers.agents(repo, scope(partner_id), both))["agents"]
            counted = sum(p["calls"] for r in rows for p in r["weakest"] if p["parameter"] == "Setting Context")
            assert counted == wanted, (a, b, band)


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def bleeping(call: Any) -> Any:
    """``call`` (an ingested event) whose tenant bleeps redacted spans in the recording."""
    config = DEFAULT_CONFIG.model_copy(
        update={"data_protection": DataProtection(redaction=Redaction(enabled=True, redact_audio=True))}
    )
    snapshot = ConfigSnapshot(config_id=config.config_id(), config=config, source="tenant")
    return call.model_copy(update={"payload": call.payload.model_copy(update={"analysis_config": snapshot})})


def with_copy(event: CallAnalyzed, uri: str) -> CallAnalyzed:
    copy = RedactedRecording(blob_uri=uri, sha256="1" * 64, media_type="audio/mpeg")
    return event.model_copy(update={"payload": event.payload.model_copy(update={"redacted_recording": copy})})


@pytest.mark.parametrize("order", ["pipeline", "analyzed_first"])
async def test_a_bleeped_call_serves_the_copy_and_never_the_original(
    repo: DashboardRepository, partner_id: str, order: str
) -> None:
    call = bleeping(ingested(partner_id))
    original = fetched(call, at(2))
    done = with_copy(analyzed(call, at(10)), "file:///blobs/bleeped")
    # Before the analysis, the call has no recording to play: not the original.
    await fold(repo, call, original)
    assert await repo.recording(scope(partner_id), call.call_id) is None
    events = [done, original] if order == "analyzed_first" else [original, done]
    await fold(repo, *events, original)
    assert await repo.recording(scope(partner_id), call.call_id) == ("file:///blobs/bleeped", "audio/mpeg")

    # Without bleeping, the original is played as before.
    plain = ingested(partner_id)
    await fold(repo, plain, fetched(plain, at(2)), analyzed(plain, at(10)))
    assert await repo.recording(scope(partner_id), plain.call_id) == ("file:///blobs/x", "audio/mpeg")
