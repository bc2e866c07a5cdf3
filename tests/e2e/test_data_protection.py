"""Data protection end to end, as `make up` runs it: the four services as processes on real Kafka
and PostgreSQL, recordings from a local HTTP host, callbacks to a local HTTPS receiver.

- erasure by call and by customer removes every trace of the calls' personal data from every
  store (every table of every service's schema, the blob store), while a call of another customer
  keeps its data (so the scan is seen to find what is there);
- a call erased while its recording is still downloading ends without producing anything;
- retention purges the recording, the transcript and the results on the tenant's schedule, and
  the status API says so;
- the services' logs of the whole run hold none of the calls' personal data and no secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from services.gateway.config import GatewaySettings
from tests.factories import call_item
from tests.support import audio
from tests.support.gateway import INGEST, PartnerCreds, create_partner
from tests.support.pipeline import pipeline, signing_secret
from tests.support.receivers import Receiver, TestCa
from tests.support.recordings import RecordingHost

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not audio.tools_available(), reason="festival is not installed")]

CONFIG = "/api/v1/partner/analysis-config"
ERASURES = "/api/v1/partner/erasures"
SCHEMAS = ("gateway", "fetcher", "analyzer", "notifier")
# Tables where an erased call's id may stay: tombstones, the audit record, the ingestion ledger
# (ids only), and the outboxes that carried the erasure events themselves.
ID_ONLY_TABLES = {
    "erased_calls",
    "erasures",
    "erasure_calls",
    "erasure_confirmations",
    "calls",
    "outbox",
    "applied_commands",
}


class Person:
    """A customer with identifiers no other test uses (so a scan finding them is about this one)."""

    def __init__(self, label: str, contact_number: str | None = None) -> None:
        tag = uuid.uuid4().hex[:8]
        self.customer_id = f"cust-{label}-{tag}"
        self.name = f"Philippa Quennell{label.capitalize()}{tag}"
        self.email = f"philippa.{label}.{tag}@example.org"
        # Ten digits of their own: other tests' calls in the shared database have numbers too.
        digits = str(uuid.uuid4().int % 10**10).zfill(10)
        self.contact_number = contact_number or f"+1{digits}"

    def values(self) -> list[str]:
        """What must not survive an erasure, nor reach a log line."""
        return [self.customer_id, self.name, self.email, self.contact_number]

    def item(self, url: str, callback_url: str) -> dict[str, Any]:
        return call_item(
            call__recording_url=url,
            call__contact_number=self.contact_number,
            customer__id=self.customer_id,
            customer__name=self.name,
            customer__email=self.email,
            callback_url=callback_url,
            metadata={"note": f"for {self.name}"},
        )


def written_by_hand(number: str) -> str:
    """``+1NNNNNNNNNN`` as a person writes it, ``+1 (NNN) NNN-NNNN``: the same digits."""
    d = number[2:]
    return f"+1 ({d[:3]}) {d[3:6]}-{d[6:]}"


async def rows_containing(conn: asyncpg.Connection, needle: str) -> list[str]:
    """``schema.table`` of every row, in every service's schema, whose text holds ``needle``."""
    found = []
    for schema in SCHEMAS:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
            schema,
        )
        for (table,) in tables:
            # Identifiers from information_schema, quoted; the needle is a parameter.
            whole_row = f'SELECT count(*) FROM "{schema}"."{table}" t WHERE position($1 in row_to_json(t)::text) > 0'  # noqa: S608
            hits = await conn.fetchval(whole_row, needle)
            # bytea columns (callback bodies, outbox payloads) show as hex in JSON: searched as bytes.
            columns = await conn.fetch(
                "SELECT column_name, udt_name FROM information_schema.columns"
                " WHERE table_schema = $1 AND table_name = $2 AND udt_name IN ('bytea', '_bytea')",
                schema,
                table,
            )
            for column, udt in columns:
                needle_in = "position(convert_to($1, 'UTF8') in {}) > 0"
                match = (
                    needle_in.format(f't."{column}"')
                    if udt == "bytea"
                    else f't."{column}" IS NOT NULL AND EXISTS (SELECT 1 FROM unnest(t."{column}") v'  # noqa: S608
                    f" WHERE {needle_in.format('v')})"
                )
                query = f'SELECT count(*) FROM "{schema}"."{table}" t WHERE {match}'  # noqa: S608
                hits += await conn.fetchval(query, needle)
            if hits:
                found.append(f"{schema}.{table}")
    return found


