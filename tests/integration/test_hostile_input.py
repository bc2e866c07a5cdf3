"""Hostile input at every edge, judged by what becomes of the call, not only by the HTTP answer.

The whole pipeline runs as processes (gateway, fetcher, analyzer, notifier) on real Kafka and
PostgreSQL; recordings come from a local HTTP host and callbacks go to a local HTTPS receiver.
Every accepted call must reach ``completed`` or ``failed`` in the status API and get its signed
callback; every refusal is the spec's error shape naming the field. Each case here broke on the
main branch before issue 10 (see the README's "Limits" section for the rules they check).
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from standardwebhooks import Webhook

from schemas.events import TOPIC_INGESTED, dump_event
from services.common.kafka import MAX_CALL_EVENT_BYTES, make_producer
from services.gateway.config import GatewaySettings
from services.gateway.models import MAX_JSON_DEPTH
from tests.e2e.test_full_pipeline import signing_secret
from tests.factories import call_item, ingested_event
from tests.integration.hostile_bodies import callback_name, random_batches
from tests.support import audio
from tests.support.gateway import INGEST, PartnerCreds, create_partner
from tests.support.infra import Infra
from tests.support.pipeline import Pipeline, pipeline
from tests.support.receivers import Receiver, TestCa, receiver
from tests.support.recordings import RecordingHost, recording_host

pytestmark = [
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not audio.tools_available(), reason="festival is not installed"),
]

CALLS = "/api/v1/partner/calls"
FINAL = ("completed", "failed")


def nested(depth: int) -> Any:
    """An array nested ``depth`` levels deep (``[[...[]...]]``)."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.fixture(scope="module")
def settings(infra: Infra, database_url: str) -> GatewaySettings:
    return GatewaySettings(
        environment="test",
        database_url=database_url,
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        kafka_topic_partitions=3,
    )


@pytest.fixture(scope="module")
def tls() -> TestCa:
    return TestCa()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def host() -> AsyncIterator[RecordingHost]:
    async with recording_host("127.0.0.1") as h:
        yield h


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rx(tls: TestCa) -> AsyncIterator[Receiver]:
    async with receiver(tls) as r:
        yield r


