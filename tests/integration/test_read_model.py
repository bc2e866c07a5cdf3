"""The status read model's handler on real PostgreSQL: every transition, events in any order and
any number of times, callback attempts, and the ingestion ledger for calls not consumed yet."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from services.common.db import create_pool
from services.gateway import handlers, read_model
from services.gateway.errors import CallNotFound
from services.gateway.read_model import RESULT_FIELDS, BatchingStore, project
from services.gateway.repository import GatewayRepository, NewCall
from tests.support.status_events import analyzed, at, delivery, failed, fetched, ingested, lifecycle, started

SCOPE = handlers.ReadScope("tenant1", "subtenant1")


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


@pytest.fixture
async def repo(database_url: str) -> AsyncIterator[GatewayRepository]:
    pool = await create_pool(SecretStr(database_url), "gateway", min_size=1, max_size=4)
    yield GatewayRepository(pool)
    await pool.close()


@pytest.fixture
def partner() -> handlers.Partner:
    return handlers.Partner(f"ptn_{uuid.uuid4().hex[:12]}", None)


async def view(
    repo: GatewayRepository, partner: handlers.Partner, call_id: str, scope: handlers.ReadScope = SCOPE
) -> dict[str, Any]:
    return await handlers.describe_call(repo, partner, scope, call_id)


async def fold(repo: GatewayRepository, *events: Any) -> None:
    for event in events:
        assert await project(event, repo) == []


async def test_every_state_in_pipeline_order(repo: GatewayRepository, partner: handlers.Partner) -> None:
    call = ingested(partner.partner_id)
    expected = [
        (call, "received"),
        (started(call, "fetch", at(1)), "fetching"),
        (fetched(call, at(2)), "fetched"),
        (started(call, "analyze", at(3)), "analyzing"),
        (analyzed(call, at(10)), "completed"),
    ]
    for event, status in expected:
        await fold(repo, event)
        data = await view(repo, partner, call.call_id)
        assert data["status"] == status
        assert (data["result"] is None) == (status != "completed")
    assert data["timestamps"] == {
        "received": iso(at(0)),
        "fetching": iso(at(1)),
        "fetched": iso(at(2)),
        "analyzing": iso(at(3)),
        "completed": iso(at(10)),
        "failed": None,
    }
    assert (data["tenant_id"], data["subtenant_id"], data["agent_id"]) == ("tenant1", "subtenant1", "agent123")
    assert data["error"] is None
    result = data["result"]
    assert list(result) == ["call_id", *RESULT_FIELDS]
    assert result["call_id"] == call.call_id and result["intent"] == "INTERESTED" and result["quality_score"] == 72.5
    assert result["bant"]["concern_categories"] == "Functionality"  # tests.factories.analysis_payload
    assert result["quality"][0]["parameter_name"] == "Setting Context"
    assert result["transcript"][0]["speaker"] == "agent" and result["engines"]["asr_engine"] == "pocketsphinx"
    # A callback_url is known from the ingested call, nothing delivered yet.
    assert data["callback"] == {
        "url": "https://partner.example.com/callback",
        "delivery_id": None,
        "kind": None,
        "state": None,
        "next_attempt_at": None,
        "error": None,
        "attempts": [],
        "redelivery_requested_at": None,
    }


async def test_analyzed_before_fetched_ends_completed(repo: GatewayRepository, partner: handlers.Partner) -> None:
    call = ingested(partner.partner_id)
    await fold(repo, analyzed(call, at(10)))
    first = await view(repo, partner, call.call_id)
    assert first["status"] == "completed"
    # Late events of earlier stages record their time but never move the status back.
    await fold(repo, fetched(call, at(2)), started(call, "analyze", at(3)), started(call, "fetch", at(1)), call)
    data = await view(repo, partner, call.call_id)
    assert data["status"] == "completed"
    assert data["timestamps"]["fetched"] == iso(at(2)) and data["timestamps"]["fetching"] == iso(at(1))
    assert data["result"] == first["result"]


async def test_any_order_and_any_repetition_gives_the_same_view(
    repo: GatewayRepository, partner: handlers.Partner
) -> None:
    reference_call = ingested(partner.partner_id)
    await fold(repo, *lifecycle(reference_call))
    reference = await view(repo, partner, reference_call.call_id)
    assert reference["status"] == "completed" and reference["callback"]["state"] == "delivered"
    rng = random.Random(7)
    for _ in range(4):
        call = ingested(partner.partner_id)
        events = lifecycle(call)
        shuffled = events * 2
        rng.shuffle(shuffled)
        await fold(repo, *shuffled)
        data = await view(repo, partner, call.call_id)
        # Same call apart from its id.
        assert {**data, "call_id": None, "result": None} == {**reference, "call_id": None, "result": None}
        assert {**data["result"], "call_id": None} == {**reference["result"], "call_id": None}


async def test_a_redelivered_event_changes_nothing(repo: GatewayRepository, partner: handlers.Partner) -> None:
    call = ingested(partner.partner_id)
    events = lifecycle(call)
    await fold(repo, *events)
    before = await view(repo, partner, call.call_id)
    await fold(repo, *events)
    assert await view(repo, partner, call.call_id) == before
    assert len(before["callback"]["attempts"]) == 2


async def test_failed_is_terminal_and_shows_the_error(repo: GatewayRepository, partner: handlers.Partner) -> None:
    call = ingested(partner.partner_id)
    await fold(repo, call, started(call, "fetch", at(1)), failed(call, at(2)))
    data = await view(repo, partner, call.call_id)
    assert data["status"] == "failed"
    assert data["error"] == {"stage": "fetch", "code": "http_status", "message": "the recording host answered HTTP 404"}
    assert data["timestamps"]["failed"] == iso(at(2)) and data["result"] is None
    # A late (or replayed) earlier-stage event and even a late analysis do not reopen it.
    await fold(repo, started(call, "analyze", at(3)), analyzed(call, at(4)))
    data = await view(repo, partner, call.call_id)
    assert data["status"] == "failed" and data["result"] is None and data["error"]["code"] == "http_status"


async def test_the_first_terminal_state_wins(repo: GatewayRepository, partner: handlers.Partner) -> None:
    call = ingested(partner.partner_id)
    await fold(repo, call, analyzed(call, at(5)), failed(call, at(6), stage="analyze", code="asr_timeout"))
    data = await view(repo, partner, call.call_id)
    assert data["status"] == "completed" and data["error"] is None and data["result"] is not None


async def test_a_notify_failure_does_not_fail_a_call(repo: GatewayRepository, partner: handlers.Partner) -> None:
    call = ingested(partner.partner_id)
    await fold(repo, call, failed(call, at(5), stage="notify", code="internal_error"), started(call, "fetch", at(6)))
    data = await view(repo, partner, call.call_id)
    assert data["status"] == "fetching" and data["error"] is None


async def test_every_delivery_attempt_is_shown_and_the_latest_state_wins(
    repo: GatewayRepository, partner: handlers.Partner
) -> None:
    call = ingested(partner.partner_id)
    retrying = delivery(call, at(12), "retrying", number=1, status_code=500, error="HTTP 500", next_attempt_at=at(13))
    await fold(
        repo,
        call,
        analyzed(call, at(10)),
        delivery(call, at(11), "pending"),
        retrying,
        delivery(call, at(13), "retrying", number=2, error="timeout", next_attempt_at=at(16)),
        delivery(call, at(16), "failed", number=3, status_code=404, error="HTTP 404"),
    )
    callback = (await view(repo, partner, call.call_id))["callback"]
    assert (callback["state"], callback["delivery_id"], callback["kind"]) == ("failed", "msg_test", "result")
    assert callback["next_attempt_at"] is None
    assert [(a["number"], a["status_code"], a["error"]) for a in callback["attempts"]] == [
        (1, 500, "HTTP 500"),
        (2, None, "timeout"),
        (3, 404, "HTTP 404"),
    ]
    assert callback["attempts"][0] == {
        "delivery_id": "msg_test",
        "kind": "result",
        "number": 1,
        "started_at": iso(at(12)),
        "status_code": 500,
        "latency_ms": 12.5,
        "error": "HTTP 500",
    }
    # An older delivery event replayed by Kafka does not bring back an earlier state.
    await fold(repo, retrying)
    assert (await view(repo, partner, call.call_id))["callback"]["state"] == "failed"
    # A redelivery's newer events move it on, with their attempts added.
    await fold(repo, delivery(call, at(30), "delivered", number=4, status_code=200))
    callback = (await view(repo, partner, call.call_id))["callback"]
    assert callback["state"] == "delivered" and len(callback["attempts"]) == 4


async def test_a_call_without_callback_url_has_no_callback_block(
    repo: GatewayRepository, partner: handlers.Partner
) -> None:
    call = ingested(partner.partner_id, callback_url=None)
    await fold(repo, call, analyzed(call, at(3)))
    assert (await view(repo, partner, call.call_id))["callback"] is None


async def test_a_delivery_reported_before_anything_else_creates_the_call(
    repo: GatewayRepository, partner: handlers.Partner
) -> None:
    call = ingested(partner.partner_id)
    await fold(repo, delivery(call, at(11), "delivered", number=1, status_code=200))
    data = await view(repo, partner, call.call_id)
    assert data["status"] == "received" and data["callback"]["state"] == "delivered"
    await fold(repo, analyzed(call, at(10)), call)
    data = await view(repo, partner, call.call_id)
    assert data["status"] == "completed" and data["timestamps"]["received"] == iso(at(0))
    assert data["agent_id"] == "agent123"


@pytest.fixture
async def own_repo(isolated_database_url: str) -> AsyncIterator[GatewayRepository]:
    """A database of the test's own: recording calls queues outbox rows no relay must publish."""
    pool = await create_pool(SecretStr(isolated_database_url), "gateway", min_size=1, max_size=2)
    yield GatewayRepository(pool)
    await pool.close()


