"""Observability of the running pipeline, end to end: the four services as processes (the gateway
with two uvicorn workers, so its metrics come from two processes), a real Prometheus (Debian's)
scraping every service's ``/metrics``, and the services' real OTLP exporters posting to a local
collector.

After a batch of calls (three completed, one whose recording is not audio), a duplicate and two
refused requests, Prometheus holds exactly the counts of what was sent, and each call's spans form
one trace from the gateway through the fetcher and the analyzer to the notifier's callback
attempt, one tree under the call's ``call.ingest`` span; the services' log lines about a call carry
its ``call_id`` and that trace's id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from services.gateway.config import GatewaySettings
from tests.factories import call_item
from tests.support import audio, otlp
from tests.support import prometheus as prom
from tests.support.gateway import INGEST, create_partner
from tests.support.pipeline import pipeline
from tests.support.receivers import Receiver, TestCa
from tests.support.recordings import RecordingHost

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not audio.tools_available(), reason="festival is not installed"),
    pytest.mark.skipif(not prom.available(), reason="prometheus is not installed (make test-tools)"),
]

SERVICES = ("gateway", "fetcher", "analyzer", "notifier")
log = logging.getLogger(__name__)


async def eventually(check: Callable[[], Any], timeout: float = 60) -> Any:
    """``check()``'s value once it stops raising AssertionError (Prometheus scrapes every second)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await asyncio.to_thread(check)
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(1)


