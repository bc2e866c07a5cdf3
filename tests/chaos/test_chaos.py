"""Faults while calls flow: nothing accepted is lost.

``test_pipeline_survives_faults`` runs the four services as processes on a Kafka broker and a
PostgreSQL cluster of the test's own and sends 200 calls through the public API, in batches, one
fault phase after the other:

1. ``kill -9`` the fetcher while downloads are in flight (the recording host answers every first
   request 503 + ``Retry-After: 1``, so downloads overlap), and restart it;
2. ``kill -9`` the analyzer mid-transcription, and restart it;
3. ``kill -9`` the notifier while callbacks go out, and restart it;
4. stop the broker (a clean shutdown), accept a batch while it is down (the gateway's outbox holds
   it), start it again;
5. crash PostgreSQL (``pg_ctl stop -m immediate``: no checkpoint, WAL recovery on the way up),
   submit a batch while it is down (the API answers 500 and the client retries the same call ids,
   as a partner would), start it again;
6. the callback receiver answers 500 to everything for ``RECEIVER_OUTAGE_S`` (the issue's "a
   minute", scaled down; the notifier's schedule below outlasts it with margin).

After each phase every call accepted so far must settle, and the invariant is checked: each call
that got ``{"success": true}`` has exactly one final event (``calls.analyzed.v1`` or
``calls.failed.v1``; the same event id seen again is at-least-once redelivery, counted; two
different final events or two different outcomes fail), the outcome its recording calls for
(speech: analysed; garbage: failed at fetch), and at least one 2xx-answered callback, all of one
delivery (one ``webhook-id``) whose ``status`` matches the outcome. Successful callbacks repeated
under the same ``webhook-id`` are allowed and counted. The per-phase figures are printed, attached
to the test report (``record_property("chaos_report")``) and written to ``chaos-report.json`` in
the test's tmp directory.

``test_a_stalled_message_is_not_skipped_by_the_commit`` runs the real fetcher on a one-partition
topic: one recording stalls mid-body while the five calls behind it finish; the committed offset
must stay on the stalled call; after ``kill -9`` and a restart the stalled call is fetched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from deploy.local.stack import KafkaNode
from schemas.events import (
    TOPIC_ANALYZED,
    TOPIC_FAILED,
    TOPIC_FETCHED,
    TOPIC_INGESTED,
    CallAnalyzed,
    CallFailed,
    CallFetched,
    dump_event,
    parse_event,
)
from services.common.kafka import TopicSpec, ensure_topics, make_producer
from services.gateway.config import GatewaySettings
from tests.factories import call_item, ingested_event
from tests.support import audio
from tests.support.gateway import INGEST, create_partner
from tests.support.pg_cluster import PgCluster
from tests.support.pipeline import pipeline
from tests.support.receivers import Receiver, TestCa, receiver
from tests.support.recordings import RecordingHost, recording_host

log = logging.getLogger(__name__)

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.slow,
    pytest.mark.skipif(not audio.tools_available(), reason="festival is not installed"),
]

CALLS = 200
BATCH = 25  # calls per request (the API takes up to 50)
BAD_EVERY = 10  # every tenth recording is not audio: it must end as a fetch failure
HOOK = "chaos"  # every call's callback_url: {receiver}/hook/chaos
RECEIVER_OUTAGE_S = 20.0
SETTLE_TIMEOUT_S = 600.0  # hang protection only: a phase normally settles in well under a minute

# Short two-turn calls (4-5 s of speech each): 200 of them go through one ASR worker.
CONVERSATIONS = {
    "pricing": audio.SCRIPTS["price_objection"][3:5],
    "team": audio.SCRIPTS["agenda_set"][3:5],
    "goodbye": (audio.SCRIPTS["not_interested"][1], audio.SCRIPTS["not_interested"][5]),
}
CONTENT_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav", "aac": "audio/aac", "m4a": "audio/mp4", "mp4": "video/mp4"}

# Faults are recovered from within seconds, not the production minutes: members of a killed
# worker leave the group after 6 s (the broker's minimum), a killed notifier's claimed deliveries
# come back after 10 s, and a callback is retried after 1, 2, 4, 8, 8, ... s (+-20 %), 12
# attempts: about 70 s of retries, three and a half times RECEIVER_OUTAGE_S.
SERVICE_ENV = {
    "fetcher": {"FETCHER_SESSION_TIMEOUT_MS": "6000", "FETCHER_PROBE_WORKERS": "1", "FETCHER_BACKOFF_BASE_S": "0.5"},
    "analyzer": {"ANALYZER_SESSION_TIMEOUT_MS": "6000", "ANALYZER_ASR_WORKERS": "1"},
    "notifier": {
        "NOTIFIER_SESSION_TIMEOUT_MS": "6000",
        "NOTIFIER_TIMEOUT_S": "5",
        "NOTIFIER_LEASE_S": "10",
        "NOTIFIER_RETRY_BASE_S": "1",
        "NOTIFIER_RETRY_FACTOR": "2",
        "NOTIFIER_RETRY_MAX_S": "8",
        "NOTIFIER_DELIVERY_ATTEMPTS": "12",
    },
}


# --------------------------------------------------------------------------------------------
# What happened: final events on Kafka, callbacks at the receiver
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Final:
    kind: str  # "analyzed" | "failed"
    event_id: str
    stage: str | None = None
    code: str | None = None


@dataclass
class EventLog:
    """Every final and fetched event of the test's topics, read from the start in the background."""

    finals: dict[str, list[Final]] = field(default_factory=lambda: defaultdict(list))
    fetched: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    dead_letters: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # call id -> topics

    def record(self, topic: str, raw: bytes) -> None:
        event = parse_event(raw)
        if topic.endswith(".dlq"):
            self.dead_letters[event.call_id].append(topic)
            return
        if isinstance(event, CallAnalyzed):
            self.finals[event.call_id].append(Final("analyzed", str(event.event_id)))
        elif isinstance(event, CallFailed):
            p = event.payload
            self.finals[event.call_id].append(Final("failed", str(event.event_id), p.stage, p.code))
        elif isinstance(event, CallFetched):
            self.fetched[event.call_id].append(str(event.event_id))

    def settled(self, call_id: str) -> bool:
        return any(f.stage != "notify" for f in self.finals.get(call_id, ()))

    def dead_lettered(self, call_id: str) -> bool:
        """A worker of the pipeline (not the status read model) parked one of the call's events:
        unless it finished before, it never will."""
        return any(not t.endswith("gateway-read-model.dlq") for t in self.dead_letters.get(call_id, ()))


