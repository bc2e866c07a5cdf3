"""Status read-model benchmark (``make bench``): how many ``calls.ingested.v1`` events per second
one projector process folds into the gateway's status tables, as the chart deploys it (the
gateway's code with ``GATEWAY_READ_MODEL_ENABLED=true``, no API traffic).

The events are what the gateway publishes for the spec's example call, each with its own call
id and the default analysis-configuration snapshot. They are all on Kafka before the projector
starts; the time from its first folded row to the last is the figure.

Usage: python -m bench.read_model_bench [--events 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg

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
from schemas.analysis import DEFAULT_CONFIG, ConfigSnapshot
from schemas.events import TOPIC_INGESTED, encode_call_ingested, new_event_ids
from services.common.kafka import TopicSpec, ensure_topics, make_producer
from tests.factories import call_item

PORT = 18400
PARTITIONS = 6


async def publish(topic: str, count: int) -> None:
    snapshot = ConfigSnapshot(config_id=DEFAULT_CONFIG.config_id(), config=DEFAULT_CONFIG, source="default")
    config = snapshot.model_dump(mode="json")
    producer = make_producer(stack.default_kafka().bootstrap, "bench")
    await producer.start()
    try:
        for start in range(0, count, 5000):
            ids = new_event_ids(min(5000, count - start))
            sends = []
            for i, event_id in enumerate(ids):
                item = call_item(f"rm-{start + i:08d}")
                raw = encode_call_ingested(
                    event_id=event_id,
                    occurred_at=datetime.now(UTC),
                    partner_id="ptn_bench",
                    tenant_id="bench-tenant",
                    subtenant_id="bench-subtenant",
                    source="gateway",
                    call=item["call"],
                    agent=item["agent"],
                    customer=item["customer"],
                    callback_url=item["callback_url"],
                    metadata=item["metadata"],
                    custom_fields=None,
                    extra={"industry": item["industry"], "function": item["function"]},
                    analysis_config=config,
                )
                sends.append(await producer.send(topic, raw, key=f"ptn_bench/{item['call']['id']}".encode()))
            await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def folded(db_url: str) -> int:
    conn = await asyncpg.connect(db_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM gateway.call_status"))
    finally:
        await conn.close()


async def run(events: int) -> dict[str, Any]:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    db_url = await fresh_database("callpipe_bench_read_model", ["gateway"])
    prefix = f"rmbench-{stamp}."
    bootstrap = stack.default_kafka().bootstrap
    await ensure_topics(bootstrap, [TopicSpec(prefix + TOPIC_INGESTED, PARTITIONS)])
    t0 = time.monotonic()
    await publish(prefix + TOPIC_INGESTED, events)
    log(f"published {events} events in {time.monotonic() - t0:.1f} s")
    os.sync()
    env = {
        "DATABASE_URL": db_url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
        "GATEWAY_PORT": str(PORT),
        "GATEWAY_WORKERS": "1",
        "GATEWAY_READ_MODEL_ENABLED": "true",
        "LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.to_thread(
        start_service,
        [sys.executable, "-m", "services.gateway"],
        env,
        OUT / f"{stamp}-read-model.log",
        f"http://127.0.0.1:{PORT}/healthz",
    )
    meter = CpuMeter({"projector": lambda: tree(proc.pid), "postgres": lambda: pids_named("postgres")})
    try:
        while True:  # the clock starts at the first folded row: start-up and joining excluded
            if await folded(db_url):
                break
            await asyncio.sleep(0.05)
        meter.start()
        started, first = time.monotonic(), await folded(db_url)
        done = first
        while done < events and time.monotonic() - started < 1800:
            await asyncio.sleep(0.5)
            done = await folded(db_url)
        elapsed = time.monotonic() - started
        cpu = meter.stop()
        rss = peak_rss_mb(proc.pid)
    finally:
        stop_server(proc)
        await delete_topic(bootstrap, prefix + TOPIC_INGESTED)
    return {
        "started": stamp,
        "events": events,
        "folded": done,
        "seconds": round(elapsed, 1),
        "events_per_s": round((done - first) / elapsed, 1),
        "cpu_cores": cpu,
        "peak_rss_mb": round(rss, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    stack.ensure_postgres()
    stack.default_kafka().start()
    OUT.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(run(args.events))
    (OUT / f"read-model-{result['started']}.json").write_text(json.dumps(result, indent=2))
    c = result["cpu_cores"]
    print(
        f"Run {result['started']} UTC: {result['events']} calls.ingested.v1 events (the spec's example call with "
        "the default configuration snapshot) already on Kafka; one projector process (the gateway with "
        "GATEWAY_READ_MODEL_ENABLED=true, 1 worker, no API traffic).\n\n"
        "| events folded | seconds | events/s | CPU cores (projector / postgres / whole machine) | peak RSS MiB |\n"
        "|---|---|---|---|---|\n"
        f"| {result['folded']} | {result['seconds']} | **{result['events_per_s']}** | "
        f"{c['projector']} / {c['postgres']} / {c['machine']} | {result['peak_rss_mb']} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
