"""Analyzer benchmark (``make bench``): calls per minute with 1 and 2 analyzer processes, the
built-in analysis engine's time per call, and peak memory of the analyzer and its recognition
worker.

The calls are the festival scripts of ``tests/support/audio.py`` (two voices), rendered stereo
(agent left, customer right) and encoded as MP3, stored in a filesystem blob store as the fetcher
would leave them. ``calls.fetched.v1`` events for them, each with its own call id, are published
straight to Kafka, and the real service (``python -m services.analyzer``, default engines: one
PocketSphinx worker per process) turns them into ``calls.analyzed.v1``.

Analysis time is measured in this process, on the transcripts the analyzer published: the
built-in engine run over each one, median of several rounds.

Usage: python -m bench.analyzer_bench [--calls 40]
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
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from bench.common import (
    OUT,
    CpuMeter,
    delete_topic,
    fresh_database,
    log,
    peak_rss_mb,
    pids_named,
    start_service,
    stop_server,
    tree,
)
from deploy.local import stack
from schemas.analysis import DEFAULT_CONFIG
from schemas.events import (
    TOPIC_ANALYZED,
    TOPIC_FAILED,
    TOPIC_FETCHED,
    CallAnalyzed,
    CallFetched,
    dump_event,
    parse_event,
)
from services.analyzer.analysis import AnalysisInput, AnalysisSettings, create_analysis_engine
from services.common.blobs import FilesystemBlobStore, sha256_of
from services.common.kafka import TopicSpec, ensure_topics, make_producer
from tests.factories import fetched_event, ingested_event
from tests.support import audio

PARTITIONS = 6
PORT = 18300


async def store_recordings(blob_root: Path) -> list[tuple[str, str, int, float]]:
    """Every script as a stereo MP3 in the blob store: (blob uri, sha256, bytes, seconds)."""
    store = FilesystemBlobStore(blob_root)
    stored = []
    for name, turns in audio.SCRIPTS.items():
        call = audio.render_conversation(turns, stereo=True)
        data = audio.encode(call, "mp3")
        spool = blob_root / f"in-{name}.mp3"
        spool.write_bytes(data)
        digest = sha256_of(spool)
        blob = await store.put_file(spool, digest, len(data))
        stored.append((blob.uri, digest, len(data), call.duration_s))
    return stored


def fetched_events(recordings: list[tuple[str, str, int, float]], count: int, tag: str) -> list[CallFetched]:
    out = []
    for i in range(count):
        uri, digest, size, seconds = recordings[i % len(recordings)]
        out.append(
            fetched_event(
                ingested_event(f"ab-{tag}-{i:05d}", partner_id="ptn_bench"),
                blob_uri=uri,
                sha256=digest,
                size=size,
                duration_s=seconds,
                sample_rate=audio.SAMPLE_RATE,
            )
        )
    return out


async def publish(topic: str, events: list[CallFetched]) -> None:
    producer = make_producer(stack.default_kafka().bootstrap, "bench")
    await producer.start()
    try:
        sends = [await producer.send(topic, dump_event(e), key=f"{e.partner_id}/{e.call_id}".encode()) for e in events]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def collect(prefix: str, expected: int, limit_s: float) -> tuple[list[CallAnalyzed], dict[str, int]]:
    consumer = AIOKafkaConsumer(
        prefix + TOPIC_ANALYZED,
        prefix + TOPIC_FAILED,
        bootstrap_servers=stack.default_kafka().bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        metadata_max_age_ms=1000,
    )
    await consumer.start()
    analyzed: list[CallAnalyzed] = []
    failures: dict[str, int] = {}
    deadline = time.monotonic() + limit_s
    try:
        while len(analyzed) + sum(failures.values()) < expected and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for m in messages:
                    event = parse_event(m.value)
                    if isinstance(event, CallAnalyzed):
                        analyzed.append(event)
                    else:
                        code = getattr(event.payload, "code", "?")
                        failures[code] = failures.get(code, 0) + 1
    finally:
        await consumer.stop()
    return analyzed, failures


async def throughput_phase(
    db_url: str,
    processes: int,
    calls: int,
    *,
    stamp: str,
    blob_root: Path,
    recordings: list[tuple[str, str, int, float]],
) -> tuple[dict[str, Any], list[CallAnalyzed]]:
    prefix = f"abench-{stamp}-{processes}p."
    bootstrap = stack.default_kafka().bootstrap
    topics = (TOPIC_FETCHED, TOPIC_ANALYZED, TOPIC_FAILED)
    await ensure_topics(bootstrap, [TopicSpec(prefix + t, PARTITIONS) for t in topics])
    procs = []
    for i in range(processes):
        port = PORT + 10 * processes + i
        env = {
            "DATABASE_URL": db_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_TOPIC_PREFIX": prefix,
            "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
            "ANALYZER_PORT": str(port),
            "ANALYZER_SESSION_TIMEOUT_MS": "6000",
            "BLOB_ROOT": str(blob_root),
            "LOG_LEVEL": "WARNING",
        }
        procs.append(
            start_service(
                [sys.executable, "-m", "services.analyzer"],
                env,
                OUT / f"{stamp}-analyzer-{processes}p-{i}.log",
                f"http://127.0.0.1:{port}/readyz",
            )
        )
    try:
        await asyncio.sleep(8 if processes > 1 else 2)  # every member joined and assigned
        events = fetched_events(recordings, calls, f"{processes}p")
        audio_s = sum(e.payload.duration_s for e in events)
        meter = CpuMeter(
            {
                "analyzers": lambda: [p for proc in procs for p in tree(proc.pid)],
                "postgres": lambda: pids_named("postgres"),
                "kafka": lambda: [stack.default_kafka().pid() or 0],
            }
        )
        meter.start()
        t0 = time.monotonic()
        await publish(prefix + TOPIC_FETCHED, events)
        analyzed, failures = await collect(prefix, calls, limit_s=3600)
        elapsed = time.monotonic() - t0
        cpu = meter.stop()
        # High-water marks: the service process itself, and the largest of its children (the
        # recognition worker; the forkserver is tiny).
        peaks = [
            (peak_rss_mb(pids[0]), max((peak_rss_mb(p) for p in pids[1:]), default=0.0))
            for pids in (tree(proc.pid) for proc in procs)
        ]
    finally:
        for proc in procs:
            stop_server(proc)
    for t in topics:
        await delete_topic(bootstrap, prefix + t)
    return {
        "processes": processes,
        "calls": calls,
        "audio_s": round(audio_s, 1),
        "seconds": round(elapsed, 1),
        "calls_per_min": round(60 * len(analyzed) / elapsed, 1),
        "audio_min_per_min": round(audio_s / elapsed, 2),
        "analyzed": len(analyzed),
        "failures": failures,
        "cpu_cores": cpu,
        "peak_rss_mb_service": round(max(p[0] for p in peaks), 1),
        "peak_rss_mb_worker": round(max(p[1] for p in peaks), 1),
    }, analyzed


async def analysis_time(analyzed: list[CallAnalyzed], rounds: int = 5) -> dict[str, float]:
    """The built-in engine's time per call over the published transcripts (milliseconds)."""
    engine = create_analysis_engine(AnalysisSettings())
    try:
        inputs = [
            AnalysisInput(
                transcript=a.payload.transcript,
                config=snapshot.config if (snapshot := a.payload.ingested.analysis_config) else DEFAULT_CONFIG,
                duration_s=a.payload.audio.duration_s,
                speech_s=a.payload.audio.speech_s,
            )
            for a in analyzed
        ]
        times = []
        for _ in range(rounds):
            for item in inputs:
                t0 = time.perf_counter()
                await engine.analyze(item)
                times.append(1000 * (time.perf_counter() - t0))
    finally:
        await engine.close()
    times.sort()
    words = [sum(len(s.text.split()) for s in a.payload.transcript) for a in analyzed]
    return {
        "median_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
        "words_median": statistics.median(words),
    }


