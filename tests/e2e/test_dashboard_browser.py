"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against the real
stack: the gateway as its own process on real Kafka and PostgreSQL, calls ingested through the
public API, the later stages' events published on Kafka as the fetcher, analyzer and notifier
publish them. The partner's host page is a real server on another site (``localhost`` against
the gateway's ``127.0.0.1``), so the dashboard runs as a third-party iframe, as in production.

Every page is screenshotted, with data and empty, into ``.local/artifacts/dashboard/``.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import FrameLocator, Page

from schemas.analysis import Chapter, QualityItem, TranscriptSegment
from schemas.events import (
    TOPIC_CALLBACK_COMMANDS,
    TOPIC_INGESTED,
    TOPICS,
    CallAnalyzed,
    CallbackRedeliverRequested,
    CallFailed,
    CallFailedPayload,
    CallIngested,
    dump_event,
    follow_up,
    parse_event,
)
from services.common.blobs import FilesystemBlobStore
from services.common.kafka import TopicSpec, ensure_topics, make_producer
from services.gateway.app import READ_MODEL_TOPICS
from services.gateway.config import GatewaySettings
from tests.factories import analysis_payload, fetched_event
from tests.support.dashboard import ARTIFACTS, CHROMIUM, call_item_at, chromium, host_site, wav_recording
from tests.support.gateway import INGEST, ROOT, PartnerCreds, create_partner, gateway_process, wait_until
from tests.support.infra import Infra
from tests.support.kafka import consume
from tests.support.status_events import delivery

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} missing: `make test-tools` installs chromium"),
]
TOKEN = "/api/v1/partner/dashboard/auth/token"
XSS = [
    '<img src=x onerror="window.__xss=1">',
    "<script>window.__xss=2</script>",
    '"><svg onload="window.__xss=3"></svg>',
    "javascript:window.__xss=4",
]


@pytest.fixture
def blob_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "blobs"
    monkeypatch.setenv("BLOB_ROOT", str(root))
    return root


@pytest.fixture
def gateway_url(gateway_settings: GatewaySettings, blob_root: Path, tmp_path: Path) -> Iterator[str]:
    """``python -m services.gateway``: API, read model, dashboard projector and pages."""
    with gateway_process(gateway_settings, tmp_path / "gateway.log") as url:
        yield url


@pytest.fixture
async def partner(database_url: str) -> PartnerCreds:
    return await create_partner(database_url, rate_limit=5000, name="Acme CRM")


@pytest.fixture
async def producer(infra: Infra, gateway_settings: GatewaySettings) -> AsyncIterator[AIOKafkaProducer]:
    await ensure_topics(infra.kafka_bootstrap, [TopicSpec(gateway_settings.topic(t), 3) for t in READ_MODEL_TOPICS])
    p = make_producer(infra.kafka_bootstrap, "dashboard-test")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    sys.stderr.write(f"\ndashboard screenshots: {ARTIFACTS}\n")
    return ARTIFACTS


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


