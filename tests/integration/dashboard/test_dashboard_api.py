"""The dashboard over HTTP, in the real gateway app (lifespan, PostgreSQL, Kafka): the token API
with ingestion's headers, rate limit and errors; the single-use exchange for a session cookie;
embedding rules; CSRF on redeliver; and tenant, subtenant and agent isolation of data, audio and
aggregates. Data is folded by the read model's and the projector's own handlers."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from schemas.events import TOPIC_CALLBACK_COMMANDS, CallbackRedeliverRequested, parse_event
from services.common.blobs import FilesystemBlobStore
from services.common.db import create_pool
from services.gateway import read_model
from services.gateway.config import GatewaySettings
from services.gateway.dashboard import projector
from services.gateway.dashboard.repository import DashboardRepository
from services.gateway.repository import GatewayRepository
from tests.support.gateway import PartnerCreds, create_partner, running_gateway
from tests.support.infra import Infra
from tests.support.kafka import consume
from tests.support.status_events import analyzed, at, delivery, fetched, ingested

TOKEN = "/api/v1/partner/dashboard/auth/token"
COOKIE = "callpipe_dashboard"
DAY = {"from": "2023-01-01", "to": "2023-01-01"}  # the factories' calls start 2023-01-01


@pytest.fixture
def blob_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "blobs"
    monkeypatch.setenv("BLOB_ROOT", str(root))
    return root


@pytest.fixture
async def gateway(
    gateway_settings: GatewaySettings, blob_root: Path
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    # No consumers: these tests fold events themselves, and must not race a projector.
    settings = gateway_settings.model_copy(update={"read_model_enabled": False})
    async with running_gateway(settings) as running:
        yield running


@pytest.fixture
async def repos(database_url: str) -> AsyncIterator[tuple[GatewayRepository, DashboardRepository]]:
    pool = await create_pool(SecretStr(database_url), "gateway", min_size=1, max_size=4)
    yield GatewayRepository(pool), DashboardRepository(pool)
    await pool.close()


@pytest.fixture
async def busy(database_url: str) -> PartnerCreds:
    return await create_partner(database_url, rate_limit=5000)


async def fold(repos: tuple[GatewayRepository, DashboardRepository], *events: Any) -> None:
    status, dash = repos
    for event in events:
        await read_model.project(event, status)
        await projector.project(event, dash)


async def token(
    client: httpx.AsyncClient, p: PartnerCreds, tenant: str = "tenant1", sub: str = "subtenant1", **query: str
) -> str:
    response = await client.get(TOKEN, headers=p.headers(tenant, sub), params=query)
    assert response.status_code == 200, response.text
    value: str = response.json()["data"]["token"]
    return value


async def session(client: httpx.AsyncClient, value: str, **headers: str) -> str:
    """Exchange a token; returns the session cookie's value."""
    response = await client.get("/dashboard", params={"token": value}, headers=headers)
    assert response.status_code == 303, response.text
    cookie = response.headers["set-cookie"]
    return cookie.split(";", 1)[0].split("=", 1)[1]


def as_session(sid: str, **extra: str) -> dict[str, str]:
    return {"cookie": f"{COOKIE}={sid}", **extra}


async def get(client: httpx.AsyncClient, sid: str, path: str, **params: Any) -> httpx.Response:
    return await client.get(f"/dashboard/api{path}", params=params, headers=as_session(sid))


# -- the token API -----------------------------------------------------------------------------


async def test_token_api_has_ingestions_headers_errors_and_rate_limit(
    gateway: tuple[FastAPI, httpx.AsyncClient], database_url: str
) -> None:
    _, client = gateway
    p = await create_partner(database_url, rate_limit=3)
    cases = [
        ({}, 403, {"success": False, "message": "Forbidden"}),
        ({**p.headers(), "x-api-secret": "cs_wrong"}, 403, {"success": False, "message": "Forbidden"}),
        (p.headers(None, None), 400, {"success": False, "message": "Tenant ID is required"}),
        (p.headers("tenant1", None), 400, {"success": False, "message": "Subtenant ID is required"}),
    ]
    for headers, status, body in cases:
        response = await client.get(TOKEN, headers=headers)
        assert (response.status_code, response.json()) == (status, body)
    bad = await client.get(TOKEN, headers=p.headers(), params={"read_only": "maybe", "agent_id": " "})
    assert bad.status_code == 422
    assert bad.json() == {
        "success": False,
        "message": "Validation failed",
        "errors": [
            {"field": "agent_id", "message": "agent_id should not be empty"},
            {"field": "read_only", "message": "read_only must be true or false"},
        ],
    }
    limited = await client.get(TOKEN, headers=p.headers())
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json() == {"success": False, "message": "Rate limit exceeded. Try again in 60 seconds."}