def render(r: dict[str, Any]) -> str:
    phases = r["phases"]
    lines = [
        f"Run {r['started']} UTC: {r['calls']} stereo MP3 calls per phase (festival scripts, "
        f"{phases[0]['audio_s'] / r['calls']:.1f} s of audio per call on average), default engines "
        "(PocketSphinx with one recognition worker per process, built-in analysis).",
        "",
        "| analyzer processes | calls/min | audio minutes per minute | failed | CPU cores (analyzers / postgres / "
        "kafka / whole machine) | peak RSS service / recognition worker (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for p in phases:
        c = p["cpu_cores"]
        lines.append(
            f"| {p['processes']} | {p['calls_per_min']} | {p['audio_min_per_min']} | {sum(p['failures'].values())} | "
            f"{c['analyzers']} / {c['postgres']} / {c['kafka']} / {c['machine']} | "
            f"{p['peak_rss_mb_service']} / {p['peak_rss_mb_worker']} |"
        )
    a = r["analysis"]
    ratio = phases[1]["calls_per_min"] / phases[0]["calls_per_min"] if phases[0]["calls_per_min"] else 0
    lines += [
        "",
        f"- 2 processes / 1 process: **{ratio:.2f}x** calls per minute.",
        f"- Built-in analysis per call (median transcript {a['words_median']:.0f} words, in this process): "
        f"median **{a['median_ms']} ms**, p95 {a['p95_ms']} ms.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    if not audio.tools_available():
        raise SystemExit("festival and its voices are needed (deploy/local/stack.py install-test-tools)")
    stack.ensure_postgres()
    stack.default_kafka().start()
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    db_url = asyncio.run(fresh_database("callpipe_bench_analyzer", ["analyzer"]))
    blob_root = OUT / f"analyzer-blobs-{stamp}"
    blob_root.mkdir(parents=True, exist_ok=True)
    recordings = asyncio.run(store_recordings(blob_root))
    results: dict[str, Any] = {"started": stamp, "calls": args.calls, "phases": []}
    analyzed: list[CallAnalyzed] = []
    try:
        for processes in (1, 2):
            os.sync()
            phase, analyzed = asyncio.run(
                throughput_phase(db_url, processes, args.calls, stamp=stamp, blob_root=blob_root, recordings=recordings)
            )
            log(json.dumps(phase))
            results["phases"].append(phase)
        results["analysis"] = asyncio.run(analysis_time(analyzed))
        log(json.dumps(results["analysis"]))
    finally:
        shutil.rmtree(blob_root, ignore_errors=True)
    (OUT / f"analyzer-{stamp}.json").write_text(json.dumps(results, indent=2))
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
