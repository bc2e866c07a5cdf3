"""Pipeline load benchmark (``make bench``): the whole stack as processes, calls in through the
public API and out as signed HTTPS callbacks.

What it measures:

1. **Ingest-to-callback latency** of a 10-second recording, p50 and p95 per stage, under a light
   steady load (one call every ``--interval`` seconds, one process per stage), so the figures are
   latency and not queueing. Stage boundaries are the API's answer (measured here), the events'
   ``occurred_at`` on Kafka (``calls.progress.v1`` stage starts, ``calls.fetched.v1``,
   ``calls.analyzed.v1``, ``callbacks.deliveries.v1``) and the receiver's arrival time. Every
   process is on this machine, so all clocks are the same clock.
2. **Throughput** in calls per minute with 1 and 2 processes per stage (``GATEWAY_WORKERS`` and
   that many fetcher, analyzer and notifier processes): a burst of ``--calls`` calls, timed from
   the first request until the last callback arrived, with the CPU cores each service used.
3. **Memory per service**: the high-water resident set (VmHWM) of each service process and of
   its largest child (the analyzer's recognition worker, the fetcher's probe workers, uvicorn
   workers).

The stack: ``python -m services.gateway|fetcher|analyzer|notifier`` on the local Kafka and
PostgreSQL (``deploy/local/stack.py``), a fresh topic prefix and database per phase, consumer
groups named after the prefix. Recordings are festival speech (``tests/support/audio.py``, every
script, stereo, cut or padded to ``--seconds``) encoded as MP3, each call's file made distinct by
an ID3 tag. They are served over plain HTTP on loopback by a fixtures process (this module with
``--serve-fixtures``), which also receives the callbacks over HTTPS with a throw-away CA
(trustme) the notifier trusts.

Usage: python -m bench.pipeline_bench [--calls 120] [--latency-calls 24] [--interval 4]
       [--seconds 10] [--processes 1,2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import DeleteGroupsRequest
from aiokafka.structs import TopicPartition

from bench.common import OUT, ROOT, CpuMeter, fresh_database, log, peak_rss_mb, pids_named, tree
from bench.recording_server import id3
from deploy.local import stack
from schemas.events import (
    TOPIC_ANALYZED,
    TOPIC_CALLBACK_COMMANDS,
    TOPIC_DELIVERIES,
    TOPIC_FAILED,
    TOPIC_FETCHED,
    TOPIC_INGESTED,
    TOPIC_PROGRESS,
    CallAnalyzed,
    CallbackDelivery,
    CallFailed,
    CallFetched,
    CallIngested,
    CallStageStarted,
    parse_event,
)
from services.common.kafka import TopicSpec, ensure_topics
from tests.factories import call_item
from tests.support import audio
from tests.support.gateway import INGEST, PartnerCreds, create_partner
from tests.support.infra import free_port
from tests.support.processes import stop
from tests.support.receivers import TestCa

PARTITIONS = 6
SERVICES = ("gateway", "fetcher", "analyzer", "notifier")
TOPICS = (
    TOPIC_INGESTED,
    TOPIC_PROGRESS,
    TOPIC_FETCHED,
    TOPIC_ANALYZED,
    TOPIC_FAILED,
    TOPIC_DELIVERIES,
    TOPIC_CALLBACK_COMMANDS,
)
DATABASE = "callpipe_bench_pipeline"
BATCH = 50  # the API's largest batch


# -- recordings --------------------------------------------------------------------------------


def fixed_length(turns: tuple[audio.Turn, ...], seconds: float) -> audio.RenderedCall:
    """The longest opening of ``turns`` that fits in ``seconds``, padded with silence to exactly
    ``seconds`` (or, if even the first turn is longer, the first turn cut there). Stereo."""
    call = audio.render_conversation(turns[:1], stereo=True)
    for n in range(2, len(turns) + 1):
        longer = audio.render_conversation(turns[:n], stereo=True)
        if longer.duration_s > seconds:
            break
        call = longer
    frame_bytes = 2 * call.channels
    size = round(seconds * call.sample_rate) * frame_bytes
    pcm = call.pcm[:size] + bytes(max(0, size - len(call.pcm)))
    kept = tuple(t for t in call.turns if t.start_s < seconds)  # the last one may be cut
    return audio.RenderedCall(pcm, call.sample_rate, call.channels, kept)


def render_recordings(directory: Path, seconds: float) -> dict[str, float]:
    """Every script as a ``seconds``-long stereo MP3 in ``directory``; {script: speech seconds}."""
    directory.mkdir(parents=True, exist_ok=True)
    speech = {}
    for name, turns in audio.SCRIPTS.items():
        call = fixed_length(tuple(turns), seconds)
        (directory / f"{name}.mp3").write_bytes(audio.encode(call, "mp3"))
        speech[name] = round(sum(min(t.end_s, seconds) - t.start_s for t in call.turns if t.start_s < seconds), 1)
    return speech


# -- the fixtures process: recording host and callback receiver --------------------------------


def serve_fixtures(http_port: int, https_port: int, cert_chain: Path, recordings: Path) -> None:
    """Plain HTTP on ``http_port``: ``GET /r/{script}/{call_id}.mp3`` (the script's MP3 behind an
    ID3 tag naming the call, so every call is a distinct file), ``/healthz``, ``/arrivals``
    (``{call_id: [first arrival unix time, callbacks received, failure callbacks]}``). HTTPS on
    ``https_port``: ``POST /hook/{call_id}`` answers 200 at once and records the arrival."""
    files = {p.stem: p.read_bytes() for p in recordings.glob("*.mp3")}
    arrivals: dict[str, list[float]] = {}

    async def recording(request: web.Request) -> web.Response:
        data = files.get(request.match_info["script"])
        if data is None:
            return web.Response(status=404)
        return web.Response(body=id3(request.match_info["call"]) + data, content_type="audio/mpeg")

    async def hook(request: web.Request) -> web.Response:
        now = time.time()
        body = await request.read()
        failed = 1.0 if orjson.loads(body).get("status") == "failed" else 0.0
        seen = arrivals.setdefault(request.match_info["call"], [now, 0.0, 0.0])
        seen[1] += 1
        seen[2] += failed
        return web.Response(text="ok")

    async def report(_: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(arrivals), content_type="application/json")

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def serve() -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert_chain))
        plain = web.Application()
        plain.router.add_get("/r/{script}/{call}.mp3", recording)
        plain.router.add_get("/arrivals", report)
        plain.router.add_get("/healthz", healthz)
        secure = web.Application()
        secure.router.add_post("/hook/{call}", hook)
        for app, port, tls in ((plain, http_port, None), (secure, https_port, context)):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls).start()
        await asyncio.Event().wait()

    asyncio.run(serve())


@dataclass(frozen=True)
class Fixtures:
    proc: subprocess.Popen[bytes]
    http_port: int
    https_port: int

    def recording_url(self, script: str, call_id: str) -> str:
        return f"http://127.0.0.1:{self.http_port}/r/{script}/{call_id}.mp3"

    def callback_url(self, call_id: str) -> str:
        return f"https://127.0.0.1:{self.https_port}/hook/{call_id}"

    async def arrivals(self) -> dict[str, list[float]]:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{self.http_port}/arrivals", timeout=30)
        parsed: dict[str, list[float]] = response.json()
        return parsed

    async def wait_arrivals(self, call_ids: set[str], limit_s: float) -> dict[str, list[float]]:
        deadline = time.monotonic() + limit_s
        while True:
            seen = await self.arrivals()
            if call_ids <= seen.keys() or time.monotonic() > deadline:
                return {c: seen[c] for c in call_ids if c in seen}
            await asyncio.sleep(0.25)


# -- the stack ---------------------------------------------------------------------------------


def launch(
    cmd: list[str], env: dict[str, str], log_path: Path, health: str, into: list[subprocess.Popen[bytes]]
) -> None:
    """Start ``cmd`` in its own session, add it to ``into`` at once (so a failed start is still
    cleaned up), then wait until ``health`` answers."""
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    into.append(proc)
    stack.wait_healthy(health, proc, 120, f"{cmd} (see {log_path})")


@dataclass
class Stack:
    tag: str
    prefix: str
    db_url: str
    processes: int
    gateway_port: int = 0
    procs: dict[str, list[subprocess.Popen[bytes]]] = field(default_factory=lambda: {s: [] for s in SERVICES})

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def pids(self, service: str) -> list[int]:
        return [p for proc in self.procs[service] for p in tree(proc.pid)]

    def peak_rss(self) -> dict[str, dict[str, float]]:
        """Per service: the largest VmHWM of its processes, of their children, and of the whole
        tree of one process (MiB)."""
        out = {}
        for service in SERVICES:
            mains, children, trees = [], [], []
            for proc in self.procs[service]:
                pids = tree(proc.pid)
                peaks = [peak_rss_mb(p) for p in pids]
                mains.append(peaks[0])
                children.append(max(peaks[1:], default=0.0))
                trees.append(sum(peaks))
            out[service] = {
                "process": round(max(mains, default=0.0), 1),
                "largest_child": round(max(children, default=0.0), 1),
                "children": len(tree(self.procs[service][0].pid)) - 1 if self.procs[service] else 0,
                "tree": round(max(trees, default=0.0), 1),
            }
        return out

    def stop(self) -> None:
        for service in reversed(SERVICES):
            for proc in self.procs[service]:
                stop(proc)


@dataclass
class Context:
    """What every phase shares: options, run stamp, fixtures, work directory, CA bundle, and the
    stacks started so far (for the clean-up)."""

    args: argparse.Namespace
    stamp: str
    fixtures: Fixtures
    work: Path
    ca_bundle: Path
    running: list[Stack] = field(default_factory=list)


async def start_stack(ctx: Context, tag: str, processes: int) -> tuple[Stack, PartnerCreds]:
    """A fresh database and topic prefix, every service with ``processes`` processes (gateway:
    uvicorn workers), and a partner whose rate limit is out of the way."""
    stamp, blob_root, ca_bundle = ctx.stamp, ctx.work / f"blobs-{tag}", ctx.ca_bundle
    prefix = f"pbench-{stamp}-{tag}."
    db_url = await fresh_database(DATABASE, list(SERVICES))
    bootstrap = stack.default_kafka().bootstrap
    await ensure_topics(bootstrap, [TopicSpec(prefix + t, PARTITIONS) for t in TOPICS])
    s = Stack(tag=f"{stamp}-{tag}", prefix=prefix, db_url=db_url, processes=processes, gateway_port=free_port())
    ctx.running.append(s)
    shared = {
        "DATABASE_URL": db_url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
        "BLOB_ROOT": str(blob_root),
        "LOG_LEVEL": "INFO",
    }
    cmd = [sys.executable, "-m", "services.gateway"]
    env = {**shared, "GATEWAY_PORT": str(s.gateway_port), "GATEWAY_HOST": "127.0.0.1"}
    env["GATEWAY_WORKERS"] = str(processes)
    await asyncio.to_thread(
        launch, cmd, env, OUT / f"{stamp}-pipeline-{tag}-gateway.log", f"{s.gateway_url}/readyz", s.procs["gateway"]
    )
    for service in ("fetcher", "analyzer", "notifier"):
        upper = service.upper()
        for i in range(processes):
            port = free_port()
            env = {
                **shared,
                f"{upper}_PORT": str(port),
                # Groups of their own: tests running at the same time use the default names.
                f"{upper}_GROUP_ID": prefix + service,
                f"{upper}_SESSION_TIMEOUT_MS": "6000",
            }
            if service == "fetcher":
                env["FETCHER_SSRF_ALLOW_NETWORKS"] = "127.0.0.1/32"
            if service == "notifier":
                env["NOTIFIER_SSRF_ALLOW_NETWORKS"] = "127.0.0.1/32"
                env["NOTIFIER_CA_BUNDLE"] = str(ca_bundle)
            await asyncio.to_thread(
                launch,
                [sys.executable, "-m", f"services.{service}"],
                env,
                OUT / f"{stamp}-pipeline-{tag}-{service}-{i}.log",
                f"http://127.0.0.1:{port}/readyz",
                s.procs[service],
            )
    partner = await create_partner(db_url, rate_limit=1_000_000, name="Pipeline benchmark")
    return s, partner


async def delete_prefixed(prefix: str) -> None:
    """Delete the topics and consumer groups named ``prefix...`` (aiokafka's admin client has no
    call for deleting groups, so that one is its protocol request)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.default_kafka().bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
        for group, _ in await admin.list_consumer_groups():
            if group.startswith(prefix):
                with contextlib.suppress(Exception):
                    node = await admin.find_coordinator(group)
                    await admin._send_request_to_node(node, DeleteGroupsRequest([group]))
    finally:
        await admin.close()