async def wait_status(
    client: httpx.AsyncClient, call_id: str, headers: dict[str, str], done: Any, timeout: float = 240
) -> dict[str, Any]:
    async def poll() -> dict[str, Any]:
        while True:
            response = await client.get(f"/api/v1/partner/calls/{call_id}", headers=headers)
            if response.status_code == 200:
                data: dict[str, Any] = response.json()["data"]
                if done(data):
                    return data
            await asyncio.sleep(0.5)

    return await asyncio.wait_for(poll(), timeout)


def delivered(data: dict[str, Any]) -> bool:
    return data["status"] == "completed" and (data["callback"] or {}).get("state") == "delivered"


async def wait_erasure(client: httpx.AsyncClient, erasure_id: str, headers: dict[str, str]) -> dict[str, Any]:
    async def poll() -> dict[str, Any]:
        while True:
            response = await client.get(f"{ERASURES}/{erasure_id}", headers=headers)
            assert response.status_code == 200, response.text
            erasure: dict[str, Any] = response.json()["erasure"]
            if erasure["status"] == "completed":
                return erasure
            await asyncio.sleep(0.5)

    return await asyncio.wait_for(poll(), 90)


def blob_path(blob_root: Path, body: bytes) -> Path | None:
    """The stored blob of a recording, wherever the store put it under ``blob_root``."""
    sha = hashlib.sha256(body).hexdigest()
    matches = [p for p in blob_root.rglob(f"*{sha}*") if p.is_file()]
    return matches[0] if matches else None


async def put_config(client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]) -> None:
    response = await client.put(f"{CONFIG}?scope=tenant", content=orjson.dumps(body), headers=headers)
    assert response.status_code == 200, response.text


