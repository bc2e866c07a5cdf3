"""Data protection in the gateway, on real Kafka and PostgreSQL: erasure of a call and of a
customer (DELETE /calls/{id}, POST /erasures, GET /erasures/{id}), the confirmations that
complete an erasure, late events that must not bring an erased call back, and retention."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas.events import (
    TOPIC_ERASED,
    TOPIC_INGESTED,
    TOPICS,
    CallErased,
    CallIngested,
    dump_event,
    parse_event,
)
from services.common.erasure import confirmation
from services.common.kafka import TopicSpec, ensure_topics, make_producer
from services.gateway.app import READ_MODEL_TOPICS
from services.gateway.config import GatewaySettings
from tests.factories import call_item
from tests.support.gateway import INGEST, PartnerCreds, create_partner, wait_until
from tests.support.infra import Infra
from tests.support.kafka import consume
from tests.support.status_events import analyzed, delivery, fetched

CALLS = "/api/v1/partner/calls"
ERASURES = "/api/v1/partner/erasures"
CONFIG = "/api/v1/partner/analysis-config"
NOT_FOUND = {"success": False, "message": "Call not found"}


@pytest.fixture
def gateway_settings(gateway_settings: GatewaySettings) -> GatewaySettings:
    return gateway_settings.model_copy(update={"retention_purge_interval_s": 0.3})


@pytest.fixture
async def busy_partner(database_url: str) -> PartnerCreds:
    return await create_partner(database_url, rate_limit=5000)


@pytest.fixture
async def producer(infra: Infra, gateway_settings: GatewaySettings) -> AsyncIterator[AIOKafkaProducer]:
    await ensure_topics(infra.kafka_bootstrap, [TopicSpec(gateway_settings.topic(t), 3) for t in READ_MODEL_TOPICS])
    p = make_producer(infra.kafka_bootstrap, "test")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "gateway"})
    yield conn
    await conn.close()


async def publish(producer: AIOKafkaProducer, settings: GatewaySettings, *events: Any) -> None:
    for event in events:
        await producer.send_and_wait(settings.topic(TOPICS[type(event)]), dump_event(event), key=event.key())


async def ingest(client: httpx.AsyncClient, partner: PartnerCreds, *items: dict[str, Any], **tenancy: str) -> None:
    headers = {**partner.headers(**tenancy), "content-type": "application/json"}
    response = await client.post(INGEST, content=orjson.dumps({"data": list(items)}), headers=headers)
    assert response.status_code == 200, response.text
    assert all(c["status"] == "accepted" for c in response.json()["data"]["calls"])


async def ingested_events(infra: Infra, settings: GatewaySettings, count: int) -> dict[str, CallIngested]:
    """The gateway's own calls.ingested.v1 events (with their configuration snapshots), by call id."""
    records = await consume(infra.kafka_bootstrap, settings.topic(TOPIC_INGESTED), count)
    events = [parse_event(r.value) for r in records]
    return {e.call_id: e for e in events if isinstance(e, CallIngested)}


async def status_of(client: httpx.AsyncClient, partner: PartnerCreds, call_id: str, **tenancy: Any) -> httpx.Response:
    return await client.get(f"{CALLS}/{call_id}", headers=partner.headers(**tenancy))