async def drop_database(name: str) -> None:
    import asyncpg  # noqa: PLC0415 - only for the clean-up

    conn = await asyncpg.connect(stack.ensure_postgres())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# -- load ----------------------------------------------------------------------------------------


@dataclass
class Submitted:
    call_id: str
    sent: float  # unix time the request left
    accepted: float = 0.0  # unix time its 200 arrived


def items(fixtures: Fixtures, tag: str, start: int, count: int, seconds: float) -> list[dict[str, Any]]:
    scripts = list(audio.SCRIPTS)
    out = []
    for n in range(start, start + count):
        call_id = f"pb-{tag}-{n:05d}"
        out.append(
            call_item(
                call_id,
                call__recording_url=fixtures.recording_url(scripts[n % len(scripts)], call_id),
                call__start_time="2026-11-01T10:00:00Z",
                call__end_time=f"2026-11-01T10:00:{min(59, round(seconds)):02d}Z",
                callback_url=fixtures.callback_url(call_id),
            )
        )
    return out


async def submit(client: httpx.AsyncClient, partner: PartnerCreds, batch: list[dict[str, Any]]) -> list[Submitted]:
    sent = time.time()
    response = await client.post(
        INGEST, content=orjson.dumps({"data": batch}), headers={**partner.headers(), "content-type": "application/json"}
    )
    accepted = time.time()
    body = response.json()
    if response.status_code != 200 or not body.get("success"):
        raise RuntimeError(f"ingestion refused: {response.status_code} {body}")
    return [Submitted(item["call"]["id"], sent, accepted) for item in batch]


