"""The pipeline as `make up` runs it: gateway, fetcher and analyzer as their own processes on
real Kafka and PostgreSQL. A call goes in through the public API with its recording on a local
HTTP host, and its analysis comes out on calls.analyzed.v1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from schemas.events import TOPIC_ANALYZED, TOPIC_FAILED, CallAnalyzed, CallFailed, parse_event
from services.gateway.config import GatewaySettings
from tests.factories import call_item
from tests.support import audio
from tests.support.gateway import INGEST, create_partner
from tests.support.infra import Infra
from tests.support.kafka import consume
from tests.support.pipeline import pipeline
from tests.support.recordings import RecordingHost, recording_host

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not audio.tools_available(), reason="festival is not installed")]


@pytest.fixture
async def host() -> AsyncIterator[RecordingHost]:
    async with recording_host("127.0.0.1") as h:
        yield h


async def test_a_call_goes_from_the_api_to_its_analysis(
    gateway_settings: GatewaySettings, database_url: str, infra: Infra, host: RecordingHost, tmp_path: Path
) -> None:
    partner = await create_partner(database_url)
    call = audio.render_conversation(audio.SCRIPTS["interested"], stereo=True)
    good = call_item(call__recording_url=host.add("interested.mp3", audio.encode(call, "mp3"), "audio/mpeg"))
    broken = call_item(call__recording_url=host.add("broken.mp3", b"<html>not audio</html>", "audio/mpeg"))
    headers = {**partner.headers(), "content-type": "application/json"}
    services = ("gateway", "fetcher", "analyzer")
    with pipeline(gateway_settings, tmp_path / "logs", blob_root=tmp_path / "blobs", services=services) as running:
        async with httpx.AsyncClient(base_url=running.gateway_url, timeout=30) as client:
            rubric = [{"parameter_name": "Next Steps", "description": "Agree on a next step.", "is_fatal": True}]
            configured = await client.put(
                "/api/v1/partner/analysis-config",
                params={"scope": "tenant"},
                content=orjson.dumps({"rubric": rubric}),
                headers=headers,
            )
            assert configured.status_code == 200
            response = await client.post(INGEST, content=orjson.dumps({"data": [good, broken]}), headers=headers)
            assert response.json()["success"] is True
        analyzed = await consume(infra.kafka_bootstrap, gateway_settings.topic(TOPIC_ANALYZED), 1, timeout=180)
        failed = await consume(infra.kafka_bootstrap, gateway_settings.topic(TOPIC_FAILED), 1, timeout=60)
    [result] = [parse_event(r.value) for r in analyzed]
    assert isinstance(result, CallAnalyzed) and result.call_id == good["call"]["id"]
    assert result.payload.intent == "INTERESTED"
    assert {s.speaker for s in result.payload.transcript} == {"agent", "customer"}
    assert [q.parameter_name for q in result.payload.quality] == ["Next Steps"]
    assert result.payload.config_id == configured.json()["data"]["config_id"]
    assert result.payload.ingested.metadata == good["metadata"]
    [failure] = [parse_event(r.value) for r in failed]
    assert isinstance(failure, CallFailed) and failure.call_id == broken["call"]["id"]
    assert (failure.payload.stage, failure.payload.code) == ("fetch", "unsupported_format")