async def until_status(client: httpx.AsyncClient, partner: PartnerCreds, call_id: str, status: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        response = await status_of(client, partner, call_id)
        data = response.json().get("data") if response.status_code == 200 else None
        return data if data and data["status"] == status else None

    data = await wait_until(probe, timeout=60)
    assert data is not None, (await status_of(client, partner, call_id)).text
    return data


async def dashboard_row(db: asyncpg.Connection, partner: PartnerCreds, call_id: str) -> asyncpg.Record | None:
    return await db.fetchrow(
        "SELECT * FROM dashboard_calls WHERE partner_id = $1 AND call_id = $2", partner.partner_id, call_id
    )


async def rows_of(db: asyncpg.Connection, partner: PartnerCreds, call_id: str) -> dict[str, int]:
    counts = {}
    for table in ("call_status", "callback_attempts", "dashboard_calls"):
        counts[table] = await db.fetchval(
            f"SELECT count(*) FROM {table} WHERE partner_id = $1 AND call_id = $2",  # noqa: S608 - test constant
            partner.partner_id,
            call_id,
        )
    counts["outbox_dead"] = await db.fetchval(
        "SELECT count(*) FROM outbox_dead WHERE key = $1", f"{partner.partner_id}/{call_id}"
    )
    return counts


async def erasure_of(
    client: httpx.AsyncClient, partner: PartnerCreds, erasure_id: str, **tenancy: Any
) -> httpx.Response:
    return await client.get(f"{ERASURES}/{erasure_id}", headers=partner.headers(**tenancy))


# -- erasing one call ---------------------------------------------------------------------------


async def test_erasing_a_call_removes_it_everywhere_and_late_events_do_not_bring_it_back(
    client: httpx.AsyncClient,
    busy_partner: PartnerCreds,
    producer: AIOKafkaProducer,
    gateway_settings: GatewaySettings,
    infra: Infra,
    db: asyncpg.Connection,
) -> None:
    partner = busy_partner
    item = call_item()
    call_id = item["call"]["id"]
    await ingest(client, partner, item)
    call = (await ingested_events(infra, gateway_settings, 1))[call_id]
    await publish(
        producer,
        gateway_settings,
        fetched(call, call.occurred_at),
        delivery(call, call.occurred_at, "failed", number=1, status_code=500),
    )
    await publish(producer, gateway_settings, analyzed(call, call.occurred_at))
    await until_status(client, partner, call_id, "completed")
    assert await wait_until(lambda: dashboard_row(db, partner, call_id))
    await db.execute(
        "INSERT INTO outbox_dead (topic, key, payload, error, queued_at) VALUES ('x', $1, '\\x00', 'test', now())",
        f"{partner.partner_id}/{call_id}",
    )

    response = await client.delete(f"{CALLS}/{call_id}", headers=partner.headers())
    assert response.status_code == 202, response.text
    body = response.json()
    assert body == {"success": True, "erasure_id": body["erasure_id"], "status": "pending", "calls": 1}
    erasure_id = body["erasure_id"]

    # Gone at once from every gateway table, the status API and the list.
    assert await rows_of(db, partner, call_id) == {
        "call_status": 0,
        "callback_attempts": 0,
        "dashboard_calls": 0,
        "outbox_dead": 0,
    }
    assert (await status_of(client, partner, call_id)).json() == NOT_FOUND
    listed = (await client.get(CALLS, headers=partner.headers())).json()["data"]["calls"]
    assert call_id not in [c["call_id"] for c in listed]
    redeliver = await client.post(f"{CALLS}/{call_id}/callback/redeliver", headers=partner.headers())
    assert redeliver.status_code == 404

    # The audit row: who (a key prefix, no secret), what (the call id), no customer data.
    audit = await db.fetchrow("SELECT * FROM erasures WHERE erasure_id = $1", uuid.UUID(erasure_id))
    assert audit["scope"] == "call" and audit["calls"] == 1
    selector = audit["selector"] if isinstance(audit["selector"], dict) else orjson.loads(audit["selector"])
    assert selector == {"call_id": call_id}
    assert partner.api_secret not in audit["requested_by"]
    assert partner.api_key[:10] in audit["requested_by"]
    ledger = await db.fetchrow(
        "SELECT customer_key, contact_key FROM calls WHERE partner_id = $1 AND call_id = $2",
        partner.partner_id,
        call_id,
    )
    assert ledger is not None and ledger["customer_key"] is None and ledger["contact_key"] is None

    # One calls.erased.v1, through the outbox.
    records = await consume(infra.kafka_bootstrap, gateway_settings.topic(TOPIC_ERASED), 1)
    erased = parse_event(records[0].value)
    assert isinstance(erased, CallErased) and erased.call_id == call_id
    assert str(erased.payload.erasure_id) == erasure_id

    # Erasing again answers the same erasure; re-submitting the id answers duplicate.
    again = await client.delete(f"{CALLS}/{call_id}", headers=partner.headers())
    assert again.status_code == 202 and again.json()["erasure_id"] == erasure_id
    resubmit = await client.post(
        INGEST,
        content=orjson.dumps({"data": [item]}),
        headers={**partner.headers(), "content-type": "application/json"},
    )
    assert resubmit.json()["data"]["calls"] == [{"id": call_id, "status": "duplicate"}]

    # The gateway confirms once its read model consumed the erasure; then the other three.
    async def gateway_confirmed() -> dict[str, Any] | None:
        view = (await erasure_of(client, partner, erasure_id)).json()["erasure"]
        return view if view["services"]["gateway"]["confirmed"] == 1 else None

    view = await wait_until(gateway_confirmed, timeout=30)
    assert view is not None
    assert view["status"] == "pending" and view["scope"] == "call" and view["calls"] == 1
    assert view["services"]["fetcher"] == {"confirmed": 0, "of": 1}

    # Late events (replays, a racing analysis): nothing comes back, in the status or the dashboard.
    await publish(
        producer,
        gateway_settings,
        call,
        fetched(call, call.occurred_at),
        analyzed(call, call.occurred_at),
        delivery(call, call.occurred_at, "delivered", number=2, status_code=200),
    )
    for service in ("fetcher", "analyzer", "notifier"):
        await publish(producer, gateway_settings, confirmation(erased, service, {"rows": 1}))  # type: ignore[arg-type]
    # A redelivered confirmation counts once.
    await publish(producer, gateway_settings, confirmation(erased, "analyzer", {"rows": 1}))

    async def completed() -> dict[str, Any] | None:
        view = (await erasure_of(client, partner, erasure_id)).json()["erasure"]
        return view if view["status"] == "completed" else None

    view = await wait_until(completed, timeout=30)
    assert view is not None, (await erasure_of(client, partner, erasure_id)).text
    assert view["completed_at"] is not None
    assert view["services"] == {s: {"confirmed": 1, "of": 1} for s in ("gateway", "fetcher", "analyzer", "notifier")}
    # The late events were published before the confirmations, on the same partitions' topics;
    # give the projectors a moment more and check nothing was written.
    await asyncio.sleep(1.0)
    assert await rows_of(db, partner, call_id) == {
        "call_status": 0,
        "callback_attempts": 0,
        "dashboard_calls": 0,
        "outbox_dead": 0,
    }
    assert (await status_of(client, partner, call_id)).status_code == 404


async def test_erasing_a_call_outside_the_scope_answers_404(
    client: httpx.AsyncClient, busy_partner: PartnerCreds, database_url: str, db: asyncpg.Connection
) -> None:
    partner = busy_partner
    item = call_item()
    call_id = item["call"]["id"]
    await ingest(client, partner, item)
    other = await create_partner(database_url)

    for response in (
        await client.delete(f"{CALLS}/unknown-{uuid.uuid4().hex}", headers=partner.headers()),
        await client.delete(f"{CALLS}/{call_id}", headers=partner.headers(tenant="tenant2")),
        await client.delete(f"{CALLS}/{call_id}", headers=partner.headers(subtenant="subtenant2")),
        await client.delete(f"{CALLS}/{call_id}", headers=other.headers()),
    ):
        assert response.status_code == 404
        assert response.json() == NOT_FOUND
    missing_tenant = await client.delete(f"{CALLS}/{call_id}", headers=partner.headers(tenant=None))
    assert missing_tenant.status_code == 400
    forbidden = await client.delete(f"{CALLS}/{call_id}", headers={"x-tenant-id": "tenant1"})
    assert forbidden.status_code == 403
    assert await db.fetchval("SELECT count(*) FROM erasures WHERE partner_id = $1", partner.partner_id) == 0
    # The tenant-wide view (no subtenant header) may erase it.
    response = await client.delete(f"{CALLS}/{call_id}", headers=partner.headers(subtenant=None))
    assert response.status_code == 202
    erasure_id = response.json()["erasure_id"]
    assert (await erasure_of(client, partner, erasure_id, tenant="tenant2")).status_code == 404
    assert (await erasure_of(client, other, erasure_id)).json() == {"success": False, "message": "Erasure not found"}
    assert (await erasure_of(client, partner, "not-a-uuid")).status_code == 404
    assert (await erasure_of(client, partner, erasure_id)).status_code == 200


# -- erasing a customer -------------------------------------------------------------------------


async def test_erasing_a_customer_erases_calls_matching_either_identifier_and_keeps_no_clear_value(
    client: httpx.AsyncClient, busy_partner: PartnerCreds, db: asyncpg.Connection
) -> None:
    partner = busy_partner
    by_id = call_item(customer__id="cust-erase-1", call__contact_number="+15550000001")
    by_number = call_item(customer__id="cust-other-2", call__contact_number="+15550000009")
    both = call_item(customer__id="cust-erase-1", call__contact_number="+15550000009")
    unrelated = call_item(customer__id="cust-keep-3", call__contact_number="+15550000003")
    other_subtenant = call_item(customer__id="cust-erase-1", call__contact_number="+15550000004")
    await ingest(client, partner, by_id, by_number, both, unrelated)
    await ingest(client, partner, other_subtenant, subtenant="subtenant2")

    headers = {**partner.headers(), "content-type": "application/json"}
    # Only subtenant1's calls: the subtenant header narrows the erasure like it narrows reads.
    body = {"customer_id": "cust-erase-1", "contact_number": "+1 (555) 000-0009"}
    response = await client.post(ERASURES, content=orjson.dumps(body), headers=headers)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["calls"] == 3 and accepted["status"] == "pending"
    erased = {
        r["call_id"]
        for r in await db.fetch(
            "SELECT call_id FROM erased_calls WHERE erasure_id = $1", uuid.UUID(accepted["erasure_id"])
        )
    }
    assert erased == {by_id["call"]["id"], by_number["call"]["id"], both["call"]["id"]}
    for kept in (unrelated, other_subtenant):
        assert (await status_of(client, partner, kept["call"]["id"], subtenant=None)).status_code == 200

    audit = await db.fetchrow("SELECT * FROM erasures WHERE erasure_id = $1", uuid.UUID(accepted["erasure_id"]))
    text = orjson.dumps(dict(audit), default=str).decode()
    for clear in ("cust-erase-1", "5550000009", "+1 (555) 000-0009"):
        assert clear not in text
    assert audit["scope"] == "customer" and audit["subtenant_id"] == "subtenant1"
    selector = audit["selector"] if isinstance(audit["selector"], dict) else orjson.loads(audit["selector"])
    assert set(selector) == {"customer_key", "contact_key"}

    view = (await erasure_of(client, partner, accepted["erasure_id"])).json()["erasure"]
    assert view["scope"] == "customer" and view["calls"] == 3

    # Again: nothing left to erase under those keys: 0 calls, completed at once.
    again = await client.post(ERASURES, content=orjson.dumps(body), headers=headers)
    assert again.status_code == 202
    assert again.json()["calls"] == 0 and again.json()["status"] == "completed"
    # Tenant-wide (no subtenant header): the other subtenant's call goes too.
    tenant_wide = await client.post(
        ERASURES,
        content=orjson.dumps({"customer_id": "cust-erase-1"}),
        headers={**partner.headers(subtenant=None), "content-type": "application/json"},
    )
    assert tenant_wide.json()["calls"] == 1
    assert (await status_of(client, partner, other_subtenant["call"]["id"], subtenant=None)).status_code == 404


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            b"",
            [
                {"field": "customer_id", "message": "customer_id should not be empty (or give contact_number)"},
                {"field": "contact_number", "message": "contact_number should not be empty (or give customer_id)"},
            ],
        ),
        (
            b"{}",
            [
                {"field": "customer_id", "message": "customer_id should not be empty (or give contact_number)"},
                {"field": "contact_number", "message": "contact_number should not be empty (or give customer_id)"},
            ],
        ),
        (b'{"customer_id": "  "}', [{"field": "customer_id", "message": "customer_id should not be empty"}]),
        (
            b'{"contact_number": "call me"}',
            [{"field": "contact_number", "message": "contact_number must hold a phone number"}],
        ),
        (b'{"customer_id": 5}', [{"field": "customer_id", "message": "customer_id must be a string"}]),
        (b'{"customer_id": "a", "email": "x"}', [{"field": "email", "message": "email should not exist"}]),
    ],
)
async def test_customer_erasure_validation(
    client: httpx.AsyncClient, partner: PartnerCreds, body: bytes, errors: list[dict[str, str]]
) -> None:
    response = await client.post(
        ERASURES, content=body, headers={**partner.headers(), "content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json() == {"success": False, "message": "Validation failed", "errors": errors}


async def test_customer_erasure_malformed_json_and_media_type(client: httpx.AsyncClient, partner: PartnerCreds) -> None:
    bad = await client.post(ERASURES, content=b"{", headers={**partner.headers(), "content-type": "application/json"})
    assert bad.status_code == 400
    assert bad.json() == {"success": False, "message": "Malformed JSON body"}
    text = await client.post(ERASURES, content=b"{}", headers={**partner.headers(), "content-type": "text/plain"})
    assert text.status_code == 415


# -- retention ----------------------------------------------------------------------------------


async def test_retention_purges_the_transcript_then_the_results(
    client: httpx.AsyncClient,
    busy_partner: PartnerCreds,
    producer: AIOKafkaProducer,
    gateway_settings: GatewaySettings,
    infra: Infra,
    db: asyncpg.Connection,
) -> None:
    partner = busy_partner
    headers = {**partner.headers(), "content-type": "application/json"}
    config = {"data_protection": {"retention": {"transcript_days": 0.00002, "results_days": None}}}
    put = await client.put(CONFIG, params={"scope": "subtenant"}, content=orjson.dumps(config), headers=headers)
    assert put.status_code == 200, put.text
    assert put.json()["data"]["effective"]["data_protection"]["retention"] == {
        "recording_days": 30.0,
        "transcript_days": 0.00002,
        "results_days": None,
    }
    item = call_item(callback_url="https://partner.example.com/cb")
    call_id = item["call"]["id"]
    await ingest(client, partner, item)
    call = (await ingested_events(infra, gateway_settings, 1))[call_id]
    snapshot = call.payload.analysis_config
    assert snapshot is not None and snapshot.config.data_protection.retention.transcript_days == 0.00002

    await publish(producer, gateway_settings, analyzed(call, call.occurred_at))
    await publish(producer, gateway_settings, delivery(call, call.occurred_at, "delivered", number=1, status_code=200))

    async def purged() -> dict[str, Any] | None:
        response = await status_of(client, partner, call_id)
        data = response.json().get("data") if response.status_code == 200 else None
        if data and data["data_protection"]["retention"]["transcript"]["purged_at"]:
            return data
        return None

    data = await wait_until(purged, timeout=30)
    assert data is not None, (await status_of(client, partner, call_id)).text
    retention = data["data_protection"]["retention"]
    assert retention["results"] == {"expires_at": None, "purged_at": None}
    assert retention["recording"]["expires_at"] is not None and retention["recording"]["purged_at"] is None
    assert retention["transcript"]["expires_at"] is not None
    result = data["result"]
    assert "transcript" not in result
    # Key order kept: the callback's fields, then the additive ones.
    assert list(result)[:3] == ["call_id", "intent", "intent_justification"]
    assert list(result)[-2:] == ["engines", "config_id"]
    # A replayed analysis does not bring the transcript back.
    await publish(producer, gateway_settings, analyzed(call, call.occurred_at))
    await asyncio.sleep(1.0)
    again = (await status_of(client, partner, call_id)).json()["data"]
    assert "transcript" not in again["result"]
    redeliver = await client.post(f"{CALLS}/{call_id}/callback/redeliver", headers=partner.headers())
    assert redeliver.status_code == 409
    assert "purged" in redeliver.json()["message"]

    # Results expiry: the result goes, the status API still answers.
    await db.execute(
        "UPDATE call_status SET results_expires_at = now() - interval '1 second'"
        " WHERE partner_id = $1 AND call_id = $2",
        partner.partner_id,
        call_id,
    )

    async def results_purged() -> dict[str, Any] | None:
        data = (await status_of(client, partner, call_id)).json()["data"]
        return data if data["data_protection"]["retention"]["results"]["purged_at"] else None

    data = await wait_until(results_purged, timeout=30)
    assert data is not None
    assert data["status"] == "completed" and data["result"] is None
    row = await dashboard_row(db, partner, call_id)
    if row is not None:
        assert row["details"] is None and row["results_purged_at"] is not None


async def test_data_protection_configuration_validation(client: httpx.AsyncClient, partner: PartnerCreds) -> None:
    headers = {**partner.headers(), "content-type": "application/json"}
    body = {
        "data_protection": {
            "retention": {"recording_days": -1, "transcript_days": "soon"},
            "redaction": {"entities": ["ssn"], "patterns": [{"name": "acct", "regex": "(["}]},
        }
    }
    response = await client.put(CONFIG, params={"scope": "tenant"}, content=orjson.dumps(body), headers=headers)
    assert response.status_code == 422
    assert response.json() == {
        "success": False,
        "message": "Validation failed",
        "errors": [
            {"field": "data_protection.retention.recording_days", "message": "recording_days must be greater than 0"},
            {"field": "data_protection.retention.transcript_days", "message": "transcript_days must be a number"},
            {
                "field": "data_protection.redaction.entities[0]",
                "message": "entities[0] must be one of: card_number, phone_number, email",
            },
            {
                "field": "data_protection.redaction.patterns[0].regex",
                "message": response.json()["errors"][3]["message"],
            },
        ],
    }
    assert response.json()["errors"][3]["message"].startswith("regex must be a valid regular expression")

    # Tenant sets redaction and one period; the subtenant overrides another; each key inherits.
    tenant = {"data_protection": {"retention": {"recording_days": 7}, "redaction": {"enabled": True}}}
    sub = {"data_protection": {"retention": {"transcript_days": None}}}
    assert (
        await client.put(CONFIG, params={"scope": "tenant"}, content=orjson.dumps(tenant), headers=headers)
    ).status_code == 200
    response = await client.put(CONFIG, params={"scope": "subtenant"}, content=orjson.dumps(sub), headers=headers)
    effective = response.json()["data"]["effective"]["data_protection"]
    assert effective["retention"] == {"recording_days": 7.0, "transcript_days": None, "results_days": 365.0}
    assert effective["redaction"]["enabled"] is True
    assert response.json()["data"]["source"] == "subtenant"
    got = await client.get(CONFIG, headers=partner.headers())
    assert got.json()["data"]["effective"]["data_protection"] == effective
    other_sub = await client.get(CONFIG, headers=partner.headers(subtenant="subtenant2"))
    assert other_sub.json()["data"]["effective"]["data_protection"]["retention"]["transcript_days"] == 365.0

    # A null redaction setting (or a null section) is inherited, like a field left out.
    nulls = {
        "data_protection": {
            "redaction": {"enabled": None, "entities": None, "patterns": None, "redact_audio": False},
            "retention": None,
        }
    }
    response = await client.put(CONFIG, params={"scope": "subtenant"}, content=orjson.dumps(nulls), headers=headers)
    assert response.status_code == 200, response.text
    effective = response.json()["data"]["effective"]["data_protection"]
    assert effective["redaction"]["enabled"] is True and effective["redaction"]["redact_audio"] is False
    assert effective["retention"]["recording_days"] == 7.0

    # true and "30" are not numbers of days.
    for value in (True, "30"):
        body = {"data_protection": {"retention": {"recording_days": value}}}
        response = await client.put(CONFIG, params={"scope": "tenant"}, content=orjson.dumps(body), headers=headers)
        assert response.status_code == 422, (value, response.text)
        assert response.json()["errors"] == [
            {"field": "data_protection.retention.recording_days", "message": "recording_days must be a number"}
        ]