async def warm_up(s: Stack, partner: PartnerCreds, fixtures: Fixtures, seconds: float) -> None:
    """A few calls through the whole pipeline, not measured: model loading, pools, connections.
    Two per process, so each analyzer's recognition worker most likely gets one."""
    batch = items(fixtures, f"{s.tag}-warm", 0, 2 * s.processes, seconds)
    async with httpx.AsyncClient(base_url=s.gateway_url, timeout=60) as client:
        done = await submit(client, partner, batch)
    got = await fixtures.wait_arrivals({d.call_id for d in done}, limit_s=300)
    if len(got) < len(done):
        raise RuntimeError(f"warm-up: {len(got)} of {len(done)} callbacks arrived (see the logs in {OUT})")


# -- events --------------------------------------------------------------------------------------


async def read_events(prefix: str) -> dict[str, dict[str, float]]:
    """Every event of the prefix's topics up to their current end: per call, the unix time of
    each stage boundary that has an event."""
    topics = [prefix + t for t in (TOPIC_INGESTED, TOPIC_PROGRESS, TOPIC_FETCHED, TOPIC_ANALYZED, TOPIC_FAILED)]
    topics.append(prefix + TOPIC_DELIVERIES)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.default_kafka().bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    marks: dict[str, dict[str, float]] = {}
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            behind = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
            if not behind:
                break
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for m in messages:
                    event = parse_event(m.value)
                    at = event.occurred_at.timestamp()
                    mine = marks.setdefault(event.call_id, {})
                    if isinstance(event, CallIngested):
                        mine.setdefault("ingested", at)
                    elif isinstance(event, CallStageStarted):
                        mine.setdefault(f"{event.payload.stage}_started", at)
                    elif isinstance(event, CallFetched):
                        mine.setdefault("fetched", at)
                    elif isinstance(event, CallAnalyzed):
                        mine.setdefault("analyzed", at)
                    elif isinstance(event, CallFailed):
                        mine.setdefault(f"failed_{event.payload.stage}", at)
                    elif isinstance(event, CallbackDelivery) and event.payload.attempt is not None:
                        mine.setdefault("callback_sent", event.payload.attempt.started_at.timestamp())
    finally:
        await consumer.stop()
    return marks