async def test_an_accepted_call_not_consumed_yet_answers_received_from_the_ledger(
    own_repo: GatewayRepository, partner: handlers.Partner
) -> None:
    repo = own_repo
    received_at = datetime(2026, 2, 1, 8, 30, tzinfo=UTC)
    call_id = f"ledger-{uuid.uuid4().hex[:8]}"
    await repo.record_calls(
        partner.partner_id,
        tenant_id="tenant1",
        subtenant_id="subtenant1",
        received_at=received_at,
        calls=[NewCall(call_id, b"{}")],
        topic="unused.topic",
    )
    data = await view(repo, partner, call_id)
    assert data == {
        "call_id": call_id,
        "status": "received",
        "tenant_id": "tenant1",
        "subtenant_id": "subtenant1",
        "agent_id": None,
        "timestamps": {
            "received": iso(received_at),
            "fetching": None,
            "fetched": None,
            "analyzing": None,
            "completed": None,
            "failed": None,
        },
        "result": None,
        "error": None,
        "data_protection": {
            "retention": {
                part: {"expires_at": None, "purged_at": None} for part in ("recording", "transcript", "results")
            }
        },
        "callback": None,
    }
    # A progress event that overtakes the ingested event takes its received time from the ledger.
    call = ingested(partner.partner_id, call_id, received=received_at)
    await fold(repo, started(call, "fetch", at(1)))
    data = await view(repo, partner, call_id)
    assert data["status"] == "fetching" and data["timestamps"]["received"] == iso(received_at)
    with pytest.raises(CallNotFound):
        await view(repo, partner, call_id, handlers.ReadScope("tenant2", None))