async def test_a_token_works_once_for_a_session_whose_cookie_follows_its_lifetime(
    gateway: tuple[FastAPI, httpx.AsyncClient], busy: PartnerCreds
) -> None:
    _, client = gateway
    issued = (await client.get(TOKEN, headers=busy.headers(), params={"read_only": "true"})).json()["data"]
    assert issued["url"].endswith(f"/dashboard?token={issued['token']}") and issued["read_only"] is True
    assert issued["token"].startswith("dt_") and issued["redeem_by"] < issued["expires_at"]
    first = await client.get("/dashboard", params={"token": issued["token"]})
    assert first.status_code == 303 and first.headers["location"] == "/dashboard/app#/overview"
    cookie = first.headers["set-cookie"]
    attributes = {a.strip().split("=")[0] for a in cookie.split(";")[1:]}
    assert attributes == {"Path", "Max-Age", "HttpOnly", "Secure", "SameSite", "Partitioned"}
    assert "SameSite=None" in cookie and "Path=/dashboard" in cookie
    max_age = int(cookie.split("Max-Age=")[1].split(";")[0])
    assert 86000 < max_age <= 86400  # the session ends when the token's 24 hours do
    assert first.headers["referrer-policy"] == "no-referrer"  # the token URL never leaks onwards
    sid = cookie.split(";", 1)[0].split("=", 1)[1]

    again = await client.get("/dashboard", params={"token": issued["token"]})
    assert again.status_code == 401 and "no longer valid" in again.text
    # The browser that holds the session it was exchanged for (a reload of the host page) is let in.
    reload = await client.get("/dashboard", params={"token": issued["token"]}, headers=as_session(sid))
    assert reload.status_code == 303 and "set-cookie" not in reload.headers

    me = (await get(client, sid, "/session")).json()["data"]
    assert (me["tenant_id"], me["subtenant_id"], me["agent_id"], me["read_only"]) == (
        "tenant1",
        "subtenant1",
        None,
        True,
    )
    assert len(me["csrf_token"]) > 30
    shell = await client.get("/dashboard/app", headers=as_session(sid))
    assert shell.status_code == 200 and '<script src="/dashboard/static/app.js"' in shell.text
    csp = shell.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert "<script>" not in shell.text and " style=" not in shell.text
    assert (await client.get("/dashboard/app")).status_code == 401
    assert (await client.get("/dashboard/api/session")).status_code == 401
    # One character changed (never to itself: a session id may well start with "x").
    forged = await client.get("/dashboard/api/session", headers=as_session(("y" if sid[0] == "x" else "x") + sid[1:]))
    assert forged.status_code == 401


async def test_an_unredeemed_token_expires(
    gateway_settings: GatewaySettings, blob_root: Path, busy: PartnerCreds
) -> None:
    settings = gateway_settings.model_copy(update={"read_model_enabled": False, "dashboard_token_redeem_s": 0.5})
    async with running_gateway(settings) as (_, client):
        value = await token(client, busy)
        await asyncio.sleep(1.0)
        response = await client.get("/dashboard", params={"token": value})
    assert response.status_code == 401


async def test_embedding_only_from_the_partners_allowed_origins(
    gateway: tuple[FastAPI, httpx.AsyncClient], busy: PartnerCreds, repos: tuple[GatewayRepository, DashboardRepository]
) -> None:
    _, client = gateway
    await repos[1].allow_origin(busy.partner_id, "https://crm.example.com")
    value = await token(client, busy)
    framed = {"sec-fetch-dest": "iframe"}
    refused = await client.get(
        "/dashboard", params={"token": value}, headers={**framed, "referer": "https://evil.example.net/page"}
    )
    assert refused.status_code == 403 and "not allowed to embed" in refused.text
    assert refused.headers["content-security-policy"].endswith("frame-ancestors https://evil.example.net")
    # The refused attempt did not spend the token: the allowed origin can still use it.
    sid = await session(client, value, **framed, referer="https://crm.example.com/deals/7")
    shell = await client.get("/dashboard/app", headers=as_session(sid, **framed, referer="https://crm.example.com/"))
    assert shell.status_code == 200
    assert shell.headers["content-security-policy"].endswith("frame-ancestors https://crm.example.com")
    assert (await get(client, sid, "/session")).json()["data"]["embed_origin"] == "https://crm.example.com"
    elsewhere = await client.get(
        "/dashboard/app", headers=as_session(sid, **framed, referer="https://evil.example.net/")
    )
    assert elsewhere.status_code == 403