# Stage boundaries, in order; a stage is the time from one boundary to the next. Coarse stages
# (the brief's accepted, fetched, analyzed, callback received) and their splits.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("API answer (request sent to 200)", "sent", "accepted"),
    ("accepted to fetched", "accepted", "fetched"),
    ("- accepted to fetch started (outbox relay, Kafka, fetcher)", "accepted", "fetch_started"),
    ("- fetch started to fetched (download, probe, store)", "fetch_started", "fetched"),
    ("fetched to analyzed", "fetched", "analyzed"),
    ("- fetched to analysis started (Kafka, analyzer)", "fetched", "analyze_started"),
    ("- analysis started to analyzed (recognition, analysis)", "analyze_started", "analyzed"),
    ("analyzed to callback received", "analyzed", "received"),
    ("- analyzed to callback sent (notifier records, dispatches)", "analyzed", "callback_sent"),
    ("- callback sent to received (HTTPS)", "callback_sent", "received"),
    ("**accepted to callback received (total)**", "accepted", "received"),
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def stage_times(
    calls: list[Submitted], marks: dict[str, dict[str, float]], got: dict[str, list[float]]
) -> list[dict[str, Any]]:
    timeline = {
        c.call_id: {
            "sent": c.sent,
            "accepted": c.accepted,
            **marks.get(c.call_id, {}),
            **({"received": got[c.call_id][0]} if c.call_id in got else {}),
        }
        for c in calls
    }
    rows = []
    for label, start, end in STAGES:
        ms = [1000 * (t[end] - t[start]) for t in timeline.values() if start in t and end in t]
        rows.append(
            {
                "stage": label,
                "from": start,
                "to": end,
                "n": len(ms),
                "p50_ms": round(pct(ms, 0.5)) if ms else None,
                "p95_ms": round(pct(ms, 0.95)) if ms else None,
                "max_ms": round(max(ms)) if ms else None,
                "mean_ms": round(statistics.fmean(ms)) if ms else None,
            }
        )
    return rows


