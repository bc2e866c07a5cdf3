"""Client throughput benchmark (``make bench``): calls per second through the Python client and
the ``callpipe`` CLI against the local gateway (its own process, one worker, as ``make up`` runs
it), side by side with a bare loop that POSTs the same batches.

Phase A, no rate limit in the way (``--reps`` rounds, the variants interleaved in each round,
fresh call ids every time; medians reported):
  raw      httpx, batches of 50 encoded and POSTed 4 at a time, answers not even read
  library  ``AsyncClient.submit_calls`` (validation, batching, outcomes), concurrency 4
  journal  the same with a journal (an fsynced record before every request)
  cli      ``callpipe --json submit calls.csv``, the whole process: reading and validating the
           CSV first, then submitting with its journal
Phase B, the partner's rate limit lowered to 120 requests/minute (so 429s happen):
  the CLI on 10,000 calls in one go, and the same interrupted like the e2e test (SIGKILL at 30%,
  Ctrl-C at 65%, then run to the end), wall time over the three runs.

Every accepted call is counted in the gateway's ledger, not inferred from answers.

Usage: python -m bench.client_bench [--calls 10000] [--reps 3] [--skip-rate-limited]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from callpipe_client import AsyncClient, ClientConfig

from bench.common import OUT, fresh_database, log, start_service, stop_server
from deploy.local import stack
from services.gateway.security import issue_credential, new_partner_id
from tests.factories import call_item
from tests.support.call_files import write_calls_csv
from tests.support.infra import free_port

DB = "callpipe_bench_client"
INGEST = "/api/v1/partner/ingest/batch-call"
CALLPIPE = str(Path(sys.executable).with_name("callpipe"))


def expect(condition: bool, detail: Any) -> None:
    if not condition:
        raise SystemExit(f"benchmark check failed: {detail}")


def prepare_csv(path: Path, count: int) -> Path:
    """A fresh input file (new call ids) with no journal from an earlier run."""
    write_calls_csv(path, count)
    Path(str(path) + ".journal").unlink(missing_ok=True)
    return path


async def partner(url: str, rate_limit: int) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        partner_id, cred = new_partner_id(), issue_credential()
        await conn.execute(
            "INSERT INTO gateway.partners (partner_id, name, rate_limit_per_minute) VALUES ($1, $2, $3)",
            partner_id,
            f"Client benchmark ({rate_limit}/min)",
            rate_limit,
        )
        await conn.execute(
            "INSERT INTO gateway.api_credentials (api_key, partner_id, secret_sha256) VALUES ($1, $2, $3)",
            cred.api_key,
            partner_id,
            cred.secret_sha256,
        )
    finally:
        await conn.close()
    return {"partner_id": partner_id, "api_key": cred.api_key, "api_secret": cred.api_secret}


async def ledger_count(url: str, partner_id: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM gateway.calls WHERE partner_id = $1", partner_id))
    finally:
        await conn.close()


def items(count: int) -> list[dict[str, Any]]:
    prefix = uuid.uuid4().hex[:8]
    return [call_item(f"b-{prefix}-{i:06d}") for i in range(count)]


async def raw(base_url: str, creds: dict[str, str], calls: list[dict[str, Any]]) -> float:
    headers = {
        "content-type": "application/json",
        "x-api-key": creds["api_key"],
        "x-api-secret": creds["api_secret"],
        "x-tenant-id": "bench-tenant",
        "x-sub-tenant-id": "bench-subtenant",
    }
    batches = [calls[i : i + 50] for i in range(0, len(calls), 50)]
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        queue = list(reversed(batches))

        async def worker() -> None:
            while queue:
                batch = queue.pop()
                response = await http.post(INGEST, content=json.dumps({"data": batch}).encode(), headers=headers)
                response.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(4)))
    return time.monotonic() - started


def config(base_url: str, creds: dict[str, str]) -> ClientConfig:
    return ClientConfig(
        base_url=base_url,
        api_key=creds["api_key"],
        api_secret=creds["api_secret"],
        tenant_id="bench-tenant",
        subtenant_id="bench-subtenant",
    )


async def library(base_url: str, creds: dict[str, str], calls: list[dict[str, Any]], journal: Path | None) -> float:
    started = time.monotonic()
    async with AsyncClient(config(base_url, creds)) as client:
        report = await client.submit_calls(calls, concurrency=4, journal=journal)
    expect(report.counts["accepted"] == len(calls), report.counts)
    return time.monotonic() - started


def cli_env(base_url: str, creds: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLPIPE_")}
    env.update(
        CALLPIPE_BASE_URL=base_url,
        CALLPIPE_API_KEY=creds["api_key"],
        CALLPIPE_API_SECRET=creds["api_secret"],
        CALLPIPE_TENANT_ID="bench-tenant",
        CALLPIPE_SUBTENANT_ID="bench-subtenant",
    )
    return env


async def cli(
    env: dict[str, str], csv_path: Path, stop: tuple[int, float] | None = None, count: Any = None
) -> tuple[float, int, dict[str, Any] | None]:
    """One ``callpipe submit`` process; with ``stop`` = (signal, fraction), sent once the ledger
    holds that fraction of the file."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        CALLPIPE,
        "--json",
        "submit",
        str(csv_path),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    communicate = asyncio.create_task(proc.communicate())
    if stop is not None:
        sig, target = stop
        while True:
            if await count() >= target or proc.returncode is not None:
                break
            await asyncio.sleep(0.02)
        proc.send_signal(sig)
    out, _ = await communicate
    summary = json.loads(out) if out.strip() else None
    return time.monotonic() - started, proc.returncode or 0, summary


