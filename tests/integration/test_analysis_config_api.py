"""PUT/GET /api/v1/partner/analysis-config: per-tenant labels, rubric and channel map, with
subtenant overrides, versioned, validated, and copied into every ingested call's event."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from schemas.analysis import DEFAULT_CONFIG, AnalysisConfig
from schemas.events import CallIngested, parse_event
from services.gateway.config import GatewaySettings
from tests.factories import batch
from tests.support.gateway import INGEST, PartnerCreds, create_partner
from tests.support.infra import Infra
from tests.support.kafka import consume

CONFIG = "/api/v1/partner/analysis-config"
DEFAULT_EFFECTIVE = DEFAULT_CONFIG.model_dump(mode="json")
RUBRIC = [
    {"parameter_name": "Setting Context", "description": "State the purpose of the call.", "max_score": 10},
    {
        "parameter_name": "Compliance Disclosure",
        "description": "Say the call is recorded.",
        "max_score": 5,
        "is_fatal": True,
    },
]


async def get(
    client: httpx.AsyncClient, partner: PartnerCreds, tenant: str = "t1", subtenant: str = "s1"
) -> httpx.Response:
    return await client.get(CONFIG, headers=partner.headers(tenant, subtenant))


async def put(
    client: httpx.AsyncClient,
    partner: PartnerCreds,
    body: Any,
    scope: str | None = "tenant",
    tenant: str = "t1",
    subtenant: str = "s1",
) -> httpx.Response:
    params = {"scope": scope} if scope else {}
    headers = {**partner.headers(tenant, subtenant), "content-type": "application/json"}
    return await client.put(CONFIG, params=params, content=orjson.dumps(body), headers=headers)


async def test_defaults_apply_until_configured(client: httpx.AsyncClient, partner: PartnerCreds) -> None:
    response = await get(client, partner)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["source"] == "default"
    assert data["effective"] == DEFAULT_EFFECTIVE
    assert [p["parameter_name"] for p in data["effective"]["rubric"]] == [
        "Setting Context",
        "Needs Discovery",
        "Product Pitch",
        "Objection Handling",
        "Next Steps",
        "Professionalism",
    ]
    assert data["effective"]["labels"] == ["Needs", "Objection", "Objection Handling"]
    assert data["tenant"] is None and data["subtenant"] is None
    assert data["config_id"] == DEFAULT_CONFIG.config_id()


async def test_tenant_level_applies_to_every_subtenant_and_subtenant_overrides_by_field(
    client: httpx.AsyncClient, partner: PartnerCreds
) -> None:
    r = await put(client, partner, {"labels": ["Needs", "Budget"], "rubric": RUBRIC}, scope="tenant")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["tenant"]["version"] == 1
    for subtenant in ("s1", "s2"):
        data = (await get(client, partner, subtenant=subtenant)).json()["data"]
        assert data["source"] == "tenant"
        assert data["effective"]["labels"] == ["Needs", "Budget"]
        assert data["effective"]["rubric"][1] == {**RUBRIC[1]}

    r = await put(
        client,
        partner,
        {"labels": ["Timeline"], "channels": {"left": "customer", "right": "agent"}},
        scope="subtenant",
        subtenant="s2",
    )
    data = r.json()["data"]
    assert data["source"] == "subtenant"
    assert data["effective"]["labels"] == ["Timeline"]  # from the subtenant
    assert data["effective"]["rubric"][1]["parameter_name"] == "Compliance Disclosure"  # inherited from the tenant
    assert data["effective"]["channels"] == {"left": "customer", "right": "agent", "mono_first_speaker": None}
    assert data["subtenant"]["version"] == 1 and data["tenant"]["version"] == 1
    # s1 is untouched by s2's override
    assert (await get(client, partner, subtenant="s1")).json()["data"]["effective"]["labels"] == ["Needs", "Budget"]
    # another tenant of the same partner still has the defaults
    assert (await get(client, partner, tenant="t2")).json()["data"]["source"] == "default"


async def test_a_tenant_can_say_who_speaks_first_on_its_mono_recordings(
    client: httpx.AsyncClient, partner: PartnerCreds
) -> None:
    before = (await get(client, partner)).json()["data"]["config_id"]
    r = await put(client, partner, {"channels": {"mono_first_speaker": "customer"}}, scope="tenant")
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["effective"]["channels"] == {"left": "agent", "right": "customer", "mono_first_speaker": "customer"}
    assert data["config_id"] != before
    bad = await put(client, partner, {"channels": {"mono_first_speaker": "robot"}}, scope="tenant")
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "channels.mono_first_speaker"


async def test_every_change_is_a_new_version_and_an_empty_document_clears_the_level(
    client: httpx.AsyncClient, partner: PartnerCreds
) -> None:
    await put(client, partner, {"labels": ["A"]})
    second = (await put(client, partner, {"labels": ["B"]})).json()["data"]
    assert second["tenant"]["version"] == 2 and second["effective"]["labels"] == ["B"]
    cleared = (await put(client, partner, {})).json()["data"]
    assert cleared["tenant"]["version"] == 3
    assert cleared["source"] == "default" and cleared["effective"] == DEFAULT_EFFECTIVE


async def test_concurrent_writers_get_distinct_versions(client: httpx.AsyncClient, database_url: str) -> None:
    partner = await create_partner(database_url, rate_limit=1000)
    responses = await asyncio.gather(*(put(client, partner, {"labels": [f"L{i}"]}) for i in range(6)))
    assert all(r.status_code == 200 for r in responses)
    data = (await get(client, partner)).json()["data"]
    assert data["tenant"]["version"] == 6


async def test_configurations_are_private_to_their_partner(
    client: httpx.AsyncClient, partner: PartnerCreds, database_url: str
) -> None:
    await put(client, partner, {"labels": ["Secret label"]})
    other = await create_partner(database_url)
    data = (await get(client, other)).json()["data"]
    assert data["source"] == "default" and "Secret label" not in str(data)


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"labels": []}, [{"field": "labels", "message": "labels should not be empty"}]),
        ({"labels": ["ok", "  "]}, [{"field": "labels[1]", "message": "labels[1] should not be empty"}]),
        ({"labels": ["Needs", "needs"]}, [{"field": "labels", "message": "labels must not repeat the label 'needs'"}]),
        (
            {"rubric": [{"parameter_name": "X"}]},
            [{"field": "rubric[0].description", "message": "description should not be empty"}],
        ),
        (
            {"rubric": [{"parameter_name": "X", "description": "d", "max_score": 0}]},
            [{"field": "rubric[0].max_score", "message": "max_score must not be less than 1"}],
        ),
        (
            {"rubric": [{"parameter_name": "X", "description": "d", "max_score": "ten"}]},
            [{"field": "rubric[0].max_score", "message": "max_score must be an integer number"}],
        ),
        (
            {"rubric": [{"parameter_name": "X", "description": "d", "is_fatal": "yes"}]},
            [{"field": "rubric[0].is_fatal", "message": "is_fatal must be a boolean"}],
        ),
        (
            {"rubric": [{"parameter_name": "X", "description": "d"}, {"parameter_name": "x", "description": "e"}]},
            [{"field": "rubric", "message": "rubric must not repeat the parameter 'x'"}],
        ),
        (
            {"channels": {"left": "agent", "right": "agent"}},
            [{"field": "channels.right", "message": "right must map the two channels to different parties"}],
        ),
        (
            {"channels": {"left": "boss"}},
            [{"field": "channels.left", "message": "left must be one of: agent, customer"}],
        ),
        ({"colour": "blue"}, [{"field": "colour", "message": "colour should not exist"}]),
    ],
)
async def test_invalid_documents_get_every_error_with_its_path(
    client: httpx.AsyncClient, partner: PartnerCreds, body: dict[str, Any], errors: list[dict[str, str]]
) -> None:
    response = await put(client, partner, body)
    assert response.status_code == 422
    assert response.json() == {"success": False, "message": "Validation failed", "errors": errors}


@pytest.mark.parametrize(
    ("scope", "message"), [(None, "scope should not be empty"), ("everyone", "scope must be one of: tenant, subtenant")]
)
async def test_scope_is_required(
    client: httpx.AsyncClient, partner: PartnerCreds, scope: str | None, message: str
) -> None:
    response = await put(client, partner, {"labels": ["A"]}, scope=scope)
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "scope", "message": message}]


async def test_same_auth_and_tenancy_rules_as_ingestion(client: httpx.AsyncClient, partner: PartnerCreds) -> None:
    assert (await client.get(CONFIG)).json() == {"success": False, "message": "Forbidden"}
    no_tenant = await client.get(CONFIG, headers={"x-api-key": partner.api_key, "x-api-secret": partner.api_secret})
    assert no_tenant.status_code == 400 and no_tenant.json()["message"] == "Tenant ID is required"
    bad_json = await client.put(
        CONFIG,
        params={"scope": "tenant"},
        content=b"{",
        headers={**partner.headers(), "content-type": "application/json"},
    )
    assert bad_json.status_code == 400
    wrong_type = await client.put(CONFIG, params={"scope": "tenant"}, content=b"{}", headers=partner.headers())
    assert wrong_type.status_code == 415


async def test_the_effective_configuration_travels_in_the_ingested_event(
    client: httpx.AsyncClient, partner: PartnerCreds, gateway_settings: GatewaySettings, infra: Infra
) -> None:
    saved = (await put(client, partner, {"labels": ["Budget"], "rubric": RUBRIC})).json()["data"]
    response = await client.post(
        INGEST,
        content=orjson.dumps(batch(1)),
        headers={**partner.headers("t1", "s1"), "content-type": "application/json"},
    )
    assert response.status_code == 200
    [record] = await consume(infra.kafka_bootstrap, gateway_settings.topic("calls.ingested.v1"), 1)
    event = parse_event(record.value)
    assert isinstance(event, CallIngested)
    snapshot = event.payload.analysis_config
    assert snapshot is not None
    assert snapshot.source == "tenant"
    assert snapshot.config_id == saved["config_id"]
    assert snapshot.config == AnalysisConfig.model_validate(saved["effective"])
    assert snapshot.config.rubric[1].is_fatal is True


async def test_openapi_documents_the_configuration_endpoints(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert set(spec["paths"][CONFIG]) == {"get", "put"}
    assert "AnalysisConfigIn" in spec["components"]["schemas"]
