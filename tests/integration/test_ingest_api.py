"""``POST /api/v1/partner/ingest/batch-call`` against real PostgreSQL and Kafka: every response
of the spec, idempotency, and the events that reach ``calls.ingested.v1``."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import asyncpg
import httpx
import jsonschema
import orjson
import pytest
from pydantic import SecretStr

from schemas.events import CallIngested, parse_event
from services.gateway.config import GatewaySettings
from tests.factories import batch, call_item
from tests.support.gateway import INGEST, PartnerCreds, create_partner, running_gateway
from tests.support.infra import Infra
from tests.support.kafka import consume

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "json" / "calls.ingested.v1.json").read_text())


async def post(
    client: httpx.AsyncClient, partner: PartnerCreds, body: object, **header_overrides: str | None
) -> httpx.Response:
    headers = {**partner.headers(), "content-type": "application/json"}
    for name, value in header_overrides.items():
        key = name.replace("_", "-")
        if value is None:
            headers.pop(key, None)
        else:
            headers[key] = value
    return await client.post(INGEST, content=orjson.dumps(body), headers=headers)


# -- 200 and the event ------------------------------------------------------------------------


async def test_spec_example_is_accepted_and_its_event_reaches_kafka(
    client: httpx.AsyncClient, partner: PartnerCreds, gateway_settings: GatewaySettings, infra: Infra
) -> None:
    body = {"data": [call_item("call123")]}
    response = await post(client, partner, body)
    assert response.status_code == 200
    assert response.json() == {"success": True, "data": {"calls": [{"id": "call123", "status": "accepted"}]}}
    assert response.headers["content-type"] == "application/json"

    records = await consume(infra.kafka_bootstrap, gateway_settings.topic("calls.ingested.v1"), 1, linger=1.0)
    assert len(records) == 1
    record = records[0]
    assert record.key == f"{partner.partner_id}/call123".encode()
    value = json.loads(record.value)
    jsonschema.validate(value, SCHEMA)
    event = parse_event(record.value)
    assert isinstance(event, CallIngested)
    assert (event.partner_id, event.tenant_id, event.subtenant_id, event.call_id) == (
        partner.partner_id,
        "tenant1",
        "subtenant1",
        "call123",
    )
    item = body["data"][0]
    assert event.payload.call.recording_url == item["call"]["recording_url"]
    assert event.payload.agent.model_dump() == item["agent"]
    assert event.payload.customer.model_dump() == item["customer"]
    assert event.payload.callback_url == item["callback_url"]
    assert event.payload.metadata == item["metadata"]
    assert event.payload.extra == {"industry": "Technology", "function": "Sales"}


async def test_a_full_batch_of_fifty_calls_yields_fifty_events(
    client: httpx.AsyncClient, partner: PartnerCreds, gateway_settings: GatewaySettings, infra: Infra
) -> None:
    body = batch(50)
    response = await post(client, partner, body)
    assert response.status_code == 200
    assert [c["status"] for c in response.json()["data"]["calls"]] == ["accepted"] * 50
    records = await consume(infra.kafka_bootstrap, gateway_settings.topic("calls.ingested.v1"), 50, linger=1.0)
    assert sorted(parse_event(r.value).call_id for r in records) == sorted(i["call"]["id"] for i in body["data"])


# -- 403 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["no key", "no secret", "unknown key", "wrong secret", "both empty"])
async def test_bad_credentials_are_forbidden(client: httpx.AsyncClient, partner: PartnerCreds, case: str) -> None:
    overrides: dict[str, str | None] = {
        "no key": {"x_api_key": None},
        "no secret": {"x_api_secret": None},
        "unknown key": {"x_api_key": "ck_doesnotexist"},
        "wrong secret": {"x_api_secret": partner.api_secret + "x"},
        "both empty": {"x_api_key": "", "x_api_secret": ""},
    }[case]
    response = await post(client, partner, batch(), **overrides)
    assert response.status_code == 403
    assert response.json() == {"success": False, "message": "Forbidden"}


async def test_auth_is_checked_before_tenancy_and_body(client: httpx.AsyncClient, partner: PartnerCreds) -> None:
    response = await post(client, partner, {"data": []}, x_api_secret="wrong", x_tenant_id=None)
    assert response.status_code == 403


async def test_revoked_credentials_are_forbidden(
    client: httpx.AsyncClient, partner: PartnerCreds, database_url: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE gateway.api_credentials SET revoked_at = now() WHERE api_key = $1", partner.api_key)
    finally:
        await conn.close()
    response = await post(client, partner, batch())
    assert response.status_code == 403


# -- 400 ----------------------------------------------------------------------------------------


async def test_missing_tenant_id(client: httpx.AsyncClient, partner: PartnerCreds) -> None:
    response = await post(client, partner, batch(), x_tenant_id=None)
    assert response.status_code == 400
    assert response.json() == {"success": False, "message": "Tenant ID is required"}


async def test_missing_subtenant_id(client: httpx.AsyncClient, partner: PartnerCreds) -> None:
    response = await post(client, partner, batch(), x_sub_tenant_id=None)
    assert response.status_code == 400
    assert response.json() == {"success": False, "message": "Subtenant ID is required"}


async def test_malformed_json(client: httpx.AsyncClient, partner: PartnerCreds) -> None:
    response = await client.post(
        INGEST, content=b'{"data": [', headers={**partner.headers(), "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"success": False, "message": "Malformed JSON body"}


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_wrong_content_type(client: httpx.AsyncClient, partner: PartnerCreds, content_type: str | None) -> None:
    headers = partner.headers()
    if content_type:
        headers["content-type"] = content_type
    response = await client.post(INGEST, content=orjson.dumps(batch()), headers=headers)
    assert response.status_code == 415
    assert response.json() == {"success": False, "message": "Content-Type must be application/json"}


async def test_json_with_charset_is_accepted(client: httpx.AsyncClient, partner: PartnerCreds) -> None:
    response = await post(client, partner, batch(), content_type="application/json; charset=utf-8")
    assert response.status_code == 200


# -- 422 ----------------------------------------------------------------------------------------


async def test_validation_reports_every_error_with_its_path(client: httpx.AsyncClient, partner: PartnerCreds) -> None:
    first, second = call_item(), call_item()
    first["call"]["id"] = ""
    first["call"]["contact_number"] = "12345"
    second["metadata"] = {str(i): i for i in range(6)}
    second["customer"]["email"] = "not-an-email"
    response = await post(client, partner, {"data": [first, second]})
    assert response.status_code == 422
    assert response.json() == {
        "success": False,
        "message": "Validation failed",
        "errors": [
            {"field": "data[0].call.id", "message": "id should not be empty"},
            {
                "field": "data[0].call.contact_number",
                "message": "contact_number must be a phone number in E.164 format (e.g. +1234567890)",
            },
            {"field": "data[1].customer.email", "message": "email must be an email"},
            {"field": "data[1].metadata", "message": "metadata must contain no more than 5 keys"},
        ],
    }


async def test_one_invalid_call_rejects_the_whole_batch(
    client: httpx.AsyncClient, partner: PartnerCreds, database_url: str
) -> None:
    good, bad = call_item(), call_item(callback_url="http://insecure.example.com/cb")
    response = await post(client, partner, {"data": [good, bad]})
    assert response.status_code == 422
    conn = await asyncpg.connect(database_url)
    try:
        count = await conn.fetchval("SELECT count(*) FROM gateway.calls WHERE partner_id = $1", partner.partner_id)
    finally:
        await conn.close()
    assert count == 0
    # ... and the good call is still new afterwards
    response = await post(client, partner, {"data": [good]})
    assert response.json()["data"]["calls"] == [{"id": good["call"]["id"], "status": "accepted"}]


# -- 413 ----------------------------------------------------------------------------------------


def _oversized_body() -> bytes:
    item = call_item(metadata={"blob": "x" * (5 * 1024 * 1024)})
    return orjson.dumps({"data": [item]})


async def test_body_over_5mb_is_refused_by_content_length(client: httpx.AsyncClient, partner: PartnerCreds) -> None:
    response = await client.post(
        INGEST, content=_oversized_body(), headers={**partner.headers(), "content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json() == {"success": False, "message": "Request payload exceeds the 5MB limit"}


async def test_streamed_body_over_5mb_is_refused_while_reading(
    client: httpx.AsyncClient, partner: PartnerCreds
) -> None:
    body = _oversized_body()
    sent = 0

    async def chunks():  # no Content-Length: the gateway must count
        nonlocal sent
        for i in range(0, len(body), 64 * 1024):
            sent += 1
            yield body[i : i + 64 * 1024]

    response = await client.post(
        INGEST, content=chunks(), headers={**partner.headers(), "content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["success"] is False


async def test_body_of_exactly_the_limit_is_parsed(client: httpx.AsyncClient, partner: PartnerCreds) -> None:
    response = await client.post(
        INGEST,
        content=b" " * (5 * 1024 * 1024 - 2) + b"{}",
        headers={**partner.headers(), "content-type": "application/json"},
    )
    assert response.status_code == 422  # parsed (and empty), not refused for size


# -- 429 ----------------------------------------------------------------------------------------


async def test_rate_limit_per_partner(client: httpx.AsyncClient, database_url: str) -> None:
    limited = await create_partner(database_url, rate_limit=3)
    other = await create_partner(database_url, rate_limit=3)
    statuses = [(await post(client, limited, batch())).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    response = await post(client, limited, batch())
    assert response.status_code == 429
    assert response.json() == {"success": False, "message": "Rate limit exceeded. Try again in 60 seconds."}
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    # another partner is not affected
    assert (await post(client, other, batch())).status_code == 200


async def test_default_rate_limit_applies_without_a_partner_setting(
    gateway_settings: GatewaySettings, database_url: str
) -> None:
    settings = gateway_settings.model_copy(update={"default_rate_limit_per_minute": 2})
    partner = await create_partner(database_url)
    async with running_gateway(settings) as (_, client):
        statuses = [(await post(client, partner, batch())).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


# -- idempotency ---------------------------------------------------------------------------------


async def test_resubmitted_call_is_a_duplicate_and_not_processed_again(
    client: httpx.AsyncClient, partner: PartnerCreds, gateway_settings: GatewaySettings, infra: Infra
) -> None:
    item = call_item()
    first = await post(client, partner, {"data": [item]})
    again = await post(client, partner, {"data": [item, call_item("fresh-one")]})
    assert first.json()["data"]["calls"] == [{"id": item["call"]["id"], "status": "accepted"}]
    assert again.status_code == 200
    assert again.json() == {
        "success": True,
        "data": {
            "calls": [{"id": item["call"]["id"], "status": "duplicate"}, {"id": "fresh-one", "status": "accepted"}]
        },
    }
    records = await consume(infra.kafka_bootstrap, gateway_settings.topic("calls.ingested.v1"), 2, linger=1.5)
    assert sorted(parse_event(r.value).call_id for r in records) == sorted([item["call"]["id"], "fresh-one"])


async def test_duplicate_inside_one_batch_is_processed_once(
    client: httpx.AsyncClient, partner: PartnerCreds, gateway_settings: GatewaySettings, infra: Infra
) -> None:
    item = call_item()
    response = await post(client, partner, {"data": [item, call_item(), item]})
    assert [c["status"] for c in response.json()["data"]["calls"]] == ["accepted", "accepted", "duplicate"]
    records = await consume(infra.kafka_bootstrap, gateway_settings.topic("calls.ingested.v1"), 2, linger=1.5)
    assert len(records) == 2


async def test_same_call_id_from_two_partners_is_two_calls(
    client: httpx.AsyncClient, partner: PartnerCreds, database_url: str
) -> None:
    other = await create_partner(database_url)
    item = call_item()
    assert (await post(client, partner, {"data": [item]})).json()["data"]["calls"][0]["status"] == "accepted"
    assert (await post(client, other, {"data": [item]})).json()["data"]["calls"][0]["status"] == "accepted"


async def test_ten_concurrent_identical_batches_yield_one_record_and_one_event_per_call(
    gateway_settings: GatewaySettings, database_url: str, infra: Infra
) -> None:
    partner = await create_partner(database_url, rate_limit=1000)
    body = batch(20)
    call_ids = sorted(i["call"]["id"] for i in body["data"])
    async with running_gateway(gateway_settings.model_copy(update={"db_pool_max_size": 10})) as (_, client):
        responses = await asyncio.gather(*(post(client, partner, body) for _ in range(10)))
    assert all(r.status_code == 200 for r in responses)
    accepted = [c["id"] for r in responses for c in r.json()["data"]["calls"] if c["status"] == "accepted"]
    assert sorted(accepted) == call_ids  # every call accepted exactly once across the 10 answers

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM gateway.calls WHERE partner_id = $1", partner.partner_id)
    finally:
        await conn.close()
    assert rows == 20
    records = await consume(infra.kafka_bootstrap, gateway_settings.topic("calls.ingested.v1"), 20, linger=2.0)
    assert sorted(parse_event(r.value).call_id for r in records) == call_ids


# -- 500 and what must never leak ---------------------------------------------------------------


async def test_unexpected_failure_is_a_bare_500(
    gateway_settings: GatewaySettings, isolated_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A real database error inside the request: the client sees only the spec's 500 body."""
    partner = await create_partner(isolated_database_url)
    conn = await asyncpg.connect(isolated_database_url)
    try:
        await conn.execute("""
            CREATE FUNCTION gateway.explode() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'internal detail: relation gateway.calls is on fire'; END $$;
            CREATE TRIGGER explode BEFORE INSERT ON gateway.calls FOR EACH ROW EXECUTE FUNCTION gateway.explode();
        """)
    finally:
        await conn.close()
    settings = gateway_settings.model_copy(update={"database_url": SecretStr(isolated_database_url)})
    with caplog.at_level(logging.INFO):
        async with running_gateway(settings) as (_, client):
            response = await post(client, partner, batch())
    assert response.status_code == 500
    assert response.json() == {"success": False, "message": "Internal server error"}
    assert "fire" not in response.text and "Traceback" not in response.text
    assert response.headers.get("x-request-id")
    # The failure is logged for operators, with the request id, and no credential is in any log line.
    assert any("unhandled error" in r.getMessage() for r in caplog.records)
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert partner.api_secret not in logged