def observed_topics(settings: GatewaySettings) -> list[str]:
    """The final and fetched events, and every dead-letter topic."""
    dead_letters = [
        "fetcher.dlq",
        "analyzer.dlq",
        "notifier.dlq",
        "gateway-read-model.dlq",
    ]
    return [settings.topic(t) for t in (TOPIC_ANALYZED, TOPIC_FAILED, TOPIC_FETCHED, *dead_letters)]


@contextlib.asynccontextmanager
async def event_log(bootstrap: str, topics: list[str]) -> AsyncIterator[EventLog]:
    """Reads ``topics`` from the beginning into an ``EventLog`` until the block ends; rides out a
    broker restart (the client reconnects)."""
    found = EventLog()
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        metadata_max_age_ms=1000,
    )
    await consumer.start()

    async def run() -> None:
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=500)
            except KafkaError as exc:
                log.warning("event log: %r; retrying", exc)
                await asyncio.sleep(1)
                continue
            for records in batches.values():
                for record in records:
                    found.record(record.topic, record.value)

    task = asyncio.create_task(run())
    try:
        yield found
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


@dataclass(frozen=True)
class Callback:
    call_id: str
    webhook_id: str
    status: str  # the body's "status": completed | failed
    answer: int | None


def callbacks(hooks: Receiver) -> list[Callback]:
    out = []
    for r in hooks.requests:
        headers = {k.lower(): v for k, v in r.headers.items()}
        body = orjson.loads(r.body)
        out.append(Callback(body["call_id"], headers["webhook-id"], body.get("status", ""), r.answer))
    return out