async def test_scope_by_tenant_and_subtenant(repo: GatewayRepository, partner: handlers.Partner) -> None:
    call = ingested(partner.partner_id, tenant="tA", subtenant="sA")
    await fold(repo, call)
    assert (await view(repo, partner, call.call_id, handlers.ReadScope("tA", "sA")))["status"] == "received"
    assert (await view(repo, partner, call.call_id, handlers.ReadScope("tA", None)))["status"] == "received"
    for scope in (handlers.ReadScope("tA", "sB"), handlers.ReadScope("tB", None), handlers.ReadScope("tB", "sA")):
        with pytest.raises(CallNotFound):
            await view(repo, partner, call.call_id, scope)
    other = handlers.Partner(f"ptn_{uuid.uuid4().hex[:12]}", None)
    with pytest.raises(CallNotFound):
        await view(repo, other, call.call_id, handlers.ReadScope("tA", "sA"))


@pytest.mark.parametrize("stage_events", list(itertools.permutations(range(3))))
async def test_every_order_of_the_middle_stages_ends_analyzing(
    repo: GatewayRepository, partner: handlers.Partner, stage_events: tuple[int, ...]
) -> None:
    call = ingested(partner.partner_id)
    events = [started(call, "fetch", at(1)), fetched(call, at(2)), started(call, "analyze", at(3))]
    await fold(repo, *(events[i] for i in stage_events), call)
    data = await view(repo, partner, call.call_id)
    assert data["status"] == "analyzing"
    assert [data["timestamps"][k] for k in ("fetching", "fetched", "analyzing")] == [iso(at(s)) for s in (1, 2, 3)]


async def test_events_folded_together_in_batches_give_the_same_views(
    repo: GatewayRepository, partner: handlers.Partner
) -> None:
    # Many calls' events, all at once and in any order, through the batching store the consumer
    # uses: the same views as folding one event at a time.
    reference_call = ingested(partner.partner_id)
    await fold(repo, *lifecycle(reference_call))
    reference = await view(repo, partner, reference_call.call_id)
    calls = [ingested(partner.partner_id) for _ in range(20)]
    events = [e for call in calls for e in lifecycle(call)] * 2
    random.Random(11).shuffle(events)
    store = BatchingStore(repo, max_batch=32)
    assert all(r == [] for r in await asyncio.gather(*(project(e, store) for e in events)))
    for call in calls:
        data = await view(repo, partner, call.call_id)
        assert {**data, "call_id": None, "result": None} == {**reference, "call_id": None, "result": None}


async def test_one_bad_change_fails_only_its_own_event(repo: GatewayRepository, partner: handlers.Partner) -> None:
    good = [ingested(partner.partner_id) for _ in range(5)]
    bad = ingested(partner.partner_id)
    store = BatchingStore(repo, max_batch=100, max_delay_s=0.05)
    changes = [read_model.changes_of(e) for e in [*good, bad]]
    assert all(c is not None for c in changes)
    broken = dataclasses.replace(changes[-1][0], status="no such status")  # type: ignore[index]
    outcomes = await asyncio.gather(
        *(store.apply_change(*c) for c in changes[:-1]),  # type: ignore[misc]
        store.apply_change(broken),
        return_exceptions=True,
    )
    assert outcomes[:-1] == [None] * 5
    assert isinstance(outcomes[-1], KeyError)
    for call in good:
        assert (await view(repo, partner, call.call_id))["status"] == "received"