def other_cores(cpu: dict[str, float]) -> float:
    """Cores used by processes outside the benchmark (another job on the machine skews it)."""
    return round(max(0.0, cpu["machine"] - sum(v for k, v in cpu.items() if k != "machine")), 2)


def meter_for(s: Stack, fixtures: Fixtures) -> CpuMeter:
    groups = {service: (lambda service=service: s.pids(service)) for service in SERVICES}
    return CpuMeter(
        {
            **groups,
            "postgres": lambda: pids_named("postgres"),
            "kafka": lambda: [stack.default_kafka().pid() or 0],
            "fixtures": lambda: tree(fixtures.proc.pid),
            "bench": lambda: [os.getpid()],
        }
    )


# -- phases --------------------------------------------------------------------------------------


async def latency_phase(ctx: Context) -> dict[str, Any]:
    args, stamp, fixtures = ctx.args, ctx.stamp, ctx.fixtures
    s, partner = await start_stack(ctx, "latency", 1)
    try:
        await asyncio.sleep(2)  # every member joined and assigned
        await warm_up(s, partner, fixtures, args.seconds)
        batch = items(fixtures, f"{stamp}-lat", 0, args.latency_calls, args.seconds)
        meter = meter_for(s, fixtures)
        meter.start()
        t0 = time.monotonic()
        async with httpx.AsyncClient(base_url=s.gateway_url, timeout=60) as client:
            tasks = []
            for i, item in enumerate(batch):  # open model: one call every interval, whatever the answers
                due = t0 + i * args.interval
                if due > time.monotonic():
                    await asyncio.sleep(due - time.monotonic())
                tasks.append(asyncio.create_task(submit(client, partner, [item])))
            calls = [c for done in await asyncio.gather(*tasks) for c in done]
        got = await fixtures.wait_arrivals({c.call_id for c in calls}, limit_s=600)
        cpu = meter.stop()
        await asyncio.sleep(1)  # the last delivery reports reach Kafka
        marks = await read_events(s.prefix)
        memory = s.peak_rss()
    finally:
        s.stop()
    return {
        "calls": len(calls),
        "interval_s": args.interval,
        "recording_s": args.seconds,
        "callbacks": len(got),
        "duplicate_callbacks": sum(int(v[1]) - 1 for v in got.values()),
        "failure_callbacks": sum(int(v[2]) for v in got.values()),
        "failed_events": sum(1 for m in marks.values() for k in m if k.startswith("failed_")),
        "stages": stage_times(calls, marks, got),
        "cpu_cores": cpu,
        "peak_rss_mb": memory,
    }


