"""The whole job as `make up` runs it: gateway, fetcher, analyzer and notifier as processes on real
Kafka and PostgreSQL. Recordings (festival speech, all five formats, stereo and mono) are served by
a local HTTP host; callbacks are received by a local HTTPS receiver with its own CA. Every call
gets exactly one successful, signed callback in the spec's shape with contents that fit what was
said, and the status API agrees."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from standardwebhooks import Webhook

from schemas.analysis import TranscriptSegment
from services.gateway.config import GatewaySettings
from tests.factories import call_item
from tests.support import audio
from tests.support.gateway import INGEST, create_partner
from tests.support.pipeline import pipeline, signing_secret
from tests.support.receivers import Receiver, TestCa
from tests.support.recordings import RecordingHost
from tests.support.spec_callback import SPEC_EXAMPLE, assert_same_shape
from tests.support.wer import word_attribution

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not audio.tools_available(), reason="festival is not installed")]

MIME = {"mp3": "audio/mpeg", "wav": "audio/wav", "aac": "audio/aac", "m4a": "audio/mp4", "mp4": "video/mp4"}

# (script, format, stereo): every format, both layouts.
PLAN: list[tuple[str, audio.Format, bool]] = [
    ("interested", "mp3", True),
    ("not_interested", "wav", False),
    ("price_objection", "m4a", True),
    ("budget_and_timeline", "aac", False),
    ("agenda_set", "mp4", True),
]


def check_sensible(script: str, body: dict[str, Any]) -> None:
    """What the spoken script says must show in the analysis."""
    expected_intent = {"interested": "INTERESTED", "not_interested": "NOT_INTERESTED"}
    if script in expected_intent:
        assert body["intent"] == expected_intent[script], body["intent_justification"]
    if script == "price_objection":
        assert "Pricing" in body["bant"]["concern_categories"], body["bant"]
    if script == "budget_and_timeline":
        assert "10,000" in (body["bant"].get("budget") or ""), body["bant"]
    if script == "agenda_set":
        [context] = [q for q in body["quality"] if q["parameter_name"] == "Setting Context"]
        assert context["inference_score"] >= 7, context
    assert body["intent_justification"] and body["summary"]
    assert 0 <= body["quality_score"] <= 100


async def status_of(client: httpx.AsyncClient, call_id: str, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get(f"/api/v1/partner/calls/{call_id}", headers=headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def wait_for_status(
    client: httpx.AsyncClient,
    call_id: str,
    headers: dict[str, str],
    wanted: str,
    delivery: str | None = None,
    timeout: float = 120,
) -> dict[str, Any]:
    """The call's status once it is ``wanted`` (and its callback ``delivery``, if given): the read
    model follows the events, so it may trail the callback by a moment."""

    async def poll() -> dict[str, Any]:
        while True:
            data = await status_of(client, call_id, headers)
            if data["status"] == wanted and (delivery is None or (data["callback"] or {}).get("state") == delivery):
                return data
            await asyncio.sleep(0.5)

    return await asyncio.wait_for(poll(), timeout)


async def test_every_call_gets_one_signed_spec_callback_and_a_completed_status(
    gateway_settings: GatewaySettings,
    database_url: str,
    host: RecordingHost,
    rx: Receiver,
    tls: TestCa,
    tmp_path: Path,
) -> None:
    partner = await create_partner(database_url)
    metadata = {"campaign": "Q1 Outreach", "crm_id": "opp-42"}
    items, scripts, mono = [], {}, {}
    for script, fmt, stereo in PLAN:
        call = audio.render_conversation(audio.SCRIPTS[script], stereo=stereo)
        url = host.add(f"{script}.{fmt}", audio.encode(call, fmt), MIME[fmt])
        item = call_item(call__recording_url=url, callback_url=rx.url(script), metadata=metadata)
        items.append(item)
        scripts[item["call"]["id"]] = script
        if not stereo:
            mono[item["call"]["id"]] = call
    short = audio.render_conversation(audio.SCRIPTS["interested"][:4], stereo=True)
    silent_partner = call_item(
        call__recording_url=host.add("no-callback.mp3", audio.encode(short, "mp3"), "audio/mpeg"), callback_url=None
    )
    broken = call_item(
        call__recording_url=host.add("broken.mp3", b"<html>not audio</html>", "audio/mpeg"),
        callback_url=rx.url("broken"),
    )
    headers = {**partner.headers(), "content-type": "application/json"}
    with pipeline(
        gateway_settings, tmp_path / "logs", blob_root=tmp_path / "blobs", ca_bundle=tls.write_bundle(tmp_path)
    ) as running:
        async with httpx.AsyncClient(base_url=running.gateway_url, timeout=30) as client:
            body = {"data": [*items, silent_partner, broken]}
            response = await client.post(INGEST, content=orjson.dumps(body), headers=headers)
            assert response.status_code == 200 and response.json()["success"] is True, response.text

            failure = orjson.loads((await rx.wait_for("broken", 1, timeout=120))[0].body)
            arrived = {script: await rx.wait_for(script, 1, timeout=240) for script, _, _ in PLAN}
            no_callback = await wait_for_status(client, silent_partner["call"]["id"], headers, "completed")
            statuses = {
                i["call"]["id"]: await wait_for_status(client, i["call"]["id"], headers, "completed", "delivered")
                for i in items
            }
            failed = await wait_for_status(client, broken["call"]["id"], headers, "failed", "delivered")
            # Let any duplicate that was going to come arrive before counting.
            await asyncio.sleep(2)

    secret = signing_secret(database_url, partner.partner_id)
    webhook = Webhook(secret)
    for item in items:
        call_id, script = item["call"]["id"], scripts[item["call"]["id"]]
        [hit] = rx.hits(script)  # exactly one: the first answer was a 200
        assert hit.answer == 200 and hit is arrived[script][0]
        callback = webhook.verify(hit.body, hit.headers)
        assert callback["call_id"] == call_id
        assert_same_shape(SPEC_EXAMPLE, callback)
        assert {"source", "timestamp"} <= set(callback["meta"]) and callback["meta"]["crm_id"] == "opp-42"
        check_sensible(script, callback)
        status = statuses[call_id]
        assert status["result"]["intent"] == callback["intent"]
        assert status["callback"]["state"] == "delivered"
        assert status["callback"]["delivery_id"] == hit.headers["webhook-id"]
        [attempt] = status["callback"]["attempts"]
        assert attempt["number"] == 1 and attempt["status_code"] == 200
        if call_id in mono:
            # One channel, two voices: the analyzer told agent and customer apart.
            transcript = [TranscriptSegment.model_validate(s) for s in status["result"]["transcript"]]
            assert {s.speaker for s in transcript} == {"agent", "customer"}, script
            right, words = word_attribution(transcript, mono[call_id].turns)
            assert right >= 0.85 * words, (script, right, words)
            assert status["result"]["engines"]["diarization"], status["result"]["engines"]
        stamps = {k: datetime.fromisoformat(v) for k, v in status["timestamps"].items() if v}
        assert stamps["received"] <= stamps["fetching"] <= stamps["fetched"] <= stamps["completed"], stamps
    assert failure["call_id"] == broken["call"]["id"] and failure["status"] == "failed"
    assert failure["error"]["stage"] == "fetch" and failure["error"]["code"] == "unsupported_format"
    assert len(rx.hits("broken")) == 1
    assert failed["error"]["code"] == "unsupported_format"
    assert no_callback["result"]["intent"] and no_callback["callback"] is None