@pytest.fixture(scope="module")
def stack(settings: GatewaySettings, tls: TestCa, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    root = tmp_path_factory.mktemp("hostile")
    extra = {"gateway": {"GATEWAY_BODY_IDLE_TIMEOUT_S": "1", "GATEWAY_CREDENTIAL_CACHE_TTL_S": "0"}}
    with pipeline(
        settings, root / "logs", blob_root=root / "blobs", ca_bundle=tls.write_bundle(root), extra=extra
    ) as p:
        yield p


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def partner(database_url: str) -> PartnerCreds:
    return await create_partner(database_url, rate_limit=100_000, name="Hostile partner")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(stack: Pipeline) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def speech(host: RecordingHost) -> str:
    """A short two-voice call any test may point a recording at (it completes)."""
    call = audio.render_conversation(audio.SCRIPTS["interested"][:2], stereo=True)
    return host.add("speech.mp3", audio.encode(call, "mp3"), "audio/mpeg")


def headers(partner: PartnerCreds, **extra: str) -> dict[str, str]:
    return {**partner.headers(), "content-type": "application/json", **extra}


async def submit(client: httpx.AsyncClient, partner: PartnerCreds, body: bytes | dict[str, Any]) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return await client.post(INGEST, content=content, headers=headers(partner))


async def final_status(
    client: httpx.AsyncClient, partner: PartnerCreds, call_id: str, *, delivered: bool = True, timeout: float = 120
) -> dict[str, Any]:
    """The call's status once final (and its callback delivered, when it has one)."""

    async def poll() -> dict[str, Any]:
        while True:
            response = await client.get(f"{CALLS}/{quote(call_id, safe='')}", headers=partner.headers())
            if response.status_code == 200:
                data: dict[str, Any] = response.json()["data"]
                callback_done = not delivered or (data["callback"] or {}).get("state") == "delivered"
                if data["status"] in FINAL and callback_done:
                    return data
            await asyncio.sleep(0.3)

    return await asyncio.wait_for(poll(), timeout)


def verified(database_url: str, partner: PartnerCreds, rx: Receiver, name: str) -> list[dict[str, Any]]:
    webhook = Webhook(signing_secret(database_url, partner.partner_id))
    return [webhook.verify(hit.body, hit.headers) for hit in rx.hits(name)]


# -- nesting depth (defect 1) -----------------------------------------------------------------


async def test_nesting_beyond_the_limit_is_refused_naming_the_field(
    client: httpx.AsyncClient, partner: PartnerCreds
) -> None:
    deep_extra = call_item(deep=nested(198))
    deep_in_call = call_item(call__notes={"thread": nested(40)})
    response = await submit(client, partner, {"data": [call_item(), deep_extra, deep_in_call]})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["success"] is False and body["message"] == "Validation failed"
    assert [e["field"] for e in body["errors"]] == ["data[1].deep", "data[2].call.notes"]
    assert all(f"more than {MAX_JSON_DEPTH} levels" in e["message"] for e in body["errors"])
    # Beyond what the request parser itself goes (valid JSON all the same): named too.
    too_deep_for_orjson = json.dumps({"data": [call_item(deeper=nested(600))]}).encode()
    response = await submit(client, partner, too_deep_for_orjson)
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "data[0].deeper", response.text
    # Nothing of a refused request is kept.
    for item in (deep_extra, deep_in_call):
        missing = await client.get(f"{CALLS}/{item['call']['id']}", headers=partner.headers())
        assert missing.status_code == 404


async def test_a_call_nested_to_the_limit_is_accepted_and_ends_with_its_failure_callback(
    client: httpx.AsyncClient, partner: PartnerCreds, host: RecordingHost, rx: Receiver, database_url: str
) -> None:
    # The body, the data array and the item are three levels: the unknown field gets the rest.
    item = call_item(
        deep=nested(MAX_JSON_DEPTH - 3),
        call__recording_url=host.url("nowhere.mp3"),  # 404: the call fails at fetch
        callback_url=rx.url("at-the-limit"),
    )
    response = await submit(client, partner, {"data": [item]})
    assert response.status_code == 200, response.text
    status = await final_status(client, partner, item["call"]["id"])
    assert status["status"] == "failed" and status["error"]["code"] == "http_status"
    [callback] = verified(database_url, partner, rx, "at-the-limit")
    assert callback["call_id"] == item["call"]["id"] and callback["status"] == "failed"


async def test_an_event_too_deep_for_the_parsers_is_salvaged_and_its_call_still_ends(
    client: httpx.AsyncClient,
    partner: PartnerCreds,
    host: RecordingHost,
    rx: Receiver,
    settings: GatewaySettings,
    database_url: str,
) -> None:
    """Defence behind the gateway's check: an event on Kafka nested beyond pydantic's parser
    (as a call accepted before the limit existed would be) still brings its call to a final
    state and a failure callback, through every consumer (fetcher, read model, notifier)."""
    event = ingested_event(
        partner_id=partner.partner_id,
        call__recording_url=host.url("gone.mp3"),
        callback_url=rx.url("salvaged"),
    )
    raw = orjson.loads(dump_event(event))
    raw["payload"]["extra"] = {"deep": nested(300)}
    raw["payload"]["call"]["deep"] = nested(300)
    producer: AIOKafkaProducer = make_producer(settings.kafka_bootstrap_servers, "hostile-test")
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic(TOPIC_INGESTED), json.dumps(raw).encode(), key=event.key())
    finally:
        await producer.stop()
    status = await final_status(client, partner, event.call_id)
    assert status["status"] == "failed" and status["error"]["stage"] == "fetch"
    [callback] = verified(database_url, partner, rx, "salvaged")
    assert callback["call_id"] == event.call_id and callback["error"]["code"] == "http_status"


# -- size (defect 2) --------------------------------------------------------------------------


async def test_a_call_too_large_for_kafka_is_refused_naming_its_field(
    client: httpx.AsyncClient, partner: PartnerCreds
) -> None:
    items = [call_item() for _ in range(4)]
    items[3]["blob"] = "x" * (1_100_000)
    items[1]["customer"]["notes"] = "y" * (MAX_CALL_EVENT_BYTES + 10)
    body = orjson.dumps({"data": items})
    assert len(body) < 5 * 1024 * 1024
    response = await submit(client, partner, body)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == ["data[1].customer.notes", "data[3].blob"]
    assert f"at most {MAX_CALL_EVENT_BYTES} bytes" in errors[0]["message"]
    for item in items:
        assert (await client.get(f"{CALLS}/{item['call']['id']}", headers=partner.headers())).status_code == 404