async def throughput_phase(ctx: Context, processes: int) -> dict[str, Any]:
    args, stamp, fixtures = ctx.args, ctx.stamp, ctx.fixtures
    s, partner = await start_stack(ctx, f"{processes}p", processes)
    try:
        await asyncio.sleep(8 if processes > 1 else 2)  # every member joined and assigned
        await warm_up(s, partner, fixtures, args.seconds)
        calls_in = items(fixtures, f"{stamp}-{processes}p", 0, args.calls, args.seconds)
        batches = [calls_in[i : i + BATCH] for i in range(0, len(calls_in), BATCH)]
        meter = meter_for(s, fixtures)
        os.sync()
        meter.start()
        t0 = time.time()
        async with httpx.AsyncClient(base_url=s.gateway_url, timeout=60) as client:
            done = await asyncio.gather(*[submit(client, partner, b) for b in batches])
        calls = [c for d in done for c in d]
        accepted_s = max(c.accepted for c in calls) - t0
        got = await fixtures.wait_arrivals({c.call_id for c in calls}, limit_s=args.limit)
        last = max((v[0] for v in got.values()), default=time.time())
        cpu = meter.stop()
        await asyncio.sleep(1)
        marks = await read_events(s.prefix)
        memory = s.peak_rss()
    finally:
        s.stop()
    elapsed = last - t0
    return {
        "processes": processes,
        "calls": len(calls),
        "callbacks": len(got),
        "duplicate_callbacks": sum(int(v[1]) - 1 for v in got.values()),
        "failure_callbacks": sum(int(v[2]) for v in got.values()),
        "failed_events": sum(1 for m in marks.values() for k in m if k.startswith("failed_")),
        "all_accepted_s": round(accepted_s, 2),
        "seconds": round(elapsed, 1),
        "calls_per_min": round(60 * len(got) / elapsed, 1) if got else 0.0,
        "audio_min_per_min": round(len(got) * args.seconds / elapsed, 2) if got else 0.0,
        "cpu_cores": cpu,
        # CPU seconds per call, per group: what one call costs each service.
        "cpu_s_per_call": {k: round(v * elapsed / len(got), 3) for k, v in cpu.items()} if got else {},
        "stages": stage_times(calls, marks, got),
        "peak_rss_mb": memory,
    }


# -- report --------------------------------------------------------------------------------------


def plural(n: int) -> str:
    return f"{n} process" if n == 1 else f"{n} processes"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v / 1000:.2f}"