def delivered(hooks: Receiver) -> set[str]:
    return {c.call_id for c in callbacks(hooks) if c.answer is not None and 200 <= c.answer < 300}


# --------------------------------------------------------------------------------------------
# The invariant
# --------------------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What was submitted and accepted, and what each call should come to."""

    expected: dict[str, str] = field(default_factory=dict)  # call id -> "analyzed" | "failed"
    accepted: dict[str, str] = field(default_factory=dict)  # call id -> phase it was accepted in
    answered_duplicate: int = 0  # ids a retried request found already recorded
    rejected_attempts: Counter[str] = field(default_factory=Counter)  # "500", "ConnectError", ...


def check(ledger: Ledger, events: EventLog, hooks: Receiver) -> tuple[dict[str, Any], list[str]]:
    """The invariant over every call accepted so far: (figures, problems)."""
    problems: list[str] = []
    by_call: dict[str, list[Callback]] = defaultdict(list)
    for c in callbacks(hooks):
        by_call[c.call_id].append(c)
    final_duplicates = callback_duplicates = 0
    outcomes: Counter[str] = Counter()
    for call_id in ledger.accepted:
        finals = [f for f in events.finals.get(call_id, ()) if f.stage != "notify"]
        if any(f.stage == "notify" for f in events.finals.get(call_id, ())):
            problems.append(f"{call_id}: its callback was given up (calls.failed stage notify)")
        distinct = {f.event_id: f for f in finals}
        final_duplicates += len(finals) - len(distinct)
        kinds = {f.kind for f in distinct.values()}
        if not finals:
            problems.append(f"{call_id}: LOST, no final event (dead-lettered: {events.dead_letters.get(call_id, [])})")
        elif len(kinds) > 1:
            problems.append(f"{call_id}: conflicting final states {sorted(distinct.values(), key=str)}")
        elif len(distinct) > 1:
            problems.append(f"{call_id}: finalised twice with different event ids {sorted(distinct)}")
        else:
            [final] = distinct.values()
            outcomes[final.kind] += 1
            if final.kind != ledger.expected[call_id]:
                problems.append(
                    f"{call_id}: ended {final.kind} ({final.stage}/{final.code}), expected {ledger.expected[call_id]}"
                )
        attempts = by_call.get(call_id, [])
        ok = [c for c in attempts if c.answer is not None and 200 <= c.answer < 300]
        if not ok:
            problems.append(f"{call_id}: LOST, no successful callback ({len(attempts)} attempts)")
            continue
        per_delivery = Counter(c.webhook_id for c in ok)
        callback_duplicates += sum(n - 1 for n in per_delivery.values())
        if len({c.webhook_id for c in attempts}) > 1:
            problems.append(f"{call_id}: callbacks of {len({c.webhook_id for c in attempts})} deliveries")
        if finals and len(kinds) == 1:
            want = "completed" if kinds == {"analyzed"} else "failed"
            if {c.status for c in ok} != {want}:
                problems.append(f"{call_id}: callback status {sorted({c.status for c in ok})}, final state {want}")
    answers = Counter(str(c.answer) for c in callbacks(hooks))
    figures = {
        "accepted": len(ledger.accepted),
        "answered_duplicate_on_retry": ledger.answered_duplicate,
        "rejected_requests": dict(ledger.rejected_attempts),
        "analyzed": outcomes["analyzed"],
        "failed": outcomes["failed"],
        "final_event_redeliveries": final_duplicates,
        "callback_requests": dict(answers),
        "duplicate_successful_callbacks": callback_duplicates,
        "dead_lettered": {c: t for c, t in events.dead_letters.items() if c in ledger.accepted},
        "lost": sum("LOST" in p for p in problems),
        "problems": len(problems),
    }
    return figures, problems


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.2)


async def settle(ledger: Ledger, events: EventLog, hooks: Receiver) -> None:
    """Until every accepted call has a final event and a successful callback (or the hang
    protection ends the wait; ``check`` then names what is missing)."""

    def done() -> bool:
        ok = delivered(hooks)
        return all((events.settled(c) and c in ok) or events.dead_lettered(c) for c in ledger.accepted)

    with contextlib.suppress(AssertionError):
        await until(done, SETTLE_TIMEOUT_S, "every accepted call to settle")