async def test_the_largest_call_accepted_ends_and_does_not_hold_up_others(
    client: httpx.AsyncClient,
    partner: PartnerCreds,
    host: RecordingHost,
    rx: Receiver,
    speech: str,
    database_url: str,
) -> None:
    big = call_item(call__recording_url=host.url("absent.mp3"), callback_url=rx.url("big"))
    big["blob"] = "z" * (MAX_CALL_EVENT_BYTES - 8_000)  # just under the limit once encoded
    first = await submit(client, partner, {"data": [big]})
    assert first.status_code == 200, first.text
    normal = call_item(call__recording_url=speech, callback_url=rx.url("after-big"))
    assert (await submit(client, partner, {"data": [normal]})).status_code == 200
    assert (await final_status(client, partner, big["call"]["id"]))["status"] == "failed"
    assert (await final_status(client, partner, normal["call"]["id"]))["status"] == "completed"
    [failure] = verified(database_url, partner, rx, "big")
    assert failure["status"] == "failed" and failure["error"]["stage"] == "fetch"
    [result] = verified(database_url, partner, rx, "after-big")
    assert result["call_id"] == normal["call"]["id"] and result["intent"]


# -- not JSON (defect 4) ----------------------------------------------------------------------


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400", "-2.5E+999"])
async def test_numbers_json_does_not_have_are_a_malformed_body(
    client: httpx.AsyncClient, partner: PartnerCreds, token: str
) -> None:
    item = orjson.dumps(call_item()).decode()
    for body in (
        f'{{"data": [{item[:-1]}, "score": {token}}}]}}',  # an unknown field
        f'{{"data": [{item[:-1]}, "metadata": {{"n": {token}}}}}]}}',  # a known one
    ):
        response = await submit(client, partner, body.encode())
        assert response.status_code == 400, (body[-80:], response.text)
        assert response.json() == {"success": False, "message": "Malformed JSON body"}


async def test_the_same_words_inside_strings_are_fine(client: httpx.AsyncClient, partner: PartnerCreds) -> None:
    item = call_item(note="NaN and Infinity, 1e400", metadata={"label": "-Infinity"})
    response = await submit(client, partner, {"data": [item]})
    assert response.status_code == 200, response.text


# -- the list endpoint (defect 3) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "²"}, "limit"),
        ({"limit": "7" * 5000}, "limit"),
        ({"limit": "\uff11\uff10"}, "limit"),  # full-width digits
        ({"cursor": "WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzAxOjAwIiwiYyJd"}, "cursor"),  # year 0 in UTC
        ({"cursor": "WyI5OTk5LTEyLTMxVDIzOjU5OjU5LTAxOjAwIiwiYyJd"}, "cursor"),  # year 10000 in UTC
        ({"cursor": "WyIyMDI2LTExLTIzVDEwOjAwOjAwKzAwOjAwIiwiXHUwMDAwIl0"}, "cursor"),  # U+0000 in the id
        ({"cursor": "A" * 3000}, "cursor"),  # longer than any cursor, shorter than the URL limit
    ],
)
async def test_hostile_list_queries_are_validation_errors(
    client: httpx.AsyncClient, partner: PartnerCreds, query: dict[str, str], field: str
) -> None:
    response = await client.get(CALLS, params=query, headers=partner.headers())
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["message"] == "Validation failed" and [e["field"] for e in body["errors"]] == [field]


# -- redelivery race (defect 5) ---------------------------------------------------------------