async def test_revoking_ends_every_session_and_voids_unspent_tokens(
    gateway: tuple[FastAPI, httpx.AsyncClient], busy: PartnerCreds
) -> None:
    _, client = gateway
    sid = await session(client, await token(client, busy))
    unspent = await token(client, busy, "tenant2", "sub9")
    assert (await get(client, sid, "/session")).status_code == 200
    revoked = await client.post("/api/v1/partner/dashboard/sessions/revoke", headers=busy.headers(None, None))
    assert revoked.json() == {"success": True, "data": {"sessions_ended": 1, "tokens_voided": 1}}
    assert (await get(client, sid, "/session")).status_code == 401
    assert (await client.get("/dashboard", params={"token": unspent})).status_code == 401


# -- redeliver: CSRF, read-only, through the gateway's redelivery handler and outbox ---------


async def test_redeliver_needs_the_sessions_csrf_token_and_same_origin(
    gateway: tuple[FastAPI, httpx.AsyncClient],
    busy: PartnerCreds,
    repos: tuple[GatewayRepository, DashboardRepository],
    gateway_settings: GatewaySettings,
    infra: Infra,
) -> None:
    _, client = gateway
    call = ingested(busy.partner_id)
    await fold(repos, call, analyzed(call, at(5)), delivery(call, at(6), "delivered", number=1, status_code=200))
    sid = await session(client, await token(client, busy))
    csrf = (await get(client, sid, "/session")).json()["data"]["csrf_token"]
    path = f"/dashboard/api/calls/{call.call_id}/redeliver"
    own = "http://gateway"
    for headers in (
        as_session(sid),  # no token: what a cross-site form post looks like
        as_session(sid, **{"x-csrf-token": "nope", "origin": own}),
        as_session(sid, **{"x-csrf-token": csrf, "origin": "https://evil.example.net"}),
        as_session(sid, **{"x-csrf-token": csrf, "origin": "null"}),
    ):
        refused = await client.post(path, headers=headers)
        assert (refused.status_code, refused.json()) == (
            403,
            {"success": False, "message": "Cross-site request refused"},
        )
    accepted = await client.post(path, headers=as_session(sid, **{"x-csrf-token": csrf, "origin": own}))
    assert accepted.status_code == 202, accepted.text
    command_id = accepted.json()["data"]["command_id"]
    [record] = await consume(infra.kafka_bootstrap, gateway_settings.topic(TOPIC_CALLBACK_COMMANDS), 1, linger=1)
    command = parse_event(record.value)
    assert isinstance(command, CallbackRedeliverRequested) and str(command.event_id) == command_id
    assert command.call_id == call.call_id and command.payload.requested_by == f"partner:{busy.partner_id} dashboard"

    read_only = await session(client, await token(client, busy, read_only="true"))
    csrf = (await get(client, read_only, "/session")).json()["data"]["csrf_token"]
    response = await client.post(path, headers=as_session(read_only, **{"x-csrf-token": csrf, "origin": own}))
    assert (response.status_code, response.json()["message"]) == (403, "This dashboard session is read-only")


# -- isolation ---------------------------------------------------------------------------------