def bottleneck(r: dict[str, Any]) -> list[str]:
    """What the throughput phases show, in words computed from the numbers."""
    cores = os.cpu_count() or 1
    lines = []
    for p in r["throughput"]:
        per_call = {k: v for k, v in p["cpu_s_per_call"].items() if k in (*SERVICES, "postgres", "kafka")}
        if not per_call:
            continue
        total = sum(per_call.values())
        top = max(per_call, key=lambda k: per_call[k])
        share = per_call[top] / total if total else 0.0
        c = p["cpu_cores"]
        lines.append(
            f"- **{plural(p['processes'])} per stage: {p['calls_per_min']} calls/min**, the machine "
            f"{c['machine']} of {cores} cores busy. CPU per call: "
            + ", ".join(f"{k} {v:.3f} s" for k, v in sorted(per_call.items(), key=lambda kv: -kv[1]))
            + f". **{top}** takes {share:.0%} of the pipeline's CPU ({c[top]} cores)."
        )
        if total:
            lines.append(
                f"  - At this mix, {cores} fully busy cores would give at most {60 * cores / total:.0f} calls/min; "
                f"with the {top} alone on {cores} cores, {60 * cores / per_call[top]:.0f} calls/min."
            )
        waits = {row["from"] + ">" + row["to"]: row["p50_ms"] for row in p["stages"]}
        queue = waits.get("fetched>analyze_started")
        if queue is not None:
            lines.append(f"  - Median wait between fetched and analysis started in the burst: {queue / 1000:.1f} s.")
    if len(r["throughput"]) == 2 and r["throughput"][0]["calls_per_min"]:
        a, b = r["throughput"]
        lines.append(f"- 2 processes / 1 process: **{b['calls_per_min'] / a['calls_per_min']:.2f}x** calls per minute.")
    return lines


def render(r: dict[str, Any]) -> str:
    lat = r["latency"]
    out = [
        f"Run {r['started']} UTC: {r['recording_s']:g}-second stereo MP3 recordings (festival speech, the "
        f"{len(r['speech_s'])} scripts cut or padded to length), submitted through the public API, "
        "recordings on a loopback HTTP host, callbacks to a loopback HTTPS receiver; Kafka, PostgreSQL, "
        "the services and the load generator on the same machine.",
        "",
        f"### Ingest-to-callback latency, one call every {lat['interval_s']:g} s, one process per stage "
        f"({lat['callbacks']} of {lat['calls']} callbacks)",
        "",
        "| stage | p50 s | p95 s | max s | calls |",
        "|---|---|---|---|---|",
    ]
    for row in lat["stages"]:
        out.append(
            f"| {row['stage']} | {_ms(row['p50_ms'])} | {_ms(row['p95_ms'])} | {_ms(row['max_ms'])} | {row['n']} |"
        )
    lc = lat["cpu_cores"]
    out += [
        "",
        "Percentiles are per stage (they do not add up). CPU cores during this phase: "
        + " / ".join(f"{k} {v}" for k, v in lc.items())
        + ".",
        "",
        f"### Throughput, a burst of {r['calls']} calls",
        "",
        "| processes per stage | calls/min | audio min per min | callbacks | seconds | CPU cores (gateway / fetcher / "
        "analyzer / notifier / postgres / kafka / fixtures / bench / whole machine) |",
        "|---|---|---|---|---|---|",
    ]
    for p in r["throughput"]:
        c = p["cpu_cores"]
        cores = " / ".join(
            str(c[k])
            for k in ("gateway", "fetcher", "analyzer", "notifier", "postgres", "kafka", "fixtures", "bench", "machine")
        )
        out.append(
            f"| {p['processes']} | **{p['calls_per_min']}** | {p['audio_min_per_min']} | {p['callbacks']} of "
            f"{p['calls']} | {p['seconds']} | {cores} |"
        )
    out += [
        "",
        "Where the burst's calls spent their time (median / max s per stage; the waits before a stage "
        "started are the queues):",
        "",
        "| stage | " + " | ".join(plural(p["processes"]) + " per stage" for p in r["throughput"]) + " |",
        "|---|" + "---|" * len(r["throughput"]),
    ]
    for i, row in enumerate(r["throughput"][0]["stages"]):
        cells = [f"{_ms(p['stages'][i]['p50_ms'])} / {_ms(p['stages'][i]['max_ms'])}" for p in r["throughput"]]
        out.append(f"| {row['stage']} | " + " | ".join(cells) + " |")
    out += [
        "",
        "### Memory per service (peak RSS, MiB)",
        "",
        "| processes per stage | service | process | largest child | children | whole tree (sum of peaks) |",
        "|---|---|---|---|---|---|",
    ]
    for p in r["throughput"]:
        for service, m in p["peak_rss_mb"].items():
            mem = (m["process"], m["largest_child"], m["children"], m["tree"])
            out.append(f"| {p['processes']} | {service} | " + " | ".join(str(c) for c in mem) + " |")
    problems = [
        f"{name}: {ph['calls'] - ph['callbacks']} missing, {ph['duplicate_callbacks']} duplicate, "
        f"{ph['failure_callbacks']} failure callbacks, {ph['failed_events']} calls.failed events"
        for name, ph in [("latency", lat)] + [(f"{p['processes']}p", p) for p in r["throughput"]]
        if ph["calls"] != ph["callbacks"] or ph["duplicate_callbacks"] or ph["failure_callbacks"] or ph["failed_events"]
    ]
    out += ["", "### What the numbers show", "", *bottleneck(r)]
    out += [f"- **Not clean:** {p}" for p in problems]
    busy = [("latency", lat["cpu_cores"])] + [
        (plural(p["processes"]) + " per stage", p["cpu_cores"]) for p in r["throughput"]
    ]
    out += [
        f"- **Not clean:** {other_cores(c)} cores were used outside the benchmark during the {name} phase; "
        "rerun on an idle machine."
        for name, c in busy
        if other_cores(c) > 0.2
    ]
    return "\n".join(out)


