"""Notifier benchmark (``make bench``): callbacks per second to a fast local HTTPS receiver, and
delivery latency (analyzed event's ``occurred_at`` to callback received) while 10% of the
endpoints hang.

The notifier is the real service (``python -m services.notifier``) consuming ``calls.analyzed.v1``
events published straight to Kafka. The receiver runs in its own process (this module with
``--serve-receiver``): HTTPS on loopback with a throw-away CA (trustme) the notifier is told to
trust; ``/fast/...`` answers 200 at once, ``/hang/...`` never answers.

Usage: python -m bench.notifier_bench [--calls 2000] [--rate 100] [--seconds 20] [--partners 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer

from bench.common import OUT, CpuMeter, delete_topic, fresh_database, log, pids_named, start_service, stop_server, tree
from deploy.local import stack
from schemas.events import TOPIC_ANALYZED, TOPIC_CALLBACK_COMMANDS, TOPIC_DELIVERIES, TOPIC_FAILED, dump_event
from services.common.kafka import TopicSpec, ensure_topics, make_producer
from tests.support.receivers import TestCa
from tests.unit.notifier.factories import analyzed_event

PARTITIONS = 6
RECEIVER_PORT = 18300
NOTIFIER_PORT = 18310  # the receiver takes RECEIVER_PORT and RECEIVER_PORT + 1


# -- the receiver process ------------------------------------------------------------------------


def serve_receiver(port: int, cert_chain: Path) -> None:
    """HTTPS on ``port``: ``/fast/{partner}`` answers 200 at once and keeps the arrival time,
    ``/hang/{partner}`` never answers. Plain HTTP on ``port + 1`` (for the bench itself):
    ``/healthz`` and ``/arrivals`` (``{call_id: unix time}``)."""
    arrivals: dict[str, float] = {}

    async def fast(request: web.Request) -> web.Response:
        body = await request.read()
        arrivals.setdefault(orjson.loads(body)["call_id"], time.time())
        return web.Response(text="ok")

    async def hang(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.Event().wait()
        return web.Response(text="late")

    async def report(_: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(arrivals), content_type="application/json")

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def serve() -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert_chain))
        callbacks = web.Application()
        callbacks.router.add_post("/fast/{partner}", fast)
        callbacks.router.add_post("/hang/{partner}", hang)
        control = web.Application()
        control.router.add_get("/arrivals", report)
        control.router.add_get("/healthz", healthz)
        for app, site_port, tls in ((callbacks, port, context), (control, port + 1, None)):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", site_port, ssl_context=tls).start()
        await asyncio.Event().wait()

    asyncio.run(serve())


# -- load -----------------------------------------------------------------------------------------


def notifier_env(db_url: str, prefix: str, ca_bundle: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": db_url,
        "KAFKA_BOOTSTRAP_SERVERS": stack.default_kafka().bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
        "NOTIFIER_PORT": str(NOTIFIER_PORT),
        "NOTIFIER_CA_BUNDLE": str(ca_bundle),
        "NOTIFIER_SSRF_ALLOW_NETWORKS": "127.0.0.1/32",
        "NOTIFIER_SESSION_TIMEOUT_MS": "6000",
        "LOG_LEVEL": "WARNING",
    }


def callback_url(partner: int, hanging: int) -> str:
    kind = "hang" if partner < hanging else "fast"
    return f"https://127.0.0.1:{RECEIVER_PORT}/{kind}/p{partner}"


async def arrivals() -> dict[str, float]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{RECEIVER_PORT + 1}/arrivals", timeout=30)
    parsed: dict[str, float] = response.json()
    return parsed


async def wait_arrivals(call_ids: set[str], limit_s: float) -> dict[str, float]:
    deadline = time.monotonic() + limit_s
    while True:
        seen = await arrivals()
        if call_ids <= seen.keys() or time.monotonic() > deadline:
            return {c: seen[c] for c in call_ids if c in seen}
        await asyncio.sleep(0.25)


async def send_all(producer: AIOKafkaProducer, topic: str, events: list[Any]) -> None:
    await asyncio.gather(*[await producer.send(topic, dump_event(e), key=e.key()) for e in events])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def throughput_phase(prefix: str, calls: int, partners: int) -> dict[str, Any]:
    """Every endpoint fast: ``calls`` events published at once; callbacks/s until the last arrives."""
    events = [
        analyzed_event(callback_url(i % partners, 0), partner_id=f"ptn_bench{i % partners}", metadata={"i": i})
        for i in range(calls)
    ]
    producer = make_producer(stack.default_kafka().bootstrap, "bench")
    await producer.start()
    try:
        t0 = time.time()
        await send_all(producer, prefix + TOPIC_ANALYZED, events)
        got = await wait_arrivals({e.call_id for e in events}, limit_s=600)
    finally:
        await producer.stop()
    last = max(got.values(), default=t0)
    return {
        "calls": calls,
        "partners": partners,
        "delivered": len(got),
        "seconds": round(last - t0, 2),
        "callbacks_per_s": round(len(got) / (last - t0), 1) if got else 0.0,
    }


async def latency_phase(prefix: str, rate: float, seconds: float, partners: int) -> dict[str, Any]:
    """``rate`` events/s for ``seconds``, spread over ``partners`` of which 10% hang."""
    hanging = max(1, partners // 10)
    producer = make_producer(stack.default_kafka().bootstrap, "bench")
    await producer.start()
    sent: list[Any] = []
    try:
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < seconds:
            due = start + i / rate
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            partner = i % partners
            event = analyzed_event(callback_url(partner, hanging), partner_id=f"ptn_lat{partner}")
            event = event.model_copy(update={"occurred_at": datetime.now(UTC)})
            await producer.send(prefix + TOPIC_ANALYZED, dump_event(event), key=event.key())
            sent.append((partner, event))
            i += 1
        await producer.flush()
    finally:
        await producer.stop()
    fast = {e.call_id: e.occurred_at.timestamp() for p, e in sent if p >= hanging}
    got = await wait_arrivals(set(fast), limit_s=120)
    latencies_ms = [(got[c] - fast[c]) * 1000 for c in got]
    return {
        "events": len(sent),
        "rate_per_s": rate,
        "partners": partners,
        "hanging_partners": hanging,
        "hanging_events": len(sent) - len(fast),
        "fast_events": len(fast),
        "fast_delivered": len(got),
        "latency_ms_p50": round(pct(latencies_ms, 0.5), 1) if latencies_ms else None,
        "latency_ms_p99": round(pct(latencies_ms, 0.99), 1) if latencies_ms else None,
        "latency_ms_max": round(max(latencies_ms), 1) if latencies_ms else None,
        "latency_ms_mean": round(statistics.fmean(latencies_ms), 1) if latencies_ms else None,
    }


async def run(args: argparse.Namespace, stamp: str, ca_bundle: Path) -> dict[str, Any]:
    db_url = await fresh_database("callpipe_bench_notifier", ["notifier"])
    prefix = f"nbench-{stamp}."
    bootstrap = stack.default_kafka().bootstrap
    topics = (TOPIC_ANALYZED, TOPIC_FAILED, TOPIC_CALLBACK_COMMANDS, TOPIC_DELIVERIES)
    await ensure_topics(bootstrap, [TopicSpec(prefix + t, PARTITIONS) for t in topics])
    notifier = start_service(
        [sys.executable, "-m", "services.notifier"],
        notifier_env(db_url, prefix, ca_bundle),
        OUT / f"{stamp}-notifier.log",
        f"http://127.0.0.1:{NOTIFIER_PORT}/readyz",
    )
    results: dict[str, Any] = {"started": stamp}
    try:
        meter = CpuMeter(
            {
                "notifier": lambda: tree(notifier.pid),
                "receiver": lambda: tree(_RECEIVER[0]),
                "postgres": lambda: pids_named("postgres"),
                "kafka": lambda: [stack.default_kafka().pid() or 0],
            }
        )
        meter.start()
        results["throughput"] = await throughput_phase(prefix, args.calls, args.partners)
        results["throughput"]["cpu_cores"] = meter.stop()
        log(json.dumps(results["throughput"]))
        meter.start()
        results["latency"] = await latency_phase(prefix, args.rate, args.seconds, args.partners)
        results["latency"]["cpu_cores"] = meter.stop()
        log(json.dumps(results["latency"]))
    finally:
        stop_server(notifier)
    for t in topics:
        await delete_topic(bootstrap, prefix + t)
    return results


_RECEIVER: list[int] = [0]


def render(r: dict[str, Any]) -> str:
    t, lat = r["throughput"], r["latency"]
    tc, lc = t["cpu_cores"], lat["cpu_cores"]
    return "\n".join(
        [
            f"Run {r['started']} UTC: one notifier process (dispatch concurrency 64, 4 per partner), HTTPS receiver "
            "in its own process on loopback, Kafka and PostgreSQL on the same machine.",
            "",
            "| measure | value | CPU cores (notifier / receiver / postgres / kafka / machine) |",
            "|---|---|---|",
            f"| callbacks/s, all endpoints fast ({t['calls']} calls, {t['partners']} partners) | "
            f"**{t['callbacks_per_s']}** ({t['delivered']} delivered in {t['seconds']} s) | "
            f"{tc['notifier']} / {tc['receiver']} / {tc['postgres']} / {tc['kafka']} / {tc['machine']} |",
            f"| latency p50 / p99 / max, analyzed event to callback received, {lat['rate_per_s']:g} events/s, "
            f"{lat['hanging_partners']} of {lat['partners']} partners' endpoints hang "
            f"({lat['hanging_events']} of {lat['events']} events) | "
            f"**{lat['latency_ms_p50']} / {lat['latency_ms_p99']} / {lat['latency_ms_max']} ms** "
            f"({lat['fast_delivered']} of {lat['fast_events']} fast-endpoint callbacks) | "
            f"{lc['notifier']} / {lc['receiver']} / {lc['postgres']} / {lc['kafka']} / {lc['machine']} |",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000, help="throughput phase: events published at once")
    parser.add_argument("--rate", type=float, default=100.0, help="latency phase: events per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="latency phase: how long")
    parser.add_argument("--partners", type=int, default=20)
    parser.add_argument("--serve-receiver", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cert-chain", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_receiver is not None:
        serve_receiver(args.serve_receiver, args.cert_chain)
        return 0

    stack.ensure_postgres()
    stack.default_kafka().start()
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    ca = TestCa()
    ca_bundle = ca.write_bundle(OUT)
    chain = OUT / "notifier-bench-server.pem"
    ca.server_cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    receiver = start_service(
        [
            sys.executable,
            "-m",
            "bench.notifier_bench",
            "--serve-receiver",
            str(RECEIVER_PORT),
            "--cert-chain",
            str(chain),
        ],
        {},
        OUT / f"{stamp}-callback-receiver.log",
        f"http://127.0.0.1:{RECEIVER_PORT + 1}/healthz",
    )
    _RECEIVER[0] = receiver.pid
    try:
        results = asyncio.run(run(args, stamp, ca_bundle))
    finally:
        stop_server(receiver)
    (OUT / f"notifier-{stamp}.json").write_text(json.dumps(results, indent=2))
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