# --------------------------------------------------------------------------------------------
# The partner's side: recordings and submissions
# --------------------------------------------------------------------------------------------


@dataclass
class Calls:
    host: RecordingHost
    callback_url: str
    variants: list[tuple[str, bytes]]  # (extension, encoded call)
    ledger: Ledger
    made: int = 0

    def make(self, n: int) -> list[dict[str, Any]]:
        """``n`` call items, each with a recording of its own on the flaky host."""
        items = []
        for _ in range(n):
            self.made += 1
            item = call_item(callback_url=self.callback_url)
            call_id = item["call"]["id"]
            if self.made % BAD_EVERY == 0:
                name, body, ctype = f"{call_id}.mp3", b"<html>not audio</html>", "audio/mpeg"
                self.ledger.expected[call_id] = "failed"
            else:
                ext, body = self.variants[self.made % len(self.variants)]
                name, ctype = f"{call_id}.{ext}", CONTENT_TYPES[ext]
                self.ledger.expected[call_id] = "analyzed"
            item["call"]["recording_url"] = self.host.add(name, body, ctype)
            # A flaky host: the first request answers 503 with Retry-After: 1.
            self.host.fail_first[name] = [503]
            items.append(item)
        return items


def recordings() -> list[tuple[str, bytes]]:
    """Every format, stereo and mono, of the short conversations."""
    variants = []
    for i, turns in enumerate(CONVERSATIONS.values()):
        for stereo in (True, False):
            call = audio.render_conversation(turns, stereo=stereo)
            for j, fmt in enumerate(audio.FORMATS):
                if (i + j) % 2 == int(stereo):  # half the combinations, all formats in both layouts
                    variants.append((fmt, audio.encode(call, fmt)))
    return variants


async def submit(
    client: httpx.AsyncClient, headers: dict[str, str], items: list[dict[str, Any]], ledger: Ledger, phase: str
) -> None:
    """POST one batch until it is answered ``{"success": true}``, retrying the same call ids on
    500, 429 and connection errors, like a partner would."""
    body = orjson.dumps({"data": items})
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        try:
            response = await client.post(INGEST, content=body, headers=headers)
        except httpx.TransportError as exc:
            ledger.rejected_attempts[type(exc).__name__] += 1
        else:
            if response.status_code == 200:
                answer = response.json()
                assert answer["success"] is True, answer
                for call in answer["data"]["calls"]:
                    ledger.accepted[call["id"]] = phase
                    ledger.answered_duplicate += call["status"] == "duplicate"
                assert {c["id"] for c in answer["data"]["calls"]} == {i["call"]["id"] for i in items}
                return
            assert response.status_code in (429, 500, 503), (response.status_code, response.text)
            ledger.rejected_attempts[str(response.status_code)] += 1
        assert time.monotonic() < deadline, f"batch of phase {phase} never accepted"
        await asyncio.sleep(1.0)


def among(ids: Iterable[str], found: Iterable[str]) -> int:
    wanted = set(ids)
    return sum(1 for c in found if c in wanted)


# --------------------------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------------------------