async def test_concurrent_redeliveries_are_granted_once_until_the_delivery_is_final_again(
    client: httpx.AsyncClient, partner: PartnerCreds, host: RecordingHost, rx: Receiver, database_url: str
) -> None:
    item = call_item(call__recording_url=host.url("missing-for-redelivery.mp3"), callback_url=rx.url("race"))
    assert (await submit(client, partner, {"data": [item]})).status_code == 200
    call_id = item["call"]["id"]
    await final_status(client, partner, call_id)
    await rx.wait_for("race", 1)

    url = f"{CALLS}/{call_id}/callback/redeliver"
    answers = await asyncio.gather(*(client.post(url, headers=partner.headers()) for _ in range(5)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [202, 409, 409, 409, 409], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 409).json()
    assert refused == {
        "success": False,
        "message": "Callback can be redelivered only once its delivery is delivered or failed",
    }
    await rx.wait_for("race", 2, timeout=60)
    again = await final_status(client, partner, call_id)
    await asyncio.sleep(2)  # a second re-arm, if there were one, would have been sent by now
    assert len(rx.hits("race")) == 2
    assert [a["number"] for a in again["callback"]["attempts"]] == [1, 2]
    # Final again: the next request is granted.
    assert (await client.post(url, headers=partner.headers())).status_code == 202
    await rx.wait_for("race", 3, timeout=60)


# -- tenancy headers (defect 6) ---------------------------------------------------------------


async def test_non_ascii_tenancy_headers_are_utf8_everywhere(
    client: httpx.AsyncClient, partner: PartnerCreds, host: RecordingHost
) -> None:
    tenant, subtenant = "ténant-ü", "Zürich Süd"
    utf8 = {
        "x-api-key": partner.api_key,
        "x-api-secret": partner.api_secret,
        "content-type": "application/json",
    }
    raw_headers = [*utf8.items(), ("x-tenant-id", tenant.encode()), ("x-sub-tenant-id", subtenant.encode())]
    item = call_item(call__recording_url=host.url("tenancy.mp3"), callback_url=None)
    response = await client.post(INGEST, content=orjson.dumps({"data": [item]}), headers=raw_headers)
    assert response.status_code == 200, response.text
    read_headers = [*utf8.items(), ("x-tenant-id", tenant.encode())]
    status = await final_status(client, PartnerView(read_headers), item["call"]["id"], delivered=False)
    assert (status["tenant_id"], status["subtenant_id"]) == (tenant, subtenant)
    listed = await client.get(CALLS, headers=read_headers)
    assert item["call"]["id"] in [c["call_id"] for c in listed.json()["data"]["calls"]]
    # The same tenant written in another encoding is not silently another tenant: it is refused.
    for value, message in (
        (tenant.encode("latin-1"), "Tenant ID must be UTF-8 text without control characters"),
        (b"tenant\tone", "Tenant ID must be UTF-8 text without control characters"),
    ):
        refused = await client.post(
            INGEST,
            content=orjson.dumps({"data": [call_item()]}),
            headers=[*utf8.items(), ("x-tenant-id", value), ("x-sub-tenant-id", b"s")],
        )
        assert refused.status_code == 400 and refused.json() == {"success": False, "message": message}


class PartnerView:
    """Headers for ``final_status`` given as raw pairs (non-ASCII values)."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self._pairs = pairs

    def headers(self) -> list[tuple[str, Any]]:
        return self._pairs


# -- a body that never comes (defect 8) -------------------------------------------------------


async def test_a_body_that_stops_arriving_is_answered_408_and_the_connection_closed(
    stack: Pipeline, partner: PartnerCreds
) -> None:
    await asyncio.to_thread(_send_part_of_a_body, stack.ports["gateway"], partner)


def _send_part_of_a_body(port: int, partner: PartnerCreds) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        request = (
            f"POST {INGEST} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"x-api-key: {partner.api_key}\r\nx-api-secret: {partner.api_secret}\r\n"
            f"x-tenant-id: tenant1\r\nx-sub-tenant-id: subtenant1\r\ncontent-length: 100\r\n\r\n"
            '{"data": [1'
        )
        sock.sendall(request.encode())
        answer = b""
        while chunk := sock.recv(65536):  # the server answers, then closes
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    assert b"content-type: application/json" in head.lower()
    assert orjson.loads(body) == {"success": False, "message": "Request body not received in time"}


# -- any accepted body (property) -------------------------------------------------------------


async def test_random_accepted_bodies_always_reach_a_final_state_with_their_callback(
    client: httpx.AsyncClient,
    partner: PartnerCreds,
    host: RecordingHost,
    rx: Receiver,
    speech: str,
    database_url: str,
) -> None:
    not_audio = host.add("page.mp3", b"<html>no</html>", "audio/mpeg")
    urls = [speech, not_audio, host.url("404.mp3")]
    accepted: list[str] = []
    refused = 0
    for body in random_batches(
        seed=10, count=30, recording_urls=urls, callback_url=lambda call_id: rx.url(callback_name(call_id))
    ):
        response = await submit(client, partner, body)
        if response.status_code == 200:
            outcomes = response.json()["data"]["calls"]
            accepted += [o["id"] for o in outcomes if o["status"] == "accepted"]
        else:
            assert response.status_code in (400, 422), response.text
            assert response.json()["success"] is False
            refused += 1
    assert len(accepted) >= 40, (len(accepted), refused)
    statuses = await asyncio.gather(*(final_status(client, partner, c, timeout=300) for c in accepted))
    assert all(s["status"] in FINAL for s in statuses)
    webhook = Webhook(signing_secret(database_url, partner.partner_id))
    for call_id in accepted:
        [hit] = await rx.wait_for(callback_name(call_id), 1, timeout=120)
        assert webhook.verify(hit.body, hit.headers)["call_id"] == call_id