async def test_unknown_route_and_method_use_the_error_shape(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/partner/nothing-here")
    assert missing.status_code == 404
    assert missing.json() == {"success": False, "message": "Not Found"}
    wrong_method = await client.get(INGEST)
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"success": False, "message": "Method Not Allowed"}


async def test_no_secret_appears_in_logs(
    client: httpx.AsyncClient, partner: PartnerCreds, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await post(client, partner, batch())
        await post(client, partner, batch(), x_api_secret=partner.api_secret + "-typo")
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "request" in logged
    assert partner.api_secret not in logged


# -- docs and health ----------------------------------------------------------------------------


async def test_openapi_documents_the_endpoint_and_its_errors(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"][INGEST]["post"]
    assert set(operation["responses"]) >= {"200", "400", "403", "413", "415", "422", "429", "500"}
    body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/BatchIn"}
    assert "CallItemIn" in spec["components"]["schemas"]
    assert (await client.get("/docs")).status_code == 200


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert (body["status"], body["checks"]) == ("ready", {"postgres": "ok", "kafka": "ok"})
    # What an operator should see of the outbox, without it deciding readiness.
    assert set(body["details"]["outbox"]) == {"pending_events", "set_aside", "last_error"}


async def test_revocation_applies_within_the_credential_cache_ttl(
    gateway_settings: GatewaySettings, database_url: str
) -> None:
    partner = await create_partner(database_url)
    settings = gateway_settings.model_copy(update={"credential_cache_ttl_s": 1.0})
    async with running_gateway(settings) as (_, client):
        assert (await post(client, partner, batch())).status_code == 200
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "UPDATE gateway.api_credentials SET revoked_at = now() WHERE api_key = $1", partner.api_key
            )
        finally:
            await conn.close()
        # a wrong secret is refused even while the credential is cached
        assert (await post(client, partner, batch(), x_api_secret="wrong")).status_code == 403
        await asyncio.sleep(1.2)
        assert (await post(client, partner, batch())).status_code == 403


async def test_unknown_and_known_keys_take_the_same_path(gateway_settings: GatewaySettings, database_url: str) -> None:
    """Whether a key exists must not show in the answer's timing: an unknown key and a known key
    with a wrong secret both cost one database lookup, then none while the cache remembers them
    (issue 10, defect 11: unknown keys used to be looked up on every request)."""
    partner = await create_partner(database_url)
    settings = gateway_settings.model_copy(update={"credential_cache_ttl_s": 60.0})
    async with running_gateway(settings) as (app, client):
        repo = app.state.gateway.repo
        lookups: list[str] = []
        original = repo.find_credential

        async def counted(api_key: str):  # type: ignore[no-untyped-def]
            lookups.append(api_key)
            return await original(api_key)

        repo.find_credential = counted
        unknown = "ck_" + "x" * 24
        for _ in range(5):
            assert (await post(client, partner, batch(), x_api_key=unknown)).status_code == 403
            assert (await post(client, partner, batch(), x_api_secret="cs_wrong")).status_code == 403
    assert sorted(lookups) == sorted([unknown, partner.api_key])


async def test_a_configuration_body_over_its_limit_says_that_limit(
    client: httpx.AsyncClient, partner: PartnerCreds
) -> None:
    body = orjson.dumps({"labels": ["x" * 90] * 3000})
    response = await client.put(
        "/api/v1/partner/analysis-config?scope=tenant",
        content=body,
        headers={**partner.headers(), "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json() == {"success": False, "message": "Request payload exceeds the 256KB limit"}
