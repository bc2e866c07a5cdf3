"""The status and results API on real Kafka and PostgreSQL: ``GET /calls/{id}``, ``GET /calls``
and ``POST /calls/{id}/callback/redeliver``, fed by the gateway's own read-model consumer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from schemas.events import (
    TOPIC_CALLBACK_COMMANDS,
    TOPIC_INGESTED,
    TOPICS,
    CallbackRedeliverRequested,
    CallIngested,
    dump_event,
    parse_event,
)
from services.common.db import create_pool
from services.common.kafka import TopicSpec, ensure_topics, make_producer
from services.gateway.app import READ_MODEL_TOPICS
from services.gateway.config import GatewaySettings
from services.gateway.read_model import project
from services.gateway.repository import GatewayRepository
from tests.factories import call_item
from tests.support.gateway import INGEST, PartnerCreds, create_partner, running_gateway, wait_until
from tests.support.infra import Infra
from tests.support.kafka import consume
from tests.support.status_events import analyzed, at, delivery, failed, fetched, ingested, started

CALLS = "/api/v1/partner/calls"
NOT_FOUND = {"success": False, "message": "Call not found"}
STATUS_ERR = "status must be one of: received, fetching, fetched, analyzing, completed, failed"
INTENT_ERR = "intent must be one of: INTERESTED, NOT_INTERESTED, FOLLOW_UP, UNDECIDED, NO_CONVERSATION"
UTC_ERR = "must be an ISO 8601 date-time in UTC (YYYY-MM-DDThh:mm:ssZ)"


def now(offset_s: float = 0.0) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=offset_s)


@pytest.fixture
async def producer(infra: Infra, gateway_settings: GatewaySettings) -> AsyncIterator[AIOKafkaProducer]:
    await ensure_topics(infra.kafka_bootstrap, [TopicSpec(gateway_settings.topic(t), 3) for t in READ_MODEL_TOPICS])
    p = make_producer(infra.kafka_bootstrap, "test")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def repo(database_url: str) -> AsyncIterator[GatewayRepository]:
    pool = await create_pool(SecretStr(database_url), "gateway", min_size=1, max_size=4)
    yield GatewayRepository(pool)
    await pool.close()


@pytest.fixture
async def busy_partner(database_url: str) -> PartnerCreds:
    """A partner whose rate limit leaves room for many reads in one test."""
    return await create_partner(database_url, rate_limit=5000)


async def publish(producer: AIOKafkaProducer, settings: GatewaySettings, *events: Any) -> None:
    for event in events:
        await producer.send_and_wait(settings.topic(TOPICS[type(event)]), dump_event(event), key=event.key())


async def get_call(
    client: httpx.AsyncClient,
    partner: PartnerCreds,
    call_id: str,
    tenant: str = "tenant1",
    sub: str | None = "subtenant1",
) -> httpx.Response:
    return await client.get(f"{CALLS}/{call_id}", headers=partner.headers(tenant, sub))


async def until(client: httpx.AsyncClient, partner: PartnerCreds, call_id: str, check: Any) -> dict[str, Any]:
    """Poll the call until ``check(data)`` holds (the consumer works in the background)."""

    async def probe() -> dict[str, Any] | None:
        response = await get_call(client, partner, call_id)
        if response.status_code != 200:
            return None
        data: dict[str, Any] = response.json()["data"]
        return data if check(data) else None

    data = await wait_until(probe, timeout=60)
    assert data is not None, (await get_call(client, partner, call_id)).text
    return data


async def ingest(client: httpx.AsyncClient, partner: PartnerCreds, item: dict[str, Any]) -> None:
    headers = {**partner.headers(), "content-type": "application/json"}
    response = await client.post(INGEST, content=orjson.dumps({"data": [item]}), headers=headers)
    assert response.status_code == 200, response.text


# -- the consumer running: real events on real topics ------------------------------------------


async def test_status_walks_through_every_state_from_real_events(
    client: httpx.AsyncClient,
    busy_partner: PartnerCreds,
    producer: AIOKafkaProducer,
    gateway_settings: GatewaySettings,
    infra: Infra,
) -> None:
    partner = busy_partner
    item = call_item()
    call_id = item["call"]["id"]
    await ingest(client, partner, item)
    data = await until(client, partner, call_id, lambda d: d["agent_id"] == "agent123")
    assert data["status"] == "received" and data["callback"]["url"] == item["callback_url"]

    [record] = await consume(infra.kafka_bootstrap, gateway_settings.topic(TOPIC_INGESTED), 1)
    call = parse_event(record.value)
    assert isinstance(call, CallIngested)
    steps = [
        (started(call, "fetch", now(1)), "fetching"),
        (fetched(call, now(2)), "fetched"),
        (started(call, "analyze", now(3)), "analyzing"),
        (analyzed(call, now(4)), "completed"),
    ]
    for event, status in steps:
        await publish(producer, gateway_settings, event)
        data = await until(client, partner, call_id, lambda d, s=status: d["status"] == s)
    assert all(data["timestamps"][k] for k in ("received", "fetching", "fetched", "analyzing", "completed"))
    assert data["timestamps"]["received"] == call.payload.received_at.isoformat().replace("+00:00", "Z")
    assert data["result"]["intent"] == "INTERESTED" and data["result"]["call_id"] == call_id

    await publish(
        producer,
        gateway_settings,
        delivery(call, now(5), "pending"),
        delivery(call, now(6), "retrying", number=1, status_code=503, error="HTTP 503", next_attempt_at=now(8)),
        delivery(call, now(8), "delivered", number=2, status_code=200),
    )
    data = await until(client, partner, call_id, lambda d: d["callback"]["state"] == "delivered")
    assert [(a["number"], a["status_code"]) for a in data["callback"]["attempts"]] == [(1, 503), (2, 200)]

    listed = (await client.get(CALLS, headers=partner.headers())).json()["data"]["calls"]
    assert [c["call_id"] for c in listed] == [call_id]
    assert listed[0]["status"] == "completed" and listed[0]["callback_state"] == "delivered"


async def test_out_of_order_and_duplicate_events_end_completed(
    client: httpx.AsyncClient, busy_partner: PartnerCreds, producer: AIOKafkaProducer, gateway_settings: GatewaySettings
) -> None:
    call = ingested(busy_partner.partner_id)
    done = analyzed(call, at(10))
    # Analysed before fetched (different topics are not ordered), and every event twice.
    await publish(producer, gateway_settings, done, done, call)
    await until(client, busy_partner, call.call_id, lambda d: d["status"] == "completed")
    await publish(producer, gateway_settings, fetched(call, at(2)), started(call, "fetch", at(1)), call)
    data = await until(client, busy_partner, call.call_id, lambda d: d["timestamps"]["fetching"] is not None)
    data = await until(client, busy_partner, call.call_id, lambda d: d["timestamps"]["fetched"] is not None)
    assert data["status"] == "completed" and data["result"]["quality_score"] == 72.5


async def test_a_failed_call_shows_its_error(
    client: httpx.AsyncClient, partner: PartnerCreds, producer: AIOKafkaProducer, gateway_settings: GatewaySettings
) -> None:
    call = ingested(partner.partner_id)
    await publish(producer, gateway_settings, call, started(call, "fetch", at(1)), failed(call, at(2)))
    data = await until(client, partner, call.call_id, lambda d: d["status"] == "failed")
    assert data["error"] == {"stage": "fetch", "code": "http_status", "message": "the recording host answered HTTP 404"}
    assert data["result"] is None


async def test_an_accepted_call_answers_received_before_its_event_is_consumed(
    gateway_settings: GatewaySettings, partner: PartnerCreds
) -> None:
    settings = gateway_settings.model_copy(update={"read_model_enabled": False})
    async with running_gateway(settings) as (_, client):
        item = call_item()
        await ingest(client, partner, item)
        response = await get_call(client, partner, item["call"]["id"])
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["status"] == "received" and data["timestamps"]["received"] is not None
    assert data["result"] is None and data["error"] is None and data["callback"] is None


# -- list: filters and pagination -------------------------------------------------------------


async def seed(repo: GatewayRepository, partner: PartnerCreds) -> list[tuple[datetime, str, dict[str, Any]]]:
    """30 calls over two subtenants and two agents, in every status; two share a received time."""
    calls = []
    for i in range(30):
        received = at(60 * i) if i != 7 else at(60 * 6)  # calls 6 and 7 tie on received_at
        sub = "s1" if i % 3 else "s2"
        agent = "a1" if i % 2 else "a2"
        call = ingested(
            partner.partner_id,
            f"list-{i:02d}-{uuid.uuid4().hex[:4]}",
            tenant="tenant1",
            subtenant=sub,
            received=received,
            agent__id=agent,
        )
        events: list[Any] = [call]
        kind = i % 5
        if kind >= 1:
            events.append(started(call, "fetch", received + timedelta(seconds=1)))
        if kind == 2:
            events.append(failed(call, received + timedelta(seconds=2)))
        if kind >= 3:
            intent = "INTERESTED" if kind == 3 else "NOT_INTERESTED"
            events.append(analyzed(call, received + timedelta(seconds=9), intent=intent))
        for event in events:
            await project(event, repo)
        status = ["received", "fetching", "failed", "completed", "completed"][kind]
        calls.append((received, call.call_id, {"sub": sub, "agent": agent, "status": status, "kind": kind}))
    calls.sort(key=lambda c: (c[0], c[1]), reverse=True)
    return calls


async def list_ids(
    client: httpx.AsyncClient, partner: PartnerCreds, params: dict[str, str], sub: str | None = None
) -> list[str]:
    """Every page of the list, following next_cursor; fails on a repeated call."""
    ids: list[str] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(CALLS, params=query, headers=partner.headers("tenant1", sub))
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        ids.extend(c["call_id"] for c in data["calls"])
        cursor = data["next_cursor"]
        if cursor is None:
            break
    assert len(ids) == len(set(ids))
    return ids


async def test_pages_cover_every_call_once_newest_first(
    client: httpx.AsyncClient, busy_partner: PartnerCreds, repo: GatewayRepository
) -> None:
    calls = await seed(repo, busy_partner)
    expected = [c[1] for c in calls]
    for limit in ("1", "7", "30", "200"):
        assert await list_ids(client, busy_partner, {"limit": limit}) == expected
    first = (await client.get(CALLS, headers=busy_partner.headers("tenant1", None))).json()["data"]
    assert len(first["calls"]) == 30 and first["next_cursor"] is None  # default page of 50

    # A call received while paging does not shift the pages that follow.
    page = (await client.get(CALLS, params={"limit": "10"}, headers=busy_partner.headers("tenant1", None))).json()
    newer = ingested(busy_partner.partner_id, "list-newest", subtenant="s1", received=at(10_000))
    await project(newer, repo)
    rest = await list_ids(client, busy_partner, {"limit": "10", "cursor": page["data"]["next_cursor"]})
    assert [c["call_id"] for c in page["data"]["calls"]] + rest == expected
    assert await list_ids(client, busy_partner, {"limit": "10"}) == ["list-newest", *expected]


async def test_filters(client: httpx.AsyncClient, busy_partner: PartnerCreds, repo: GatewayRepository) -> None:
    calls = await seed(repo, busy_partner)

    def where(predicate: Any) -> list[str]:
        return [cid for received, cid, attrs in calls if predicate(received, attrs)]

    p = busy_partner
    assert await list_ids(client, p, {"status": "completed", "limit": "4"}) == where(
        lambda _, a: a["status"] == "completed"
    )
    assert await list_ids(client, p, {"status": "failed,received"}) == where(
        lambda _, a: a["status"] in ("failed", "received")
    )
    assert await list_ids(client, p, {"subtenant": "s2"}) == where(lambda _, a: a["sub"] == "s2")
    assert await list_ids(client, p, {"agent": "a1"}) == where(lambda _, a: a["agent"] == "a1")
    assert await list_ids(client, p, {"intent": "NOT_INTERESTED"}) == where(lambda _, a: a["kind"] == 4)
    start, end = at(60 * 10), at(60 * 20)
    window = {"from": start.isoformat().replace("+00:00", "Z"), "to": end.isoformat()}
    assert await list_ids(client, p, window) == where(lambda r, _: start <= r < end)
    combined = {"status": "completed", "agent": "a2", "subtenant": "s1"}
    assert await list_ids(client, p, combined) == where(
        lambda _, a: a["status"] == "completed" and a["agent"] == "a2" and a["sub"] == "s1"
    )
    # The subtenant header narrows the view; the query filter narrows it further.
    assert await list_ids(client, p, {}, sub="s1") == where(lambda _, a: a["sub"] == "s1")
    assert await list_ids(client, p, {"subtenant": "s2"}, sub="s1") == []
    # Another tenant sees none of them.
    response = await client.get(CALLS, headers=p.headers("tenant2", None))
    assert response.json() == {"success": True, "data": {"calls": [], "next_cursor": None}}


async def test_an_item_of_the_list_is_a_summary(
    client: httpx.AsyncClient, partner: PartnerCreds, repo: GatewayRepository
) -> None:
    call = ingested(partner.partner_id, received=at(0))
    await project(call, repo)
    await project(analyzed(call, at(5)), repo)
    [item] = (await client.get(CALLS, headers=partner.headers())).json()["data"]["calls"]
    assert set(item) == {
        "call_id",
        "status",
        "tenant_id",
        "subtenant_id",
        "agent_id",
        "timestamps",
        "intent",
        "quality_score",
        "error",
        "callback_state",
    }
    assert (item["status"], item["intent"], item["quality_score"]) == ("completed", "INTERESTED", 72.5)


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        ({"status": "done"}, [("status", STATUS_ERR)]),
        ({"status": "completed,nope"}, [("status", STATUS_ERR)]),
        ({"limit": "0"}, [("limit", "limit must be between 1 and 200")]),
        ({"limit": "201"}, [("limit", "limit must be between 1 and 200")]),
        ({"limit": "ten"}, [("limit", "limit must be an integer")]),
        ({"from": "2026-01-05"}, [("from", "from " + UTC_ERR)]),
        ({"to": "2026-01-05T10:00:00+02:00"}, [("to", "to " + UTC_ERR)]),
        ({"from": "2026-01-05T10:00:00Z", "to": "2026-01-05T09:00:00Z"}, [("to", "to must be after from")]),
        ({"intent": "MAYBE"}, [("intent", INTENT_ERR)]),
        ({"cursor": "not-a-cursor"}, [("cursor", "cursor is invalid")]),
        ({"agent": " "}, [("agent", "agent should not be empty")]),
        ({"subtenant": "x" * 256}, [("subtenant", "subtenant must be shorter than or equal to 255 characters")]),
        (
            {"status": "x", "limit": "-1", "from": "yesterday"},
            [
                ("status", STATUS_ERR),
                ("from", "from " + UTC_ERR),
                ("limit", "limit must be an integer"),
            ],
        ),
    ],
)
async def test_bad_filters_answer_422_with_every_field_and_reason(
    client: httpx.AsyncClient, partner: PartnerCreds, params: dict[str, str], errors: list[tuple[str, str]]
) -> None:
    response = await client.get(CALLS, params=params, headers=partner.headers())
    assert response.status_code == 422
    assert response.json() == {
        "success": False,
        "message": "Validation failed",
        "errors": [{"field": f, "message": m} for f, m in errors],
    }


# -- tenant isolation and the spec's errors ---------------------------------------------------


async def test_tenant_isolation(
    client: httpx.AsyncClient, busy_partner: PartnerCreds, database_url: str, repo: GatewayRepository
) -> None:
    call = ingested(busy_partner.partner_id, tenant="tA", subtenant="sA")
    await project(call, repo)
    other = await create_partner(database_url)
    unknown = await get_call(client, busy_partner, "no-such-call", "tA", "sA")
    assert unknown.status_code == 404 and unknown.json() == NOT_FOUND

    assert (await get_call(client, busy_partner, call.call_id, "tA", "sA")).status_code == 200
    assert (await get_call(client, busy_partner, call.call_id, "tA", None)).status_code == 200
    for who, tenant, sub in ((other, "tA", "sA"), (busy_partner, "tB", "sA"), (busy_partner, "tA", "sB")):
        response = await get_call(client, who, call.call_id, tenant, sub)
        assert (response.status_code, response.json()) == (unknown.status_code, unknown.json())
        redeliver = await client.post(f"{CALLS}/{call.call_id}/callback/redeliver", headers=who.headers(tenant, sub))
        assert (redeliver.status_code, redeliver.json()) == (404, NOT_FOUND)
    listed = (await client.get(CALLS, headers=other.headers("tA", None))).json()["data"]["calls"]
    assert listed == []


async def test_auth_and_tenancy_headers(client: httpx.AsyncClient, partner: PartnerCreds) -> None:
    bad = {**partner.headers(), "x-api-secret": "cs_wrong"}
    for method, path in (("GET", CALLS), ("GET", f"{CALLS}/x"), ("POST", f"{CALLS}/x/callback/redeliver")):
        forbidden = await client.request(method, path, headers=bad)
        assert (forbidden.status_code, forbidden.json()) == (403, {"success": False, "message": "Forbidden"})
        missing = await client.request(method, path, headers=partner.headers(None, None))
        assert (missing.status_code, missing.json()) == (400, {"success": False, "message": "Tenant ID is required"})


async def test_any_call_id_is_addressable(
    client: httpx.AsyncClient, partner: PartnerCreds, repo: GatewayRepository
) -> None:
    call = ingested(partner.partner_id, "crm/2026 #7?x=1")
    await project(call, repo)
    response = await client.get(f"{CALLS}/crm%2F2026%20%237%3Fx%3D1", headers=partner.headers())
    assert response.status_code == 200 and response.json()["data"]["call_id"] == "crm/2026 #7?x=1"


# -- redelivery --------------------------------------------------------------------------------


async def test_redeliver_publishes_a_command_once_the_callback_is_final(
    client: httpx.AsyncClient,
    busy_partner: PartnerCreds,
    repo: GatewayRepository,
    gateway_settings: GatewaySettings,
    infra: Infra,
) -> None:
    p = busy_partner
    delivered = ingested(p.partner_id)
    gave_up = ingested(p.partner_id)
    for call, state in ((delivered, "delivered"), (gave_up, "failed")):
        for event in (call, analyzed(call, at(5)), delivery(call, at(6), state, number=1, status_code=500)):
            await project(event, repo)
    accepted = []
    for call in (delivered, gave_up):
        response = await client.post(f"{CALLS}/{call.call_id}/callback/redeliver", headers=p.headers())
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["success"] is True and body["data"]["call_id"] == call.call_id
        assert body["data"]["delivery_id"] == "msg_test"
        accepted.append(body["data"]["command_id"])

    records = await consume(infra.kafka_bootstrap, gateway_settings.topic(TOPIC_CALLBACK_COMMANDS), 2, linger=1)
    commands = [parse_event(r.value) for r in records]
    assert all(isinstance(c, CallbackRedeliverRequested) for c in commands)
    assert sorted(str(c.event_id) for c in commands) == sorted(accepted)
    by_call = {c.call_id: (c, r.key) for c, r in zip(commands, records, strict=True)}
    assert set(by_call) == {delivered.call_id, gave_up.call_id}
    command, key = by_call[delivered.call_id]
    assert key == f"{p.partner_id}/{delivered.call_id}".encode()
    assert (command.partner_id, command.tenant_id, command.subtenant_id, command.source) == (
        p.partner_id,
        "tenant1",
        "subtenant1",
        "gateway",
    )
    assert isinstance(command, CallbackRedeliverRequested)
    assert command.payload.requested_by == f"partner:{p.partner_id} key:{p.api_key[:10]}"
    assert p.api_secret not in records[0].value.decode()


async def test_redeliver_conflicts_and_not_found(
    client: httpx.AsyncClient, busy_partner: PartnerCreds, repo: GatewayRepository
) -> None:
    p = busy_partner
    no_url = ingested(p.partner_id, callback_url=None)
    in_flight = ingested(p.partner_id)
    not_started = ingested(p.partner_id)
    for event in (
        no_url,
        analyzed(no_url, at(5)),
        in_flight,
        analyzed(in_flight, at(5)),
        delivery(in_flight, at(6), "retrying", number=1, status_code=503, next_attempt_at=at(9)),
        not_started,
    ):
        await project(event, repo)

    async def redeliver(call_id: str) -> httpx.Response:
        return await client.post(f"{CALLS}/{call_id}/callback/redeliver", headers=p.headers())

    no_callback = {"success": False, "message": "Call has no callback_url"}
    not_final = {
        "success": False,
        "message": "Callback can be redelivered only once its delivery is delivered or failed",
    }
    assert ((r := await redeliver(no_url.call_id)).status_code, r.json()) == (409, no_callback)
    assert ((r := await redeliver(in_flight.call_id)).status_code, r.json()) == (409, not_final)
    assert ((r := await redeliver(not_started.call_id)).status_code, r.json()) == (409, not_final)
    assert ((r := await redeliver("never-sent")).status_code, r.json()) == (404, NOT_FOUND)


async def test_openapi_documents_the_status_endpoints(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    detail = paths[CALLS + "/{call_id}"]["get"]["responses"]
    assert {"200", "400", "403", "404", "429", "500"} <= set(detail)
    assert detail["200"]["content"]["application/json"]["example"]["data"]["status"] == "completed"
    listing = paths[CALLS]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"status", "subtenant", "agent", "from", "to", "intent"}
    assert "422" in listing["responses"]
    redeliver = paths[CALLS + "/{call_id}/callback/redeliver"]["post"]["responses"]
    assert {"202", "404", "409"} <= set(redeliver)