# -- main ----------------------------------------------------------------------------------------


async def run(ctx: Context) -> dict[str, Any]:
    args = ctx.args
    results: dict[str, Any] = {"started": ctx.stamp, "calls": args.calls, "recording_s": args.seconds}
    try:
        results["latency"] = await latency_phase(ctx)
        log(json.dumps(results["latency"]))
        results["throughput"] = []
        for processes in args.processes:
            phase = await throughput_phase(ctx, processes)
            log(json.dumps(phase))
            results["throughput"].append(phase)
    finally:
        for s in ctx.running:
            s.stop()
            with contextlib.suppress(Exception):
                await delete_prefixed(s.prefix)
        with contextlib.suppress(Exception):
            await drop_database(DATABASE)
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=120, help="throughput: calls in the burst, per phase")
    parser.add_argument("--latency-calls", type=int, default=24, help="latency: calls, one every --interval")
    parser.add_argument("--interval", type=float, default=4.0, help="latency: seconds between calls")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of every recording")
    parser.add_argument(
        "--processes",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1, 2],
        help="throughput phases: processes per stage, comma-separated",
    )
    parser.add_argument("--limit", type=float, default=1800, help="throughput: longest wait for the callbacks")
    parser.add_argument("--serve-fixtures", type=int, nargs=2, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cert-chain", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--recordings", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fixtures is not None:
        serve_fixtures(args.serve_fixtures[0], args.serve_fixtures[1], args.cert_chain, args.recordings)
        return 0
    if not audio.tools_available():
        raise SystemExit("festival and its voices are needed (deploy/local/stack.py install-test-tools)")

    # SIGTERM (and SIGINT, as usual) unwind through the clean-up below: services, topics,
    # consumer groups, database, temporary files.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    stack.ensure_postgres()
    stack.default_kafka().start()
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    work = OUT / f"pipeline-{stamp}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        speech = render_recordings(work / "recordings", args.seconds)
        log(f"recordings: {args.seconds:g} s each, speech seconds per script {speech}")
        ca = TestCa()
        bundle = ca.write_bundle(work)
        chain = work / "server.pem"
        ca.server_cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
        http_port, https_port = free_port(), free_port()
        launch(
            [
                sys.executable,
                "-m",
                "bench.pipeline_bench",
                "--serve-fixtures",
                str(http_port),
                str(https_port),
                "--cert-chain",
                str(chain),
                "--recordings",
                str(work / "recordings"),
            ],
            {},
            OUT / f"{stamp}-pipeline-fixtures.log",
            f"http://127.0.0.1:{http_port}/healthz",
            procs,
        )
        fixtures = Fixtures(procs[0], http_port, https_port)
        results = asyncio.run(run(Context(args, stamp, fixtures, work, bundle)))
        results["speech_s"] = speech
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    path = OUT / f"pipeline-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    print(render(results))
    log(f"results in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