class Stack:
    """The running gateway plus what a test publishes in the other services' place."""

    def __init__(
        self,
        url: str,
        partner: PartnerCreds,
        producer: AIOKafkaProducer,
        settings: GatewaySettings,
        infra: Infra,
        blobs: FilesystemBlobStore,
        tmp: Path,
    ) -> None:
        self.url, self.partner, self.producer, self.settings = url, partner, producer, settings
        self.infra, self.blobs, self.tmp = infra, blobs, tmp
        self.http = httpx.AsyncClient(base_url=url, timeout=30)
        self.seen = 0

    async def ingest(self, items: list[dict[str, Any]], sub: str = "subtenant1") -> list[CallIngested]:
        """Through the public API; returns the calls.ingested.v1 events the gateway published."""
        headers = {**self.partner.headers("tenant1", sub), "content-type": "application/json"}
        response = await self.http.post(INGEST, content=orjson.dumps({"data": items}), headers=headers)
        assert response.status_code == 200, response.text
        self.seen += len(items)
        records = await consume(self.infra.kafka_bootstrap, self.settings.topic(TOPIC_INGESTED), self.seen)
        wanted = {i["call"]["id"] for i in items}
        events = [parse_event(r.value) for r in records]
        found = [e for e in events if isinstance(e, CallIngested) and e.call_id in wanted]
        assert len(found) == len(items)
        return sorted(found, key=lambda e: [i["call"]["id"] for i in items].index(e.call_id))

    async def publish(self, *events: Any) -> None:
        for event in events:
            topic = self.settings.topic(TOPICS[type(event)])
            await self.producer.send_and_wait(topic, dump_event(event), key=event.key())

    async def store_recording(self, content: bytes) -> tuple[str, str]:
        digest = hashlib.sha256(content).hexdigest()
        source = self.tmp / f"rec-{digest[:8]}.wav"
        source.write_bytes(content)
        blob = await self.blobs.put_file(source, digest, len(content))
        return blob.uri, digest

    async def token(self, sub: str = "subtenant1", **query: str) -> dict[str, Any]:
        response = await self.http.get(TOKEN, headers=self.partner.headers("tenant1", sub), params=query)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    async def wait_dashboard(self, sub: str, check: Any, path: str = "/calls", **params: str) -> Any:
        """Poll a page's data (own session) until ``check`` holds: the projector is a consumer."""
        exchanged = await self.http.get("/dashboard", params={"token": (await self.token(sub))["token"]})
        sid = exchanged.headers["set-cookie"].split(";", 1)[0]

        async def probe() -> Any:
            response = await self.http.get(f"/dashboard/api{path}", params=params, headers={"cookie": sid})
            data = response.json().get("data") if response.status_code == 200 else None
            return data if data is not None and check(data) else None

        data = await wait_until(probe, timeout=60, interval=0.3)
        assert data is not None, f"the dashboard never showed what {path} waited for"
        return data