@pytest.mark.timeout(2400)
async def test_pipeline_survives_faults(
    broker: KafkaNode,
    postgres: PgCluster,
    gateway_settings: GatewaySettings,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    settings = gateway_settings.model_copy(
        update={"database_url": SecretStr(postgres.url), "kafka_bootstrap_servers": broker.bootstrap}
    )
    partner = await create_partner(postgres.url)
    headers = {**partner.headers(), "content-type": "application/json"}
    ca = TestCa()
    ledger = Ledger()
    report: list[dict[str, Any]] = []
    started = time.monotonic()
    variants = await asyncio.to_thread(recordings)

    async with recording_host() as host, receiver(ca) as hooks:
        calls = Calls(host, hooks.url(HOOK), variants, ledger)
        with pipeline(
            settings,
            tmp_path / "logs",
            blob_root=tmp_path / "blobs",
            ca_bundle=ca.write_bundle(tmp_path),
            extra=SERVICE_ENV,
        ) as running:
            async with (
                event_log(broker.bootstrap, observed_topics(settings)) as events,
                httpx.AsyncClient(base_url=running.gateway_url, timeout=30) as client,
            ):

                async def send(phase: str) -> list[str]:
                    items = calls.make(BATCH)
                    await submit(client, headers, items, ledger, phase)
                    return [i["call"]["id"] for i in items]

                async def analyzed(ids: list[str], n: int) -> None:
                    await until(lambda: among(ids, events.finals) >= n, SETTLE_TIMEOUT_S, f"{n} calls to finish")

                async def phase(name: str, fault: Callable[[], Any]) -> None:
                    t0 = time.monotonic()
                    note = await fault()
                    await settle(ledger, events, hooks)
                    figures, problems = check(ledger, events, hooks)
                    entry = {"phase": name, "fault": note, "seconds": round(time.monotonic() - t0, 1), **figures}
                    report.append(entry)
                    print(f"chaos phase {name}: {json.dumps(entry)}")  # noqa: T201 - the report, with -s
                    assert not problems, f"after {name}: " + "; ".join(problems[:20])

                async def kill(name: str) -> None:
                    await asyncio.to_thread(running.kill, name)
                    await asyncio.to_thread(running.start, name)

                async def fetcher() -> str:
                    ids = await send("fetcher")
                    await until(lambda: among(ids, events.fetched) >= 3, SETTLE_TIMEOUT_S, "the first downloads")
                    done = among(ids, events.fetched)
                    await kill("fetcher")
                    return f"kill -9 with {done}/{len(ids)} of the batch fetched"

                async def analyzer() -> str:
                    ids = await send("analyzer")
                    await analyzed(ids, 2)
                    done = among(ids, events.finals)
                    await kill("analyzer")
                    return f"kill -9 with {done}/{len(ids)} of the batch finished"

                async def notifier() -> str:
                    ids = await send("notifier")
                    await until(lambda: among(ids, delivered(hooks)) >= 2, SETTLE_TIMEOUT_S, "the first callbacks")
                    done = among(ids, delivered(hooks))
                    await kill("notifier")
                    return f"kill -9 with {done}/{len(ids)} of the batch called back"

                async def kafka() -> str:
                    ids = await send("kafka")
                    await analyzed(ids, 2)
                    done = among(ids, events.finals)
                    await asyncio.to_thread(broker.stop)
                    await send("kafka-down")  # accepted into the outbox while the broker is away
                    await asyncio.sleep(5)
                    await asyncio.to_thread(broker.start)
                    return f"broker stopped with {done}/{len(ids)} finished, a batch accepted while down"

                async def database() -> str:
                    ids = await send("postgres")
                    await analyzed(ids, 2)
                    done = among(ids, events.finals)
                    await asyncio.to_thread(postgres.stop, "immediate")
                    during = asyncio.create_task(send("postgres-down"))  # 500s until it is back
                    await asyncio.sleep(5)
                    await asyncio.to_thread(postgres.start)
                    await during
                    return f"crashed (immediate) with {done}/{len(ids)} finished, a batch retried through it"

                async def callbacks_fail() -> str:
                    await send("receiver")
                    hooks.always[HOOK] = 500
                    await asyncio.sleep(RECEIVER_OUTAGE_S)
                    del hooks.always[HOOK]
                    refused = sum(1 for r in hooks.requests if r.answer == 500)
                    return f"receiver answered 500 for {RECEIVER_OUTAGE_S:g} s ({refused} attempts refused)"

                for name, fault in [
                    ("fetcher", fetcher),
                    ("analyzer", analyzer),
                    ("notifier", notifier),
                    ("kafka", kafka),
                    ("postgres", database),
                    ("receiver", callbacks_fail),
                ]:
                    await phase(name, fault)

    total = {"calls": len(ledger.accepted), "seconds": round(time.monotonic() - started, 1), "phases": report}
    (tmp_path / "chaos-report.json").write_text(json.dumps(total, indent=2))
    record_property("chaos_report", json.dumps(total))
    print(f"chaos report: {tmp_path / 'chaos-report.json'}")  # noqa: T201
    assert len(ledger.accepted) == CALLS


# --------------------------------------------------------------------------------------------
# A stalled message and the committed offset
# --------------------------------------------------------------------------------------------


async def committed_offset(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    meta = offsets.get(tp)
    return None if meta is None or meta.offset < 0 else meta.offset


@pytest.mark.timeout(300)
async def test_a_stalled_message_is_not_skipped_by_the_commit(
    gateway_settings: GatewaySettings, tmp_path: Path
) -> None:
    settings = gateway_settings.model_copy(update={"kafka_topic_partitions": 1})
    bootstrap = settings.kafka_bootstrap_servers
    ingested = settings.topic(TOPIC_INGESTED)
    tp = TopicPartition(ingested, 0)
    group = f"fetcher-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [TopicSpec(ingested, 1)])
    body = audio.encode(audio.render_conversation(CONVERSATIONS["goodbye"], stereo=False), "mp3")

    async with recording_host() as host:
        host.stall_s = 600  # until the test lets go
        stalled = ingested_event(call__recording_url=host.add("stall-mid-a.mp3", body, "audio/mpeg"))
        later = [ingested_event(call__recording_url=host.add(f"later-{i}.mp3", body, "audio/mpeg")) for i in range(5)]
        producer = make_producer(bootstrap, "chaos-test")
        await producer.start()
        extra = {
            "fetcher": {
                "FETCHER_GROUP_ID": group,
                "FETCHER_READ_TIMEOUT_S": "600",  # the stall is not a timeout here: the process dies
                "FETCHER_SESSION_TIMEOUT_MS": "6000",
                "FETCHER_PROBE_WORKERS": "1",
            }
        }
        try:
            with pipeline(
                settings, tmp_path / "logs", blob_root=tmp_path / "blobs", extra=extra, services=("fetcher",)
            ) as running:
                topics = [settings.topic(t) for t in (TOPIC_FETCHED, TOPIC_FAILED)]
                async with event_log(bootstrap, topics) as events:
                    await (await producer.send(ingested, dump_event(stalled), key=stalled.key()))
                    await asyncio.wait_for(host.started.wait(), 60)  # its body is half sent, then nothing
                    for event in later:
                        await (await producer.send(ingested, dump_event(event), key=event.key()))
                    ids = [e.call_id for e in later]
                    await until(lambda: among(ids, events.fetched) == 5, 60, "the later calls to be fetched")
                    # Several commit intervals (1 s) after the later calls finished, the group's
                    # position is still the stalled call's offset (0), not past the later ones.
                    await asyncio.sleep(3)
                    assert await committed_offset(bootstrap, settings.topic(group), tp) == 0
                    assert stalled.call_id not in events.fetched

                    await asyncio.to_thread(running.kill, "fetcher")
                    host.stall_s = 0  # the host recovers: the next download of it goes through
                    await asyncio.to_thread(running.start, "fetcher")
                    await until(lambda: stalled.call_id in events.fetched, 120, "the stalled call to be fetched")
                    await until(
                        lambda: sum(len(events.fetched[c]) for c in ids) >= 10, 30, "the later calls' redelivery"
                    )
                    await asyncio.sleep(2)  # anything extra would show up by now
                    final = await committed_offset(bootstrap, settings.topic(group), tp)
        finally:
            await producer.stop()

    assert len(events.fetched[stalled.call_id]) == 1
    assert stalled.call_id not in events.finals, events.finals[stalled.call_id]
    assert host.hits["stall-mid-a.mp3"] == 2  # the stalled download, and the one after the restart
    # The later calls were redelivered (their offsets were never committed) and answered from the
    # fetcher's table with the same event id, without a second download.
    for event in later:
        assert len(set(events.fetched[event.call_id])) == 1
        assert host.hits[f"later-{later.index(event)}.mp3"] == 1
    assert final == 6