async def run(args: argparse.Namespace) -> dict[str, Any]:
    OUT.mkdir(parents=True, exist_ok=True)
    work = OUT / "client"
    work.mkdir(exist_ok=True)
    url = await fresh_database(DB, ["gateway"])
    fast = await partner(url, 100_000_000)
    limited = await partner(url, 120)
    port = free_port()
    env = {
        "DATABASE_URL": url,
        "KAFKA_BOOTSTRAP_SERVERS": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        "KAFKA_TOPIC_PREFIX": f"benchclient{uuid.uuid4().hex[:6]}.",
        "GATEWAY_PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }
    gateway = start_service(
        [sys.executable, "-m", "services.gateway"], env, work / "gateway.log", f"http://127.0.0.1:{port}/healthz"
    )
    base = f"http://127.0.0.1:{port}"
    results: dict[str, Any] = {"calls": args.calls, "reps": args.reps, "phase_a": {}, "phase_b": {}}
    try:
        # Warm-up: connections, caches, the outbox relay.
        await library(base, fast, items(1000), None)
        times: dict[str, list[float]] = {"raw": [], "library": [], "journal": [], "cli": []}
        for rep in range(args.reps):
            before = await ledger_count(url, fast["partner_id"])
            times["raw"].append(await raw(base, fast, items(args.calls)))
            times["library"].append(await library(base, fast, items(args.calls), None))
            journal = work / f"journal-{rep}-{uuid.uuid4().hex[:6]}"
            times["journal"].append(await library(base, fast, items(args.calls), journal))
            csv_path = await asyncio.to_thread(prepare_csv, work / f"calls-{rep}.csv", args.calls)
            elapsed, code, summary = await cli(cli_env(base, fast), csv_path)
            expect(code == 0 and summary is not None and summary["accepted"] == args.calls, summary)
            times["cli"].append(elapsed)
            after = await ledger_count(url, fast["partner_id"])
            expect(after - before == 4 * args.calls, (before, after))
            log(f"round {rep + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))
        raw_median = statistics.median(times["raw"])
        for name, values in times.items():
            median = statistics.median(values)
            results["phase_a"][name] = {
                "seconds": [round(v, 2) for v in values],
                "median_s": round(median, 2),
                "calls_per_s": round(args.calls / median),
                "vs_raw": round(raw_median / median, 2),
            }

        if not args.skip_rate_limited:
            env_limited = cli_env(base, limited)
            one = await asyncio.to_thread(prepare_csv, work / "limited-one.csv", args.calls)
            elapsed, code, summary = await cli(env_limited, one)
            expect(code == 0 and summary is not None, summary)
            results["phase_b"]["uninterrupted"] = {
                "seconds": round(elapsed, 1),
                "calls_per_s": round(args.calls / elapsed),
                "rate_limit_waits": summary["rate_limited"],
            }
            await asyncio.sleep(65)  # let the partner's bucket fill up again: same start for both
            resumed = await asyncio.to_thread(prepare_csv, work / "limited-resumed.csv", args.calls)
            start_count = await ledger_count(url, limited["partner_id"])

            async def count() -> int:
                return await ledger_count(url, limited["partner_id"]) - start_count

            runs = [
                await cli(env_limited, resumed, (signal.SIGKILL, 0.3 * args.calls), count),
                await cli(env_limited, resumed, (signal.SIGINT, 0.65 * args.calls), count),
                await cli(env_limited, resumed),
            ]
            expect([r[1] for r in runs] == [-9, 130, 0], [r[1] for r in runs])
            expect(await count() == args.calls, "the ledger does not hold every call once")
            total = sum(r[0] for r in runs)
            results["phase_b"]["interrupted_twice"] = {
                "seconds": [round(r[0], 1) for r in runs],
                "total_s": round(total, 1),
                "calls_per_s": round(args.calls / total),
                "recovered_after_kill": runs[1][2]["recovered"] if runs[1][2] else None,
                "rate_limit_waits": [r[2]["rate_limited"] if r[2] else None for r in runs],
            }
    finally:
        stop_server(gateway)
    return results


def render(r: dict[str, Any]) -> str:
    lines = [
        f"Phase A: {r['calls']:,} calls, {r['reps']} rounds, no rate limit (median; vs raw = raw time / this time)",
        "",
        "| variant | median | calls/s | vs raw | runs (s) |",
        "|---|---|---|---|---|",
    ]
    for name, v in r["phase_a"].items():
        lines.append(f"| {name} | {v['median_s']} s | {v['calls_per_s']:,} | {v['vs_raw']} | {v['seconds']} |")
    b = r.get("phase_b") or {}
    if b:
        one, three = b["uninterrupted"], b["interrupted_twice"]
        lines += [
            "",
            "Phase B: the partner limited to 120 requests/minute",
            "",
            "| run | wall time | calls/s | 429 waits |",
            "|---|---|---|---|",
            f"| one go | {one['seconds']} s | {one['calls_per_s']} | {one['rate_limit_waits']} |",
            f"| SIGKILL at 30%, Ctrl-C at 65%, resumed ({three['seconds']} s) | {three['total_s']} s | "
            f"{three['calls_per_s']} | {three['rate_limit_waits']} |",
        ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--skip-rate-limited", action="store_true")
    args = parser.parse_args()
    stack.ensure_postgres()
    results = asyncio.run(run(args))
    (OUT / "client.json").write_text(json.dumps(results, indent=2))
    sys.stdout.write(render(results) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