async def test_prometheus_counts_the_calls_and_each_call_is_one_trace_across_the_four_services(
    gateway_settings: GatewaySettings, database_url: str, host: RecordingHost, rx: Receiver, tls: TestCa, tmp_path: Path
) -> None:
    partner = await create_partner(database_url)
    short = audio.encode(audio.render_conversation(audio.SCRIPTS["interested"][:4], stereo=True), "mp3")
    good = [
        call_item(call__recording_url=host.add(f"call{i}.mp3", short, "audio/mpeg"), callback_url=rx.url(f"ok{i}"))
        for i in range(3)
    ]
    broken = call_item(
        call__recording_url=host.add("broken.mp3", b"<html>not audio</html>", "audio/mpeg"),
        callback_url=rx.url("broken"),
    )
    calls = {item["call"]["id"]: item for item in [*good, broken]}
    headers = {**partner.headers(), "content-type": "application/json"}

    async with otlp.otlp_collector() as collector:
        tracing_env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
        extra = {name: dict(tracing_env) for name in SERVICES}
        extra["gateway"]["GATEWAY_WORKERS"] = "2"
        with (
            pipeline(
                gateway_settings,
                tmp_path / "logs",
                blob_root=tmp_path / "blobs",
                ca_bundle=tls.write_bundle(tmp_path),
                extra=extra,
            ) as running,
            prom.prometheus(running.ports, tmp_path / "prometheus") as prometheus,
        ):
            async with httpx.AsyncClient(base_url=running.gateway_url, timeout=30) as client:
                response = await client.post(INGEST, content=orjson.dumps({"data": [*good, broken]}), headers=headers)
                assert response.status_code == 200, response.text
                # The first call again: a duplicate, not processed a second time.
                again = await client.post(INGEST, content=orjson.dumps({"data": [good[0]]}), headers=headers)
                assert again.json()["data"]["calls"][0]["status"] == "duplicate"
                # Two refused requests: no tenant header (400), an invalid call (422).
                no_tenant = {k: v for k, v in headers.items() if k != "x-tenant-id"}
                assert (
                    await client.post(INGEST, content=orjson.dumps({"data": [good[1]]}), headers=no_tenant)
                ).status_code == 400
                invalid = call_item(call__recording_url="not a url")
                assert (
                    await client.post(INGEST, content=orjson.dumps({"data": [invalid]}), headers=headers)
                ).status_code == 422

            for i in range(3):
                await rx.wait_for(f"ok{i}", 1, timeout=240)
            await rx.wait_for("broken", 1, timeout=120)

            def counted() -> dict[str, Any]:
                q = prometheus.value
                up = prometheus.by("up", "component")
                assert up == dict.fromkeys(SERVICES, 1.0), up
                seen = {
                    "accepted": q('sum(callpipe_ingest_calls_total{outcome="accepted"})'),
                    "duplicate": q('sum(callpipe_ingest_calls_total{outcome="duplicate"})'),
                    "rejected": prometheus.by("sum by (reason) (callpipe_ingest_rejected_requests_total)", "reason"),
                    "ingest_200": q(
                        'sum(callpipe_http_requests_total{route="/api/v1/partner/ingest/batch-call",status="200"})'
                    ),
                    "fetcher": q(
                        'sum(callpipe_consumer_messages_total{component="fetcher",group="fetcher",outcome="processed"})'
                    ),
                    "fetched": q('sum(callpipe_fetch_duration_seconds_count{outcome="fetched"})'),
                    "not_audio": q('sum(callpipe_fetch_duration_seconds_count{outcome="unsupported_format"})'),
                    "analyzed": q(
                        'sum(callpipe_consumer_messages_total{component="analyzer",group="analyzer",outcome="processed"})'
                    ),
                    "rtf": q("sum(callpipe_asr_real_time_factor_count)"),
                    "results": q('sum(callpipe_callback_attempts_total{kind="result",outcome="delivered"})'),
                    "failures": q('sum(callpipe_callback_attempts_total{kind="failure",outcome="delivered"})'),
                    "end_to_end": q('sum(callpipe_call_end_to_end_seconds_count{state="delivered"})'),
                    "published": q('sum(callpipe_outbox_published_events_total{component="gateway"})'),
                    "backlog": q('sum(callpipe_outbox_backlog_events{component="gateway"})'),
                    "dead_letters": q("sum(callpipe_consumer_dead_letters_total)") or 0.0,
                    "lag": q('sum(callpipe_consumer_lag_messages{component="notifier"})'),
                }
                assert seen == {
                    "accepted": 4.0,
                    "duplicate": 1.0,
                    "rejected": {"tenant_missing": 1.0, "validation_failed": 1.0},
                    "ingest_200": 2.0,
                    "fetcher": 4.0,
                    "fetched": 3.0,
                    "not_audio": 1.0,
                    "analyzed": 3.0,
                    "rtf": 3.0,
                    "results": 3.0,
                    "failures": 1.0,
                    "end_to_end": 4.0,
                    "published": 4.0,
                    "backlog": 0.0,
                    "dead_letters": 0.0,
                    "lag": 0.0,
                }, seen
                return seen

            counts = await eventually(counted)
            p95 = prometheus.value(
                "histogram_quantile(0.95, sum by (le) (rate(callpipe_call_end_to_end_seconds_bucket[5m])))"
            )
            log.info("Prometheus after the run: %s; ingest-to-callback p95 estimate: %s s", counts, p95)

            def traced() -> dict[str, list[otlp.CollectedSpan]]:
                traces = collector.traces()
                found = {}
                for call_id in calls:
                    ids = {
                        s.trace_id
                        for s in collector.spans
                        if s.attributes.get("callpipe.call_id") == call_id
                        and s.attributes.get("callpipe.ingest.outcome") != "duplicate"
                    }
                    assert len(ids) == 1, (call_id, ids)
                    [trace_id] = ids
                    spans = traces[trace_id]
                    services = {s.service for s in spans}
                    # A call whose recording is not audio never reaches the analyzer.
                    stages = [n for n in SERVICES if call_id != broken["call"]["id"] or n != "analyzer"]
                    assert services == {f"callpipe-{name}" for name in stages}, (call_id, services)
                    names = {s.name for s in spans}
                    assert "callback attempt" in names and "calls.ingested.v1 process" in names, names
                    found[call_id] = spans
                return found

            per_call = await eventually(traced)

    prefix = gateway_settings.kafka_topic_prefix
    for call_id, spans in per_call.items():
        names = {s.name.removeprefix(prefix) for s in spans}
        log.info("trace of %s: %s", call_id, sorted((s.service, s.name.removeprefix(prefix)) for s in spans))
        expected = {"call.ingest", "calls.ingested.v1 process", "fetch recording"}
        expected |= {"callback attempt", "callbacks.deliveries.v1 process"}
        if call_id == broken["call"]["id"]:
            expected |= {"calls.failed.v1 process"}
        else:
            expected |= {"calls.fetched.v1 process", "transcribe", "analyze transcript", "calls.analyzed.v1 process"}
        assert expected <= names, (call_id, expected - names)
        # One tree: a single root (the call's ingest span, linked to the HTTP request's span), and
        # every other span's parent is in the same trace.
        ids = {s.span_id for s in spans}
        roots = [s for s in spans if not s.parent_span_id]
        assert [r.name for r in roots] == ["call.ingest"], roots
        assert all(s.parent_span_id in ids for s in spans if s.parent_span_id), call_id
        # The link leads to the request's own trace (its server span, and FastAPI's endpoint span).
        [(request_trace, _)] = roots[0].links
        request_spans = {s.name for s in collector.spans if s.trace_id == request_trace}
        assert "POST /api/v1/partner/ingest/batch-call" in request_spans, request_spans
        processed_by = {s.service for s in spans if s.name.endswith(" process")}
        assert processed_by == {f"callpipe-{n}" for n in ("gateway", "fetcher", "notifier")} | (
            set() if call_id == broken["call"]["id"] else {"callpipe-analyzer"}
        )
    # The duplicate submission is a trace of its own, one span, marked as such.
    duplicates = [s for s in collector.spans if s.attributes.get("callpipe.ingest.outcome") == "duplicate"]
    assert [s.attributes["callpipe.call_id"] for s in duplicates] == [good[0]["call"]["id"]]

    # Log lines about a call carry its call_id and its trace's id: the notifier's for every call
    # (delivery recorded, callback attempt), the fetcher's for the call it could not fetch.
    def json_lines(name: str) -> list[dict[str, Any]]:
        raw = (tmp_path / "logs" / f"{name}.log").read_bytes().splitlines()
        return [orjson.loads(line) for line in raw if line.startswith(b"{")]

    notifier_lines = json_lines("notifier")
    for call_id, spans in per_call.items():
        tagged = [line for line in notifier_lines if line.get("call_id") == call_id]
        assert {line["msg"] for line in tagged} >= {"delivery recorded", "callback attempt"}, call_id
        assert {line.get("trace_id") for line in tagged} == {spans[0].trace_id}, call_id
    [not_fetched] = [line for line in json_lines("fetcher") if line.get("msg") == "recording not fetched"]
    assert not_fetched["call_id"] == broken["call"]["id"]
    assert not_fetched["trace_id"] == per_call[broken["call"]["id"]][0].trace_id