async def test_no_session_sees_another_tenants_subtenants_or_agents_data_audio_or_aggregates(
    gateway: tuple[FastAPI, httpx.AsyncClient],
    busy: PartnerCreds,
    database_url: str,
    repos: tuple[GatewayRepository, DashboardRepository],
    blob_root: Path,
    tmp_path: Path,
) -> None:
    _, client = gateway
    other = await create_partner(database_url, rate_limit=5000)
    store = FilesystemBlobStore(blob_root)
    audio_bytes = os.urandom(5000)
    source = tmp_path / "recording.wav"
    source.write_bytes(audio_bytes)
    digest = hashlib.sha256(audio_bytes).hexdigest()
    blob = await store.put_file(source, digest, len(audio_bytes))

    def call_in(partner: PartnerCreds, tenant: str, sub: str, agent: str) -> Any:
        return ingested(
            partner.partner_id,
            f"{tenant}-{sub}-{agent}-{uuid.uuid4().hex[:6]}",
            tenant=tenant,
            subtenant=sub,
            agent__id=agent,
        )

    mine = [call_in(busy, "tenant1", "subtenant1", "ann"), call_in(busy, "tenant1", "subtenant1", "bob")]
    others = [
        call_in(busy, "tenant1", "subtenant2", "ann"),
        call_in(busy, "tenant2", "subtenant1", "ann"),
        call_in(other, "tenant1", "subtenant1", "ann"),
    ]
    for call in mine + others:
        got = fetched(call, at(2)).model_copy()
        got = got.model_copy(update={"payload": got.payload.model_copy(update={"blob_uri": blob.uri})})
        await fold(repos, call, got, analyzed(call, at(10)))

    sid = await session(client, await token(client, busy))
    listed = (await get(client, sid, "/calls", **DAY)).json()["data"]["calls"]
    assert sorted(c["call_id"] for c in listed) == sorted(c.call_id for c in mine)
    assert (await get(client, sid, "/overview", **DAY)).json()["data"]["totals"]["calls"] == 2
    agents = (await get(client, sid, "/agents", **DAY)).json()["data"]
    assert sorted(a["agent_id"] for a in agents["agents"]) == ["ann", "bob"] and agents["team"]["agents"] == 2
    csv = await client.get("/dashboard/api/export.csv", params=DAY, headers=as_session(sid))
    assert csv.status_code == 200 and len(csv.text.strip().splitlines()) == 3
    for call in others:
        for suffix in ("", "/audio"):
            response = await get(client, sid, f"/calls/{call.call_id}{suffix}")
            assert response.status_code == 404, (call.call_id, suffix)
    ranged = await client.get(
        f"/dashboard/api/calls/{mine[0].call_id}/audio", headers=as_session(sid, range="bytes=100-199")
    )
    assert ranged.status_code == 206 and ranged.content == audio_bytes[100:200]
    assert ranged.headers["content-range"] == f"bytes 100-199/{len(audio_bytes)}"
    assert ranged.headers["content-type"] == "audio/mpeg"  # the factory says mp3

    ann = await session(client, await token(client, busy, agent_id="ann"))
    listed = (await get(client, ann, "/calls", **DAY)).json()["data"]["calls"]
    assert [c["call_id"] for c in listed] == [mine[0].call_id]
    asked_for_bob = (await get(client, ann, "/calls", agent="bob", **DAY)).json()["data"]["calls"]
    assert asked_for_bob == []
    assert (await get(client, ann, "/overview", **DAY)).json()["data"]["totals"]["calls"] == 1
    assert (await get(client, ann, "/overview", agent="bob", **DAY)).json()["data"]["totals"]["calls"] == 0
    agents = (await get(client, ann, "/agents", **DAY)).json()["data"]
    assert [a["agent_id"] for a in agents["agents"]] == ["ann"] and agents["team"] is None
    assert all(p["team_average"] is None for p in agents["agents"][0]["weakest"])
    assert [a["id"] for a in (await get(client, ann, "/session")).json()["data"]["agents"]] == ["ann"]
    for suffix in ("", "/audio"):
        assert (await get(client, ann, f"/calls/{mine[1].call_id}{suffix}")).status_code == 404
    assert (await get(client, ann, f"/calls/{mine[0].call_id}/audio")).status_code == 200

    # A recording gone from the store answers 404 in the error shape, never a 500.
    gone = call_in(busy, "tenant1", "subtenant1", "ann")
    got = fetched(gone, at(2))
    missing = (blob_root / "sha256" / "00" / "00" / ("0" * 64)).as_uri()
    got = got.model_copy(update={"payload": got.payload.model_copy(update={"blob_uri": missing})})
    await fold(repos, gone, got)
    response = await get(client, sid, f"/calls/{gone.call_id}/audio")
    assert (response.status_code, response.json()) == (404, {"success": False, "message": "Recording not found"})


async def test_bad_filters_answer_every_error(gateway: tuple[FastAPI, httpx.AsyncClient], busy: PartnerCreds) -> None:
    _, client = gateway
    sid = await session(client, await token(client, busy))
    response = await get(
        client,
        sid,
        "/calls",
        **{"from": "2023-13-01", "intent": "MAYBE", "score_band": "9", "sort": "x", "cursor": "!"},
    )
    assert response.status_code == 422
    fields = [e["field"] for e in response.json()["errors"]]
    assert fields == ["from", "intent", "score_band", "sort", "cursor"]


async def test_sessions_and_tokens_a_day_past_their_end_are_purged(
    repos: tuple[GatewayRepository, DashboardRepository],
) -> None:
    dash = repos[1]
    pool = dash._pool
    partner_id = f"ptn_{uuid.uuid4().hex[:10]}"
    for days, name in ((-2, b"old"), (1, b"live")):
        await pool.execute(
            "INSERT INTO dashboard_sessions (session_sha256, partner_id, tenant_id, subtenant_id, read_only,"
            " csrf_token, expires_at) VALUES ($1, $2, 't', 's', false, 'x', now() + make_interval(days => $3))",
            hashlib.sha256(name + partner_id.encode()).digest(),
            partner_id,
            days,
        )
        await pool.execute(
            "INSERT INTO dashboard_tokens (token_sha256, partner_id, tenant_id, subtenant_id, redeem_by, expires_at)"
            " VALUES ($1, $2, 't', 's', now(), now() + make_interval(days => $3))",
            hashlib.sha256(name + partner_id.encode()).digest(),
            partner_id,
            days,
        )
    await dash.purge_expired()
    for table in ("dashboard_sessions", "dashboard_tokens"):
        left = await pool.fetchval(f"SELECT count(*) FROM {table} WHERE partner_id = $1", partner_id)  # noqa: S608
        assert left == 1, table