@pytest.fixture
async def stack(
    gateway_url: str,
    partner: PartnerCreds,
    producer: AIOKafkaProducer,
    gateway_settings: GatewaySettings,
    infra: Infra,
    blob_root: Path,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    s = Stack(gateway_url, partner, producer, gateway_settings, infra, FilesystemBlobStore(blob_root), tmp_path)
    yield s
    await s.http.aclose()


def allow_origin(database_url: str, partner_id: str, origin: str) -> None:
    """The way an operator does it: the gateway's admin CLI."""
    out = subprocess.run(
        [sys.executable, "-m", "services.gateway.admin", "dashboard", "allow-origin", partner_id, origin],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["origins"] == [origin]


TRANSCRIPT = [
    TranscriptSegment(speaker="agent", start=0.0, end=3.8, text="Hi Dana, this is Ann from Acme, is now a good time?"),
    TranscriptSegment(speaker="customer", start=4.2, end=7.9, text="Sure, we are looking at call analytics."),
    TranscriptSegment(speaker="agent", start=9.0, end=12.6, text="Our platform scores every call against your rubric."),
    TranscriptSegment(speaker="customer", start=13.5, end=17.4, text="What does it cost for forty seats?"),
    TranscriptSegment(speaker="agent", start=18.2, end=23.0, text="Let me send a proposal and book a demo next week."),
]
CHAPTERS = [
    Chapter(chapter_name="Introduction", chapter_summary="At 00:00 the agent said hi Dana this is Ann."),
    Chapter(chapter_name="Needs", chapter_summary="At 00:04 the customer said we are looking at call analytics."),
    Chapter(chapter_name="Pricing", chapter_summary="At 00:13 the customer said what does it cost for forty seats."),
]


def analyzed(call: CallIngested, intent: str, score: float | None, **update: Any) -> CallAnalyzed:
    payload = analysis_payload(call.payload, intent=intent, quality_score=score)  # type: ignore[arg-type]
    if update:
        payload = payload.model_copy(update=update)
    return CallAnalyzed(**follow_up(call, event_id=uuid.uuid4(), source="analyzer"), payload=payload)


def failed(call: CallIngested) -> CallFailed:
    payload = CallFailedPayload(
        stage="fetch", code="http_status", message="the recording host answered HTTP 404", ingested=call.payload
    )
    return CallFailed(**follow_up(call, event_id=uuid.uuid4(), source="fetcher"), payload=payload)


AGENTS = {"agent-ann": "Ann Lee", "agent-bob": "Bob Stone", "agent-cy": "Cy Park"}
# (agent, days ago, intent or None for a failed call, score)
PLAN = [
    ("agent-ann", 0, "INTERESTED", 88.0),
    ("agent-ann", 1, "FOLLOW_UP", 71.0),
    ("agent-ann", 3, "INTERESTED", 92.5),
    ("agent-bob", 0, "NOT_INTERESTED", 41.0),
    ("agent-bob", 2, "UNDECIDED", 63.0),
    ("agent-bob", 5, None, None),
    ("agent-cy", 1, "INTERESTED", 79.0),
    ("agent-cy", 4, "NO_CONVERSATION", None),
    ("agent-cy", 6, None, None),
]


async def seed(stack: Stack) -> CallIngested:
    """Nine calls of three agents over a week (seven analysed, two failed), and one more with a
    recording, a transcript, chapters and a delivered callback; returns that one."""
    now = datetime.now(UTC).replace(microsecond=0)
    items = []
    for n, (agent, days, _, _) in enumerate(PLAN):
        start = now - timedelta(days=days, hours=1 + n)
        items.append(
            call_item_at(
                f"call-{n:02d}-{uuid.uuid4().hex[:4]}",
                iso(start),
                iso(start + timedelta(minutes=2 + 3 * n)),
                agent__id=agent,
                agent__name=AGENTS[agent],
                customer__name=f"Customer {n}",
                customer__id=f"cust-{n}",
            )
        )
    start = now - timedelta(minutes=30)
    items.append(
        call_item_at(
            "detail-demo",
            iso(start),
            iso(start + timedelta(seconds=24)),
            agent__id="agent-ann",
            agent__name="Ann Lee",
            customer__name="Dana Whitfield",
            customer__id="cust-dana",
            metadata={"campaign": "Q4 outbound", "region": "EMEA"},
            custom_fields=[{"internal_name": "deal_stage", "value": "discovery"}],
        )
    )
    calls = await stack.ingest(items)
    uri, digest = await stack.store_recording(wav_recording())
    for call, (_, _, intent, score) in zip(calls, PLAN, strict=False):
        if intent is None:
            await stack.publish(failed(call))
            continue
        got = fetched_event(call, blob_uri=uri, sha256=digest, size=1000, container="wav")
        quality = None
        if score is not None and score > 80:  # the good calls pass their fatal parameter
            quality = [
                QualityItem(
                    parameter_name="Setting Context",
                    inference_score=9,
                    parameter_score=10,
                    is_fatal=False,
                    justification="Agenda stated.",
                    suggestion="Keep it up.",
                ),
                QualityItem(
                    parameter_name="USP Audits",
                    inference_score=8,
                    parameter_score=10,
                    is_fatal=True,
                    justification="Audits explained.",
                    suggestion="Mention the audit log export.",
                ),
            ]
        extra: dict[str, Any] = {"quality": quality} if quality else {}
        if intent == "NO_CONVERSATION":
            extra = {"quality": [], "summary": [], "transcript": []}
        await stack.publish(got, analyzed(call, intent, score, **extra))
    detail = calls[-1]
    await stack.publish(
        fetched_event(detail, blob_uri=uri, sha256=digest, size=len(wav_recording()), container="wav"),
        analyzed(detail, "INTERESTED", 84.0, transcript=TRANSCRIPT, summary=CHAPTERS),
        delivery(detail, datetime.now(UTC), "pending"),
        delivery(detail, datetime.now(UTC) + timedelta(seconds=1), "delivered", number=1, status_code=200),
    )
    await stack.wait_dashboard(
        "subtenant1", lambda d: len(d["calls"]) == 10 and all(c["status"] != "processing" for c in d["calls"])
    )
    await stack.wait_dashboard(
        "subtenant1", lambda d: d["callback"] and d["callback"]["state"] == "delivered", "/calls/detail-demo"
    )
    return detail


async def shot(page: Page, artifacts: Path, name: str) -> None:
    """The whole page. The viewport is grown to the page's height rather than using a full-page
    capture, which can catch the cross-site (out-of-process) frame before it repaints."""
    size = page.viewport_size or {"width": 1280, "height": 900}
    height = await page.evaluate("Math.ceil(document.documentElement.scrollHeight)")
    await page.set_viewport_size({"width": size["width"], "height": max(height, size["height"])})
    await page.wait_for_timeout(500)  # relayout, charts redraw, the frame repaints
    path = artifacts / f"{name}.png"
    await page.screenshot(path=str(path))
    await page.set_viewport_size(size)
    sys.stderr.write(f"screenshot {path}\n")


async def heading(frame: FrameLocator, text: str) -> None:
    await frame.locator("main h1", has_text=text).first.wait_for(timeout=20_000)


async def table_column(frame: FrameLocator, index: int) -> list[str]:
    cells = frame.locator(f"main tbody tr td:nth-child({index})")
    return [t.strip() for t in await cells.all_inner_texts()]


async def open_embedded(page: Page, host: str, url: str) -> FrameLocator:
    await page.goto(f"{host}/embed?src={quote(url, safe='')}")
    return page.frame_locator("#dashboard")


def collect_problems(page: Page) -> list[str]:
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("response", lambda r: problems.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)
    return problems


async def test_embedded_dashboard_every_page_filters_audio_and_redeliver(
    stack: Stack, database_url: str, artifacts: Path
) -> None:
    detail = await seed(stack)
    async with chromium() as browser, host_site() as host:
        allow_origin(database_url, stack.partner.partner_id, host)
        issued = await stack.token()
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        problems = collect_problems(page)
        audio_responses: list[tuple[int, str | None]] = []
        page.on(
            "response",
            lambda r: audio_responses.append((r.status, r.headers.get("content-range"))) if "/audio" in r.url else None,
        )
        frame = await open_embedded(page, host, issued["url"])

        # Overview: the cards and four charts drawn by Chart.js under the dashboard's CSP.
        await heading(frame, "Overview")
        await frame.locator("canvas").nth(3).wait_for()
        cards = dict(
            zip(
                await frame.locator(".card .label").all_inner_texts(),
                await frame.locator(".card .value").all_inner_texts(),
                strict=True,
            )
        )
        assert (cards["Calls"], cards["Completed"], cards["Failed"]) == ("10", "8", "2")
        assert await frame.locator("canvas").count() == 4
        await shot(page, artifacts, "01-overview")

        # The host page heard the frame's size and navigation, from the gateway's origin only.
        received = await page.evaluate("window.received")
        kinds = {m["data"]["type"] for m in received}
        assert {"resize", "navigate"} <= kinds
        assert {m["origin"] for m in received} == {stack.url}
        assert int(await page.locator("#dashboard").evaluate("f => f.getBoundingClientRect().height")) > 900

        # Agents, then click through to one agent's calls.
        await frame.get_by_role("link", name="Agents").click()
        await heading(frame, "Agents")
        assert sorted(await table_column(frame, 2)) == ["3", "3", "4"]
        await shot(page, artifacts, "02-agents")
        await frame.get_by_role("link", name="Calls of Bob Stone").click()
        await heading(frame, "Calls")
        await frame.locator("main tbody tr").first.wait_for()
        assert set(await table_column(frame, 3)) == {"Bob Stone"}
        assert await frame.locator("select[name=agent]").input_value() == "agent-bob"

        # Calls: every call, then filters from the shared form, search, sort and export.
        await frame.get_by_role("button", name="Reset").click()
        await wait_rows(frame, 10)
        await shot(page, artifacts, "03-calls")
        await frame.locator("select[name=intent]").select_option("INTERESTED")
        await frame.get_by_role("button", name="Apply filters").click()
        # The filtered table replaces the previous one: wait for it, not for any fourth row.
        await wait_rows(frame, 4)
        assert set(await table_column(frame, 7)) == {"Interested"}
        await frame.locator("select[name=score_band]").select_option("3")  # 85-100
        await frame.get_by_role("button", name="Apply filters").click()
        await wait_rows(frame, 2)
        assert sorted(await table_column(frame, 8)) == ["88.0", "92.5"]
        await frame.get_by_role("button", name="Reset").click()
        await wait_rows(frame, 10)
        await frame.get_by_role("searchbox").fill("dana")
        await frame.get_by_role("button", name="Search").click()
        await wait_rows(frame, 1)
        assert await table_column(frame, 2) == ["detail-demo"]
        await frame.get_by_role("button", name="Reset").click()
        await wait_rows(frame, 10)
        await frame.get_by_role("button", name="Score").click()
        await frame.locator("th[aria-sort=descending]").wait_for()
        scores = [s for s in await table_column(frame, 8) if s[:1].isdigit()]
        assert scores == sorted(scores, key=float, reverse=True) and scores[0] == "92.5"
        async with page.expect_download() as download_info:
            await frame.get_by_role("button", name="Export CSV").click()
        download = await download_info.value
        exported = list(csv.DictReader(io.StringIO(Path(await download.path()).read_text())))
        assert len(exported) == 10 and {r["call_id"] for r in exported} >= {"detail-demo"}

        # Call detail: recording synced to the transcript and chapters, analysis, callback log.
        await frame.get_by_role("link", name="detail-demo").click()
        await heading(frame, "Call detail-demo")
        player = frame.locator("audio#player")
        await player.wait_for()
        await wait_until_js(player, "a => a.readyState >= 1")
        await shot(page, artifacts, "04-call-detail")
        line = frame.locator("ol.transcript li").nth(3).locator("button")
        await line.click()
        at = await wait_until_js(player, "a => Math.abs(a.currentTime - 13.5) < 0.6 ? a.currentTime : null")
        assert abs(at - 13.5) < 0.6
        await frame.get_by_role("button", name="Pricing").click()
        await wait_until_js(player, "a => Math.abs(a.currentTime - 13) < 0.6 ? a.currentTime : null")
        await wait_until_js(player, "a => { a.pause(); a.currentTime = 10.0; return true; }")
        current = frame.locator("ol.transcript li[aria-current=true]")
        await current.wait_for()
        assert "rubric" in await current.inner_text()
        assert any(status == 206 and (rng or "").startswith("bytes ") for status, rng in audio_responses)
        assert await frame.get_by_text("Dana Whitfield (cust-dana)").count() == 1
        assert await frame.get_by_text("Q4 outbound").count() == 1
        assert await frame.get_by_text("discovery").count() == 1

        await frame.get_by_role("button", name="Redeliver callback").click()
        await frame.get_by_text("Redelivery requested").wait_for()
        await shot(page, artifacts, "05-call-detail-redelivered")
        records = await consume(stack.infra.kafka_bootstrap, stack.settings.topic(TOPIC_CALLBACK_COMMANDS), 1)
        command = parse_event(records[0].value)
        assert isinstance(command, CallbackRedeliverRequested) and command.call_id == detail.call_id
        # Down to a 1024 px wide iframe: nothing overflows sideways.
        await page.set_viewport_size({"width": 1024, "height": 768})
        for link, title, name in (("Overview", "Overview", "15-overview-1024"), ("Calls", "Calls", "16-calls-1024")):
            await frame.get_by_role("link", name=link, exact=True).click()
            await heading(frame, title)
            await frame.locator("main canvas, main table").first.wait_for()
            app = next(f for f in page.frames if "/dashboard/app" in f.url)
            widths = await app.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert widths[0] <= widths[1], (title, widths)
            await shot(page, artifacts, name)
        assert not problems, problems  # no console error at all: no CSP violation, no failed load
        await context.close()


async def wait_rows(frame: FrameLocator, count: int) -> None:
    async def ready() -> bool:
        return (
            await frame.locator("main tbody tr").count() == count and not await frame.locator("main[aria-busy]").count()
        )

    assert await wait_until(ready, timeout=20), f"expected {count} rows"


async def wait_until_js(locator: Any, expression: str) -> Any:
    async def probe() -> Any:
        return await locator.evaluate(expression)

    value = await wait_until(probe, timeout=20, interval=0.1)
    assert value is not None and value is not False, expression
    return value


async def test_empty_pages_explain_themselves_and_an_agent_token_sees_only_its_calls(
    stack: Stack, artifacts: Path
) -> None:
    # A subtenant with no finished call yet: one call just received (no analysis, no audio).
    now = datetime.now(UTC).replace(microsecond=0)
    [waiting] = await stack.ingest(
        [call_item_at("waiting-call", iso(now - timedelta(minutes=5)), iso(now - timedelta(minutes=1)))], sub="quiet"
    )
    await stack.wait_dashboard("quiet", lambda d: len(d["calls"]) == 1)
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1024, "height": 768})
        problems = collect_problems(page)
        await page.goto((await stack.token("quiet"))["url"])  # top level: no embedding involved
        await page.get_by_role("heading", name="No analysed calls to show yet").wait_for()
        assert await page.get_by_role("button", name="Clear the filters").count() == 0
        await shot(page, artifacts, "06-overview-empty")
        await page.get_by_role("link", name="Agents").click()
        await page.get_by_role("heading", name="No agent has finished calls in this selection").wait_for()
        await shot(page, artifacts, "07-agents-empty")
        await page.get_by_role("link", name="Calls").click()
        await page.get_by_role("searchbox").fill("nobody")
        await page.get_by_role("button", name="Search").click()
        await page.get_by_role("heading", name="No calls match").wait_for()
        await page.get_by_role("button", name="Clear the filters").wait_for()
        await shot(page, artifacts, "08-calls-empty")
        await page.get_by_role("button", name="Clear the filters").click()
        await page.get_by_role("link", name="waiting-call").click()
        await page.get_by_text("The recording is not available yet.").wait_for()
        assert await page.locator("audio").count() == 0
        await shot(page, artifacts, "09-call-detail-processing")
        # Keyboard: after a navigation the page's content has the focus (Tab reaches its first
        # link); on a fresh load the skip link is the first stop and jumps to the content.
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent") == "← All calls"
        await page.reload()
        await page.get_by_text("The recording is not available yet.").wait_for()
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
        await page.keyboard.press("Enter")
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent") == "← All calls"
        assert not [p for p in problems if "page error" in p], problems
        del waiting

        # An agent-scoped, read-only token: only that agent's calls, no redeliver button.
        detail_now = now - timedelta(minutes=20)
        mine, theirs = await stack.ingest(
            [
                call_item_at("agent-own", iso(detail_now), iso(detail_now + timedelta(minutes=3)), agent__id="a1"),
                call_item_at("agent-other", iso(detail_now), iso(detail_now + timedelta(minutes=3)), agent__id="a2"),
            ],
            sub="scoped",
        )
        for call in (mine, theirs):
            await stack.publish(analyzed(call, "INTERESTED", 70.0))
        await stack.wait_dashboard("scoped", lambda d: d["totals"]["calls"] == 2, "/overview")
        page = await browser.new_page(viewport={"width": 1024, "height": 768})
        await page.goto((await stack.token("scoped", agent_id="a1", read_only="true"))["url"])
        await page.get_by_text("read-only").wait_for()
        assert (await page.locator(".card .value").first.inner_text()) == "1"
        await page.get_by_role("link", name="Calls").click()
        await page.get_by_role("link", name="agent-own").wait_for()
        assert await page.get_by_role("link", name="agent-other").count() == 0
        await page.get_by_role("link", name="agent-own").click()
        await page.get_by_role("heading", name="Callback").wait_for()
        assert await page.get_by_role("button", name="Redeliver callback").count() == 0
        await shot(page, artifacts, "10-call-detail-agent-read-only")


