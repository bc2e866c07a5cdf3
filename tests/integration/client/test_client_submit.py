"""submit_calls against the real gateway: outcomes per call, batching by count and size,
server rejections attributed to their items, lost answers settled by looking, not resending."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from callpipe_client import AsyncClient, Journal
from callpipe_client.bulk import reconcile
from callpipe_client.journal import load

from services.gateway.config import GatewaySettings
from tests.factories import call_item
from tests.integration.client.conftest import Wire, ledger, recording_transport
from tests.support.gateway import INGEST, PartnerCreds, create_partner, running_gateway


async def test_every_call_gets_its_outcome(
    api: AsyncClient, client: httpx.AsyncClient, partner: PartnerCreds, wire: Wire, database_url: str
) -> None:
    known = call_item()
    answer = await client.post(
        INGEST,
        content=orjson.dumps({"data": [known]}),
        headers={**partner.headers(), "content-type": "application/json"},
    )
    assert answer.json()["data"]["calls"][0]["status"] == "accepted"

    items: list[Any] = [call_item(tier=i) for i in range(110)]
    items[5] = call_item(call__contact_number="555-1234")
    items[17] = call_item(agent=None)
    items[40] = items[3]  # the input repeats a call
    items[60] = known  # the API has it already
    report = await api.submit_calls(items, max_batch_calls=20, concurrency=3)

    outcomes = [r.outcome for r in report.results]
    assert len(outcomes) == 110 and [r.index for r in report.results] == list(range(110))
    assert report.counts == {"accepted": 106, "duplicate": 2, "rejected": 2, "skipped": 0}
    assert report.results[5].source == "local"
    assert [(e.field, e.message) for e in report.results[5].errors] == [
        ("call.contact_number", "contact_number must be a phone number in E.164 format (e.g. +1234567890)")
    ]
    assert [(e.field, e.message) for e in report.results[17].errors] == [("agent", "agent should not be empty")]
    assert (report.results[40].outcome, report.results[40].source) == ("duplicate", "input")
    assert (report.results[60].outcome, report.results[60].source) == ("duplicate", "server")
    # 107 sent (106 new + the known one), in batches of at most 20.
    assert report.requests == 6 and wire.count("POST", "batch-call") == 6
    assert sorted(await ledger(database_url, partner.partner_id)) == sorted(
        {known["call"]["id"], *(i["call"]["id"] for n, i in enumerate(items) if n not in (5, 17))}
    )


async def test_the_gateways_own_refusals_reject_only_the_items_they_name(
    api: AsyncClient, partner: PartnerCreds, wire: Wire, database_url: str
) -> None:
    items = [call_item() for _ in range(10)]
    items[2]["callback_url"] = "http://insecure.example.com/hook"
    items[7]["call"]["end_time"] = "2022-12-31T00:00:00Z"
    report = await api.submit_calls(items, validate=False)  # as if the server had a rule the client lacks
    assert report.counts["accepted"] == 8
    assert [(r.index, r.source, [(e.field, e.message) for e in r.errors]) for r in report.rejected] == [
        (2, "server", [("callback_url", "callback_url must be a URL starting with https://")]),
        (7, "server", [("call.end_time", "end_time must be after start_time")]),
    ]
    assert [s for _, _, s, _ in wire.requests] == [422, 200]  # the 8 others went again, once
    assert len(await ledger(database_url, partner.partner_id)) == 8


async def test_a_smaller_body_limit_splits_batches_and_rejects_a_call_too_big_alone(
    gateway_settings: GatewaySettings, partner: PartnerCreds, database_url: str
) -> None:
    settings = gateway_settings.model_copy(update={"max_body_bytes": 20_000})
    items = [call_item(notes="n" * 600) for _ in range(60)]
    items[33] = call_item(notes="x" * 25_000)
    wire = Wire()
    async with running_gateway(settings) as (app, _):
        transport = recording_transport(app, wire)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            client = AsyncClient(
                base_url="http://gateway",
                api_key=partner.api_key,
                api_secret=partner.api_secret,
                tenant_id="tenant1",
                subtenant_id="subtenant1",
                http_client=http,
            )
            report = await client.submit_calls(items)
    assert report.counts == {"accepted": 59, "duplicate": 0, "rejected": 1, "skipped": 0}
    [too_big] = report.rejected
    assert too_big.index == 33 and too_big.errors[0].message == "Request payload exceeds the 20000 bytes limit"
    assert 413 in {s for _, _, s, _ in wire.requests}
    assert sorted(wire.ingest_ids(200)) == sorted(i["call"]["id"] for n, i in enumerate(items) if n != 33)
    assert len(await ledger(database_url, partner.partner_id)) == 59


async def test_a_lost_answer_is_settled_by_looking(
    api: AsyncClient, client: httpx.AsyncClient, partner: PartnerCreds, wire: Wire
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    recorded = [call_item() for _ in range(50)]
    await client.post(
        INGEST,
        content=orjson.dumps({"data": recorded}),
        headers={**partner.headers(), "content-type": "application/json"},
    )
    ids = [i["call"]["id"] for i in recorded]

    assert await reconcile(api, ids, before) is True
    assert wire.count("GET") == 2  # two of its calls, received together after it left
    assert await reconcile(api, [call_item()["call"]["id"], *ids], before) is False
    # Calls that were there before the batch left prove nothing; a missing one settles it.
    after = datetime.now(UTC) + timedelta(seconds=1)
    assert await reconcile(api, [*ids[:3], "never-sent"], after) is False
    # Without the server's clock, every call is looked at.
    wire.requests.clear()
    assert await reconcile(api, ids, None) is True
    assert wire.count("GET") == 50


async def test_a_resumed_run_does_not_resend_what_an_interrupted_one_got_recorded(
    api: AsyncClient, client: httpx.AsyncClient, partner: PartnerCreds, wire: Wire, database_url: str, tmp_path: Path
) -> None:
    items = [call_item() for _ in range(130)]
    journal_path = tmp_path / "calls.journal"
    # An earlier run: its first batch answered and journaled; its second sent and recorded,
    # but the process died before the answer reached the journal; its third never left.
    first, second = items[:50], items[50:100]
    target = {
        "base_url": "http://gateway",
        "tenant_id": "tenant1",
        "subtenant_id": "subtenant1",
        "api_key": partner.api_key[:10],
    }
    with Journal(journal_path) as journal:
        journal.open(target, "old")
        journal.sent("old-1", [i["call"]["id"] for i in first], None)
        await client.post(
            INGEST,
            content=orjson.dumps({"data": first}),
            headers={**partner.headers(), "content-type": "application/json"},
        )
        journal.outcomes("old-1", [i["call"]["id"] for i in first], [])
        journal.sent("old-2", [i["call"]["id"] for i in second], datetime.now(UTC) - timedelta(seconds=1))
        await client.post(
            INGEST,
            content=orjson.dumps({"data": second}),
            headers={**partner.headers(), "content-type": "application/json"},
        )
        journal.sent("old-3", [i["call"]["id"] for i in items[100:]], datetime.now(UTC))

    report = await api.submit_calls(items, journal=journal_path)
    assert report.counts == {"accepted": 30, "duplicate": 0, "rejected": 0, "skipped": 100}
    assert sum(r.recovered for r in report.results) == 50  # the second batch, found recorded
    assert report.reconciled_batches == 2
    assert sorted(wire.ingest_ids()) == sorted(i["call"]["id"] for i in items[100:])  # nothing else sent
    assert len(await ledger(database_url, partner.partner_id)) == 130
    again = await api.submit_calls(items, journal=journal_path)
    assert again.counts["skipped"] == 130 and again.requests == 0


async def test_a_graceful_stop_leaves_nothing_open(
    make_client: Callable[..., AsyncClient], database_url: str, wire: Wire, tmp_path: Path
) -> None:
    limited = await create_partner(database_url, rate_limit=30)
    api = make_client(limited)
    items = [call_item() for _ in range(50 * 40)]
    stop = asyncio.Event()

    def on_result(_: Any) -> None:
        if not stop.is_set():
            asyncio.get_running_loop().call_later(0.5, stop.set)

    journal = tmp_path / "j"
    report = await api.submit_calls(items, journal=journal, on_result=on_result, stop=stop)
    assert report.interrupted and 0 < report.counts["accepted"] < len(items)
    state = load(journal)
    assert state.open == {}  # waiting on the rate limit was abandoned, never half-sent
    assert len(state.done) == report.counts["accepted"] == len(await ledger(database_url, limited.partner_id))
    await api.aclose()


async def test_a_call_the_gateway_finds_too_big_is_the_only_one_rejected(
    api: AsyncClient, partner: PartnerCreds, wire: Wire, database_url: str
) -> None:
    # Under the client's own bound (the item alone), over the gateway's (the call's whole event).
    items = [call_item() for _ in range(5)]
    items[3]["transcript_notes"] = "n" * (1024 * 1024 - 2000)
    items[1]["nested"] = {"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}  # 32 levels deep
    report = await api.submit_calls(items)
    assert report.counts == {"accepted": 3, "duplicate": 0, "rejected": 2, "skipped": 0}
    deep, big = report.rejected
    assert (deep.index, deep.source, deep.errors[0].field) == (1, "local", "nested")
    assert deep.errors[0].message == "nested must not nest arrays or objects more than 32 levels deep in the body"
    assert (big.index, big.source, big.errors[0].field) == (3, "server", "transcript_notes")
    assert big.errors[0].message.endswith("bytes once encoded; a call may take at most 1048576 bytes")
    assert [s for _, _, s, _ in wire.requests] == [422, 200]
    assert len(await ledger(database_url, partner.partner_id)) == 3


async def test_tenancy_ids_travel_as_utf8(make_client: Callable[..., AsyncClient], partner: PartnerCreds) -> None:
    api = make_client(partner, tenant_id="ténant-ü", subtenant_id="Zürich")
    item = call_item()
    assert (await api.submit_calls([item])).counts["accepted"] == 1
    status = await api.get_call(item["call"]["id"])
    assert (status.tenant_id, status.subtenant_id) == ("ténant-ü", "Zürich")