async def test_erasure_and_retention_leave_nothing_behind_and_logs_hold_no_personal_data(
    gateway_settings: GatewaySettings,
    database_url: str,
    host: RecordingHost,
    rx: Receiver,
    tls: TestCa,
    tmp_path: Path,
) -> None:
    partner: PartnerCreds = await create_partner(database_url)
    headers = {**partner.headers("tenant-dp", "sub-dp"), "content-type": "application/json"}
    retention_headers = {**partner.headers("tenant-ret", "sub-ret"), "content-type": "application/json"}

    alice, bob, carol, dave, erin, rita = (Person(n) for n in ("alice", "bob", "carol", "dave", "erin", "rita"))
    # Carol shares Bob's phone line under another customer id: an erasure by Bob's id OR number
    # takes her call too (a data-subject request must not miss a call).
    carol.contact_number = bob.contact_number
    scripts = dict(zip(("alice", "bob", "carol", "dave", "rita"), audio.SCRIPTS, strict=False))
    recordings: dict[str, bytes] = {}
    items: dict[str, dict[str, Any]] = {}
    for label, person in (("alice", alice), ("bob", bob), ("carol", carol), ("dave", dave), ("rita", rita)):
        recordings[label] = audio.encode(audio.render_conversation(audio.SCRIPTS[scripts[label]], stereo=True), "mp3")
        url = host.add(f"{label}.mp3", recordings[label], "audio/mpeg")
        items[label] = person.item(url, rx.url(label))
    # Erin's recording stalls mid-download: she is erased while the fetcher holds it.
    recordings["erin"] = audio.encode(audio.render_conversation(audio.SCRIPTS["no_agenda"], stereo=True), "mp3")
    items["erin"] = erin.item(host.add("stall-mid-erin.mp3", recordings["erin"], "audio/mpeg"), rx.url("erin"))
    host.stall_s = 8.0

    blob_root = tmp_path / "blobs"
    fast_purge = {name: {"RETENTION_PURGE_INTERVAL_S": "1"} for name in ("gateway", "fetcher", "analyzer", "notifier")}
    with pipeline(
        gateway_settings, tmp_path / "logs", blob_root=blob_root, ca_bundle=tls.write_bundle(tmp_path), extra=fast_purge
    ) as running:
        async with httpx.AsyncClient(base_url=running.gateway_url, timeout=30) as client:
            # Rita's tenant keeps recordings ~104 s, transcripts ~121 s and results ~138 s. Her call
            # goes first, alone, so it is analysed well before its recording goes, however loaded
            # the machine (a recording purged before its analysis would fail the call instead).
            retention = {"recording_days": 0.0012, "transcript_days": 0.0014, "results_days": 0.0016}
            await put_config(client, retention_headers, {"data_protection": {"retention": retention}})
            response = await client.post(
                INGEST, content=orjson.dumps({"data": [items["rita"]]}), headers=retention_headers
            )
            assert response.status_code == 200, response.text
            ids = {label: item["call"]["id"] for label, item in items.items()}
            rita_done = await wait_status(client, ids["rita"], retention_headers, lambda d: d["status"] == "completed")
            assert rita_done["data_protection"]["retention"]["recording"]["expires_at"]
            assert rita_done["data_protection"]["retention"]["recording"]["purged_at"] is None
            assert rita_done["result"]["transcript"]
            body = {"data": [items[n] for n in ("alice", "bob", "carol", "dave")]}
            response = await client.post(INGEST, content=orjson.dumps(body), headers=headers)
            assert response.status_code == 200, response.text
            response = await client.post(INGEST, content=orjson.dumps({"data": [items["erin"]]}), headers=headers)
            assert response.status_code == 200, response.text

            # Erin: erased while her recording is half downloaded.
            await asyncio.wait_for(host.started.wait(), 60)
            erin_id = items["erin"]["call"]["id"]
            response = await client.delete(f"/api/v1/partner/calls/{erin_id}", headers=headers)
            assert response.status_code == 202, response.text
            erin_erasure = response.json()["erasure_id"]

            for label in ("alice", "bob", "carol", "dave"):
                await wait_status(client, ids[label], headers, delivered)

            # Erasure by call, then by customer.
            response = await client.delete(f"/api/v1/partner/calls/{ids['alice']}", headers=headers)
            assert response.status_code == 202, response.text
            assert response.json()["calls"] == 1
            by_call = response.json()["erasure_id"]
            response = await client.post(
                ERASURES,
                content=orjson.dumps(
                    {"customer_id": bob.customer_id, "contact_number": written_by_hand(bob.contact_number)}
                ),
                headers=headers,
            )
            assert response.status_code == 202, response.text
            assert response.json()["calls"] == 2  # Bob's and Carol's
            by_customer = response.json()["erasure_id"]

            for erasure_id in (by_call, by_customer, erin_erasure):
                erasure = await wait_erasure(client, erasure_id, headers)
                assert all(s["confirmed"] == s["of"] for s in erasure["services"].values()), erasure
                assert set(erasure["services"]) == set(SCHEMAS)
            for label in ("alice", "bob", "carol", "erin"):
                response = await client.get(f"/api/v1/partner/calls/{ids[label]}", headers=headers)
                assert response.status_code == 404, (label, response.text)
            listed = await client.get("/api/v1/partner/calls", params={"limit": 200}, headers=headers)
            assert {c["call_id"] for c in listed.json()["data"]["calls"]} == {ids["dave"]}

            # Retention: Rita's call loses its recording, then its transcript, then its results.
            def purged(data: dict[str, Any]) -> bool:
                parts = data["data_protection"]["retention"]
                return all(parts[p]["purged_at"] for p in ("recording", "transcript", "results"))

            rita_status = await wait_status(client, ids["rita"], retention_headers, purged, timeout=180)
            assert rita_status["status"] == "completed" and rita_status["result"] is None
            # Wait out one more purge interval of every service, then let Erin's stall end.
            await asyncio.sleep(3)
            await asyncio.sleep(max(0.0, host.stall_s - 3))
            assert not rx.hits("erin"), "an erased call sent a callback"
        api_secret = partner.api_secret
        logs = {p.name: p.read_text(errors="replace") for p in (tmp_path / "logs").glob("*.log")}

    # Every store: nothing of the erased customers, and Dave (not erased) is still found.
    conn = await asyncpg.connect(database_url)
    try:
        for person in (alice, bob, carol, erin):
            for value in person.values():
                assert await rows_containing(conn, value) == [], (value, "survived the erasure")
        for label in ("alice", "bob", "carol", "erin"):
            tables = await rows_containing(conn, ids[label])
            assert set(t.split(".")[1] for t in tables) <= ID_ONLY_TABLES, (label, tables)
        assert await rows_containing(conn, dave.name), "the scan finds nothing at all: it proves nothing"
        # Rita's results, transcript and callback body are gone; her status row stays.
        for value in (rita.email, rita.name):
            assert await rows_containing(conn, value) == [], (value, "outlived the retention")
        audit = await conn.fetchrow("SELECT * FROM gateway.erasures WHERE erasure_id = $1", uuid.UUID(by_customer))
        assert audit is not None and audit["calls"] == 2 and audit["scope"] == "customer"
        assert bob.customer_id not in orjson.dumps(dict(audit), default=str).decode()
    finally:
        await conn.close()
    for label in ("alice", "bob", "carol", "erin", "rita"):
        assert blob_path(blob_root, recordings[label]) is None, f"{label}'s recording is still stored"
    assert blob_path(blob_root, recordings["dave"]) is not None

    # The logs of the whole run: no personal data, no secret.
    secrets = [api_secret, signing_secret(database_url, partner.partner_id)]
    for name, text in logs.items():
        assert text, name
        for person in (alice, bob, carol, dave, erin, rita):
            for value in person.values():
                assert value not in text, (name, "logs personal data")
        for secret in secrets:
            assert secret not in text, (name, "logs a secret")