async def test_refused_outside_the_allowed_origins_and_the_token_works_once(
    stack: Stack, database_url: str, artifacts: Path
) -> None:
    async with chromium() as browser, host_site() as allowed, host_site() as other:
        allow_origin(database_url, stack.partner.partner_id, allowed)
        issued = await stack.token()
        page = await browser.new_page(viewport={"width": 1100, "height": 600})
        frame = await open_embedded(page, other, issued["url"])
        await frame.get_by_role("heading", name="The dashboard cannot be shown here").wait_for()
        assert await frame.get_by_text(other).count() == 1
        await shot(page, artifacts, "11-refused-other-origin")
        # The refusal did not spend the token; the allowed origin opens it, once.
        frame = await open_embedded(page, allowed, issued["url"])
        await heading(frame, "Overview")
        fresh = await browser.new_page()
        await fresh.goto(issued["url"])
        await fresh.get_by_role("heading", name="This dashboard link is no longer valid").wait_for()
        await shot(fresh, artifacts, "12-token-used-twice")


async def test_markup_in_every_partner_and_customer_string_stays_inert_text(
    stack: Stack, database_url: str, artifacts: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    items = []
    for n, payload in enumerate(XSS):
        item = call_item_at(
            f"{payload}-{n}",
            iso(now - timedelta(hours=n + 1)),
            iso(now - timedelta(hours=n + 1) + timedelta(minutes=4)),
            agent__id=f"{payload} agent",
            agent__name=payload,
            # E-mails are validated (WHATWG syntax), so theirs break out of attributes instead.
            agent__email=f"x'onfocus='window.__xss={n}'@evil.example.com",
            customer__id=f"{payload} customer",
            customer__name=payload,
            customer__email=f"y'/onload='window.__xss={n}'@evil.example.com",
            customer__disposition_status=payload,
            metadata={payload: payload},
            custom_fields=[{"internal_name": payload, "value": payload}],
        )
        item[payload[:20]] = payload  # an extra field of the partner's own
        items.append(item)
    calls = await stack.ingest(items)
    uri, digest = await stack.store_recording(wav_recording(6.0))
    for call, payload in zip(calls, XSS, strict=True):
        await stack.publish(
            fetched_event(call, blob_uri=uri, sha256=digest, size=1000, container="wav"),
            analyzed(
                call,
                "INTERESTED",
                75.0,
                intent_justification=payload,
                transcript=[TranscriptSegment(speaker="customer", start=0.5, end=3.0, text=payload)],
                summary=[Chapter(chapter_name=payload, chapter_summary=payload)],
                quality=[
                    QualityItem(
                        parameter_name=payload,
                        inference_score=5,
                        parameter_score=10,
                        is_fatal=False,
                        justification=payload,
                        suggestion=payload,
                    )
                ],
            ),
        )
    await stack.wait_dashboard("subtenant1", lambda d: sum(c["status"] == "completed" for c in d["calls"]) == 4)
    async with chromium() as browser, host_site() as host:
        allow_origin(database_url, stack.partner.partner_id, host)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        problems = collect_problems(page)
        frame = await open_embedded(page, host, (await stack.token())["url"])
        await heading(frame, "Overview")
        for link, title in (("Agents", "Agents"), ("Calls", "Calls")):
            await frame.get_by_role("link", name=link, exact=True).click()
            await heading(frame, title)
            await frame.locator("main tbody tr").nth(3).wait_for()
        await shot(page, artifacts, "13-xss-calls")
        for n, payload in enumerate(XSS):
            await frame.get_by_role("link", name="Calls", exact=True).click()
            await heading(frame, "Calls")
            await frame.get_by_role("link", name=f"{payload}-{n}", exact=True).click()
            await heading(frame, "Call ")
            await frame.locator("ol.transcript").wait_for()
            # Every field shows the markup as its text: agent, customer, metadata key and value,
            # custom field, extra field, justification, transcript, chapter, scorecard.
            shown = await frame.get_by_text(payload, exact=False).count()
            assert shown >= 10, (payload, shown)
            if n == 0:
                await shot(page, artifacts, "14-xss-call-detail")
        app = next(f for f in page.frames if "/dashboard/app" in f.url)
        assert await app.evaluate("window.__xss") is None
        assert await page.evaluate("window.__xss") is None
        assert await app.locator("img[src=x], svg[onload], main script").count() == 0
        # The dashboard's own scripts are the only ones (no partner string became a script).
        srcs = await app.evaluate("[...document.scripts].map(s => s.getAttribute('src'))")
        assert srcs == ["/dashboard/static/chart.js", "/dashboard/static/app.js"]
        assert not [p for p in problems if "page error" in p], problems
    await asyncio.sleep(0)
