"""Fetcher benchmark (``make bench``): throughput with 1 and 2 fetcher processes, commit lag
under that load, and peak memory while one fetcher streams a 1 GiB recording.

Recordings come from ``bench.recording_server`` in its own process on loopback: distinct ~1 MB
MP3s (so every download is a new blob) and a 1 GiB WAV. The fetchers are the real service
(``python -m services.fetcher``), consuming events published straight to Kafka.

Usage: python -m bench.fetcher_bench [--calls 1000] [--big-bytes 1073741824]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from bench.common import (
    OUT,
    CpuMeter,
    delete_topic,
    fresh_database,
    log,
    pids_named,
    rss_mb,
    start_service,
    stop_server,
    tree,
)
from deploy.local import stack
from schemas.events import (
    TOPIC_FAILED,
    TOPIC_FETCHED,
    TOPIC_INGESTED,
    encode_call_ingested,
    new_event_ids,
    parse_event,
)
from services.common.kafka import TopicSpec, ensure_topics, make_producer

PARTITIONS = 6
SERVER_PORT = 18200


def fetcher_env(db_url: str, prefix: str, port: int, blob_root: str) -> dict[str, str]:
    return {
        "DATABASE_URL": db_url,
        "KAFKA_BOOTSTRAP_SERVERS": stack.default_kafka().bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
        "FETCHER_PORT": str(port),
        "BLOB_ROOT": blob_root,
        "FETCHER_SSRF_ALLOW_NETWORKS": "127.0.0.1/32",
        "FETCHER_SESSION_TIMEOUT_MS": "6000",
        "LOG_LEVEL": "WARNING",
        **{k: v for k, v in os.environ.items() if k.startswith("FETCHER_")},
    }


def events(prefix_url: str, count: int, start: int = 0) -> list[tuple[bytes, bytes]]:
    ids = new_event_ids(count)
    now = datetime.now(UTC)
    out = []
    for i in range(count):
        call_id = f"fb-{start + i:07d}"
        raw = encode_call_ingested(
            event_id=ids[i],
            occurred_at=now,
            partner_id="ptn_bench",
            tenant_id="t",
            subtenant_id="s",
            source="bench",
            call={
                "id": call_id,
                "recording_url": f"{prefix_url}/r/{start + i:07d}.mp3",
                "start_time": "2026-11-01T10:00:00Z",
                "end_time": "2026-11-01T10:01:00Z",
                "contact_number": "+14155550123",
            },
            agent={"id": "a"},
            customer={"id": "c"},
            callback_url=None,
            metadata=None,
            custom_fields=None,
            extra={},
        )
        out.append((f"ptn_bench/{call_id}".encode(), raw))
    return out


async def publish(topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer: AIOKafkaProducer = make_producer(stack.default_kafka().bootstrap, "bench")
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, value, key=key) for key, value in records])
    finally:
        await producer.stop()


async def watch(prefix: str, expected: int, group: str, limit_s: float = 600) -> dict[str, Any]:
    """Consume the fetched/failed topics until ``expected`` events; sample the group's commit lag."""
    bootstrap = stack.default_kafka().bootstrap
    consumer = AIOKafkaConsumer(
        prefix + TOPIC_FETCHED,
        prefix + TOPIC_FAILED,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        metadata_max_age_ms=1000,
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    source = [TopicPartition(prefix + TOPIC_INGESTED, p) for p in range(PARTITIONS)]
    fetched = failed = 0
    lags: list[int] = []  # finished (fetched or failed seen) minus committed: a crash redelivers these
    backlog: list[int] = []  # published minus committed
    codes: dict[str, int] = {}
    deadline = time.monotonic() + limit_s
    next_sample = 0.0
    try:
        while fetched + failed < expected and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                for m in messages:
                    event = parse_event(m.value)
                    if event.type == "call.fetched":
                        fetched += 1
                    else:
                        failed += 1
                        codes[event.payload.code] = codes.get(event.payload.code, 0) + 1  # type: ignore[union-attr]
            if time.monotonic() >= next_sample:
                next_sample = time.monotonic() + 0.25
                ends = await consumer.end_offsets(source)
                committed = await admin.list_consumer_group_offsets(group, partitions=source)
                done = {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}
                committed_total = sum(done.get(tp, 0) for tp in source)
                backlog.append(sum(ends.values()) - committed_total)
                lags.append(max(0, fetched + failed - committed_total))
    finally:
        await consumer.stop()
        await admin.close()
    return {
        "fetched": fetched,
        "failed": failed,
        "failure_codes": codes,
        "lag_samples": lags,
        "backlog_max": max(backlog, default=0),
    }


async def throughput_phase(db_url: str, processes: int, calls: int, stamp: str, server: str) -> dict[str, Any]:
    prefix = f"fbench-{stamp}-{processes}p."
    bootstrap = stack.default_kafka().bootstrap
    await ensure_topics(
        bootstrap, [TopicSpec(prefix + t, PARTITIONS) for t in (TOPIC_INGESTED, TOPIC_FETCHED, TOPIC_FAILED)]
    )
    blob_root = OUT / f"blobs-{stamp}-{processes}p"
    procs = []
    for i in range(processes):
        port = 18210 + i
        procs.append(
            start_service(
                [sys.executable, "-m", "services.fetcher"],
                fetcher_env(db_url, prefix, port, str(blob_root)),
                OUT / f"{stamp}-fetcher-{processes}p-{i}.log",
                f"http://127.0.0.1:{port}/readyz",
            )
        )
    try:
        await asyncio.sleep(8 if processes > 1 else 2)  # every member joined and assigned
        records = events(server, calls, start=processes * 1_000_000)
        meter = CpuMeter(
            {
                "fetchers": lambda: [p for proc in procs for p in tree(proc.pid)],
                "postgres": lambda: pids_named("postgres"),
                "kafka": lambda: [stack.default_kafka().pid() or 0],
                "recording server": pids_named_server,
            }
        )
        meter.start()
        t0 = time.monotonic()
        await publish(prefix + TOPIC_INGESTED, records)
        outcome = await watch(prefix, calls, prefix + "fetcher")
        elapsed = time.monotonic() - t0
        cpu = meter.stop()
    finally:
        for proc in procs:
            stop_server(proc)
    async with httpx.AsyncClient() as client:
        size = (await client.get(f"{server}/healthz")).json()["mp3_bytes"]
    lags = outcome.pop("lag_samples")
    for t in (TOPIC_INGESTED, TOPIC_FETCHED, TOPIC_FAILED):
        await delete_topic(bootstrap, prefix + t)
    shutil.rmtree(blob_root, ignore_errors=True)
    return {
        "processes": processes,
        "calls": calls,
        "seconds": round(elapsed, 2),
        "recordings_per_s": round(outcome["fetched"] / elapsed, 1),
        "mb_per_s": round(outcome["fetched"] * size / elapsed / 1e6, 1),
        "recording_bytes": size,
        **outcome,
        "commit_lag_median": int(statistics.median(lags)) if lags else 0,
        "commit_lag_p95": int(sorted(lags)[int(0.95 * (len(lags) - 1))]) if lags else 0,
        "commit_lag_max": max(lags, default=0),
        "cpu_cores": cpu,
    }


_SERVER_PID: list[int] = []


def pids_named_server() -> list[int]:
    return [p for pid in _SERVER_PID for p in tree(pid)]


async def memory_phase(db_url: str, stamp: str, server: str, big_bytes: int) -> dict[str, Any]:
    prefix = f"fbench-{stamp}-big."
    bootstrap = stack.default_kafka().bootstrap
    await ensure_topics(
        bootstrap, [TopicSpec(prefix + t, PARTITIONS) for t in (TOPIC_INGESTED, TOPIC_FETCHED, TOPIC_FAILED)]
    )
    blob_root = OUT / f"blobs-{stamp}-big"
    port = 18220
    proc = start_service(
        [sys.executable, "-m", "services.fetcher"],
        fetcher_env(db_url, prefix, port, str(blob_root)),
        OUT / f"{stamp}-fetcher-big.log",
        f"http://127.0.0.1:{port}/readyz",
    )
    peak_main = peak_children = 0.0
    try:
        await asyncio.sleep(2)
        [(key, raw)] = events(server, 1, start=9_000_000)
        raw = raw.replace(b"/r/9000000.mp3", b"/big.wav")
        t0 = time.monotonic()
        await publish(prefix + TOPIC_INGESTED, [(key, raw)])
        watcher = asyncio.create_task(watch(prefix, 1, prefix + "fetcher", limit_s=1800))
        while not watcher.done():
            pids = tree(proc.pid)
            peak_main = max(peak_main, rss_mb(pids[0]) if pids else 0.0)
            peak_children = max(peak_children, max((rss_mb(p) for p in pids[1:]), default=0.0))
            await asyncio.sleep(0.1)
        outcome = await watcher
        elapsed = time.monotonic() - t0
    finally:
        stop_server(proc)
    outcome.pop("lag_samples")
    shutil.rmtree(blob_root, ignore_errors=True)
    for t in (TOPIC_INGESTED, TOPIC_FETCHED, TOPIC_FAILED):
        await delete_topic(bootstrap, prefix + t)
    return {
        "bytes": big_bytes,
        "seconds": round(elapsed, 1),
        "mb_per_s": round(big_bytes / elapsed / 1e6, 1),
        "peak_rss_mb_fetcher": round(peak_main, 1),
        "peak_rss_mb_largest_child": round(peak_children, 1),
        **outcome,
    }


def render(r: dict[str, Any]) -> str:
    lines = [
        f"Run {r['started']} UTC: {r['calls']} recordings of {r['phases'][0]['recording_bytes'] / 1e6:.2f} MB each "
        f"(60 s MP3, 128 kbit/s) per phase, from a local server process; fetcher concurrency 16 per process.",
        "",
        "| fetcher processes | recordings/s | MB/s | finished but uncommitted, median / p95 / max | failed | "
        "CPU cores (fetchers / recording server / postgres / kafka / whole machine) |",
        "|---|---|---|---|---|---|",
    ]
    for p in r["phases"]:
        c = p["cpu_cores"]
        lines.append(
            f"| {p['processes']} | {p['recordings_per_s']} | {p['mb_per_s']} | {p['commit_lag_median']} / "
            f"{p['commit_lag_p95']} / {p['commit_lag_max']} | {p['failed']} | {c['fetchers']} / "
            f"{c['recording server']} / {c['postgres']} / {c['kafka']} / {c['machine']} |"
        )
    m = r["memory"]
    lines += [
        "",
        f"- 1 GiB recording ({m['bytes']} bytes, WAV): fetched in {m['seconds']} s ({m['mb_per_s']} MB/s, download, "
        f"probe and store); peak RSS of the fetcher process **{m['peak_rss_mb_fetcher']} MB**, of its probe worker "
        f"{m['peak_rss_mb_largest_child']} MB (sampled every 100 ms).",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--big-bytes", type=int, default=1024**3)
    args = parser.parse_args()
    stack.ensure_postgres()
    stack.default_kafka().start()
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    db_url = asyncio.run(fresh_database("callpipe_bench_fetcher", ["fetcher"]))
    server_url = f"http://127.0.0.1:{SERVER_PORT}"
    server = start_service(
        [
            sys.executable,
            "-m",
            "bench.recording_server",
            "--port",
            str(SERVER_PORT),
            "--big-bytes",
            str(args.big_bytes),
        ],
        {},
        OUT / f"{stamp}-recording-server.log",
        f"{server_url}/healthz",
    )
    _SERVER_PID.append(server.pid)
    results: dict[str, Any] = {"started": stamp, "calls": args.calls, "phases": []}
    try:
        for processes in (1, 2):
            os.sync()
            phase = asyncio.run(throughput_phase(db_url, processes, args.calls, stamp, server_url))
            log(json.dumps(phase))
            results["phases"].append(phase)
        os.sync()
        results["memory"] = asyncio.run(memory_phase(db_url, stamp, server_url, args.big_bytes))
        log(json.dumps(results["memory"]))
    finally:
        stop_server(server)
    (OUT / f"fetcher-{stamp}.json").write_text(json.dumps(results, indent=2))
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
