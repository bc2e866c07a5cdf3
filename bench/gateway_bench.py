"""Gateway load benchmark (``make bench``): the real gateway against a no-op FastAPI endpoint
that only parses the same body, both loaded with vegeta on loopback in one run.

Phases (each after a short warm-up):
  1. no-op, as fast as it goes        2. gateway, as fast as it goes
  3. gateway at half of (2)'s rate    4. no-op at that same rate
Accepted calls are counted in PostgreSQL (not inferred from status codes), and the run waits
until the outbox has drained to Kafka, so the figures are for calls that are durably recorded
and published. CPU seconds per component show where the time goes.

With ``--observability`` it measures instead what metrics and tracing cost: the gateway at max rate
with both off (``METRICS_ENABLED=false``, no tracing), metrics only (the HTTP metrics middleware,
multiprocess metrics files, ``/metrics`` scraped every second as Prometheus would), and metrics
with tracing (a span per request, a trace per call, trace context stored in the outbox, spans
exported over OTLP/HTTP to a local sink, ``bench/otlp_sink.py``) with every call sampled and with
one in ten; the configurations take turns for ``--rounds`` rounds and the figures are the medians.

Usage: python -m bench.gateway_bench [--duration 20] [--workers 2] [--concurrency 32]
       python -m bench.gateway_bench --observability [--rounds 3] [--duration 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import (
    OUT,
    ROOT,
    CpuMeter,
    delete_topic,
    fresh_database,
    log,
    pids_named,
    stop_server,
    topic_size,
    tree,
)
from deploy.local import stack
from services.gateway.security import issue_credential, new_partner_id

VEGETA_VERSION = "v12.12.0"
BIN = ROOT / ".local" / "bin"
INGEST = "/api/v1/partner/ingest/batch-call"
CALLS_PER_BATCH = 50


def ensure_vegeta() -> Path:
    vegeta = BIN / "vegeta"
    if not vegeta.exists():
        log(f"installing vegeta {VEGETA_VERSION} from the Go module proxy")
        BIN.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["go", "install", f"github.com/tsenart/vegeta/v12@{VEGETA_VERSION}"],
            check=True,
            env={**os.environ, "GOBIN": str(BIN)},
        )
    return vegeta


# -- CPU accounting --------------------------------------------------------------------------


def start_server(kind: str, port: int, workers: int, env: dict[str, str], logfile: Path) -> subprocess.Popen[bytes]:
    with socket.socket() as probe_socket:
        if probe_socket.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit(f"port {port} is already in use: stop whatever listens there first")
    if kind == "gateway":
        cmd = [sys.executable, "-m", "services.gateway"]
        env = {**env, "GATEWAY_PORT": str(port), "GATEWAY_WORKERS": str(workers)}
    else:
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.noop_app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
            "--no-server-header",
        ]
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    probe = "/healthz" if kind == "gateway" else "/openapi.json"
    stack.wait_healthy(f"http://127.0.0.1:{port}{probe}", proc, 60, f"{kind} (see {logfile})")
    time.sleep(1.0 if workers > 1 else 0.2)  # let every worker finish its startup
    return proc


def attack(
    vegeta: Path, url: str, headers: dict[str, str], *, rate: int, duration: float, concurrency: int, results: Path
) -> dict[str, Any]:
    """vegeta at ``rate`` requests/s (0: as fast as ``concurrency`` connections allow)."""
    targets = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "targets.py"), url + INGEST, json.dumps(headers)], stdout=subprocess.PIPE
    )
    cmd = [
        str(vegeta),
        "attack",
        "-format=json",
        "-lazy",
        f"-duration={duration}s",
        "-timeout=30s",
        f"-rate={rate}/s" if rate else "-rate=0",
        f"-max-workers={concurrency}",
        f"-workers={min(concurrency, 8)}",
        f"-output={results}",
    ]
    subprocess.run(cmd, stdin=targets.stdout, check=True)
    targets.kill()
    targets.wait()
    report = subprocess.run([str(vegeta), "report", "-type=json", str(results)], capture_output=True, check=True)
    parsed: dict[str, Any] = json.loads(report.stdout)
    return parsed


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    lat = report["latencies"]
    ms = 1e-6
    return {
        "requests": report["requests"],
        "ok_per_s": round(report["throughput"], 1),
        "success": report["success"],
        "status_codes": report["status_codes"],
        "p50_ms": round(lat["50th"] * ms, 1),
        "p90_ms": round(lat["90th"] * ms, 1),
        "p99_ms": round(lat["99th"] * ms, 1),
        "max_ms": round(lat["max"] * ms, 1),
        "errors": report.get("errors", [])[:3],
    }


# -- database and Kafka ----------------------------------------------------------------------


async def setup_database(name: str) -> tuple[str, dict[str, str]]:
    url = await fresh_database(name, ["gateway"])
    conn = await asyncpg.connect(url)
    try:
        partner_id, cred = new_partner_id(), issue_credential()
        await conn.execute(
            "INSERT INTO gateway.partners (partner_id, name, rate_limit_per_minute) VALUES ($1, $2, $3)",
            partner_id,
            "Benchmark partner",
            100_000_000,
        )
        await conn.execute(
            "INSERT INTO gateway.api_credentials (api_key, partner_id, secret_sha256) VALUES ($1, $2, $3)",
            cred.api_key,
            partner_id,
            cred.secret_sha256,
        )
    finally:
        await conn.close()
    headers = {
        "content-type": "application/json",
        "x-api-key": cred.api_key,
        "x-api-secret": cred.api_secret,
        "x-tenant-id": "bench-tenant",
        "x-sub-tenant-id": "bench-subtenant",
    }
    return url, headers


async def db_counts(url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(url)
    try:
        calls = await conn.fetchval("SELECT count(*) FROM gateway.calls")
        outbox = await conn.fetchval("SELECT coalesce(sum(cardinality(keys)), 0) FROM gateway.outbox")
    finally:
        await conn.close()
    return int(calls), int(outbox)


async def wait_drained(url: str, limit_s: float = 300) -> float:
    started = time.monotonic()
    while (await db_counts(url))[1] > 0:
        if time.monotonic() - started > limit_s:
            raise SystemExit("outbox did not drain")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


# -- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per measured phase")
    parser.add_argument("--half-duration", type=float, default=60.0, help="seconds of the half-load phase")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers for both servers")
    parser.add_argument("--concurrency", type=int, default=32, help="connections for the max-rate phases")
    parser.add_argument("--keep-results", action="store_true", help="keep vegeta's raw results in .local/bench")
    parser.add_argument("--observability", action="store_true", help="metrics and tracing off vs on, side by side")
    parser.add_argument("--rounds", type=int, default=3, help="off/on rounds with --observability")
    args = parser.parse_args()

    vegeta = ensure_vegeta()
    stack.ensure_postgres()
    kafka = stack.default_kafka()
    kafka.start()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    OUT.mkdir(parents=True, exist_ok=True)
    db_url, headers = asyncio.run(setup_database("callpipe_bench_obs" if args.observability else "callpipe_bench"))
    prefix = f"bench-{stamp}."
    topic = f"{prefix}calls.ingested.v1"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        "DB_POOL_MAX_SIZE": "10",
        # API pods as the chart deploys them: the status read model runs in its own Deployment.
        # GATEWAY_READ_MODEL_ENABLED=true in the environment measures it inside the API instead.
        "GATEWAY_READ_MODEL_ENABLED": os.environ.get("GATEWAY_READ_MODEL_ENABLED", "false"),
    }
    groups_base = {"kafka": lambda: [kafka.pid() or 0]}

    results: dict[str, Any] = {"started": stamp, "args": vars(args), "machine": {"cpus": os.cpu_count()}}

    def phase(
        name: str, kind: str, port: int, proc: subprocess.Popen[bytes], rate: int, *, duration: float = args.duration
    ) -> dict[str, Any]:
        url = f"http://127.0.0.1:{port}"
        # Start from a quiet disk: without this, the kernel's writeback of the previous phase's
        # dirty pages (vm.dirty_expire_centisecs, 30 s here) lands inside this one and stalls
        # PostgreSQL's commit fsyncs.
        os.sync()
        if args.warmup:
            attack(
                vegeta,
                url,
                headers,
                rate=rate,
                duration=args.warmup,
                concurrency=args.concurrency,
                results=OUT / f"{stamp}-{name}-warmup.bin",
            )
        meter = CpuMeter({**groups_base, kind: lambda: tree(proc.pid), "postgres": lambda: pids_named("postgres")})
        before_calls = asyncio.run(db_counts(db_url))[0] if kind == "gateway" else 0
        meter.start()
        report = attack(
            vegeta,
            url,
            headers,
            rate=rate,
            duration=duration,
            concurrency=args.concurrency,
            results=OUT / f"{stamp}-{name}.bin",
        )
        summary = summarize(report)
        summary["cpu_cores"] = meter.stop()
        if kind == "gateway":
            after_calls = asyncio.run(db_counts(db_url))[0]
            summary["accepted_calls"] = after_calls - before_calls
            summary["accepted_calls_per_s"] = round((after_calls - before_calls) / report["duration"] * 1e9, 1)
            summary["outbox_backlog_at_end"] = asyncio.run(db_counts(db_url))[1]
            summary["outbox_drain_s"] = round(asyncio.run(wait_drained(db_url)), 2)
        else:
            summary["parsed_calls_per_s"] = round(summary["ok_per_s"] * CALLS_PER_BATCH, 1)
        log(f"{name}: {json.dumps(summary)}")
        return summary

    noop_port, gw_port = 18081, 18080
    if args.observability:
        results["observability"] = observability_rounds(args, env, gw_port, stamp, phase)
        results["observability_configs"] = list(results["observability"]["runs"])
        results["calls_recorded"] = asyncio.run(db_counts(db_url))[0]
        asyncio.run(delete_topic(kafka.bootstrap, topic))
        (OUT / f"gateway-observability-{stamp}.json").write_text(json.dumps(results, indent=2))
        print(render_observability(results))
        for f in OUT.glob(f"{stamp}-*.bin"):
            f.unlink()
        return 0
    noop = start_server("noop", noop_port, args.workers, env, OUT / f"{stamp}-noop.log")
    try:
        results["noop_max"] = phase("noop_max", "noop", noop_port, noop, 0)
    finally:
        stop_server(noop)
    gateway = start_server("gateway", gw_port, args.workers, env, OUT / f"{stamp}-gateway.log")
    try:
        results["gateway_max"] = phase("gateway_max", "gateway", gw_port, gateway, 0)
        half = max(1, int(results["gateway_max"]["ok_per_s"] / 2))
        results["half_rate"] = half
        # Long enough to include this load's own writeback bursts (every 30 s) in its tail.
        results["gateway_half"] = phase("gateway_half", "gateway", gw_port, gateway, half, duration=args.half_duration)
    finally:
        stop_server(gateway)
    noop = start_server("noop", noop_port, args.workers, env, OUT / f"{stamp}-noop.log")
    try:
        results["noop_half"] = phase("noop_half", "noop", noop_port, noop, results["half_rate"])
    finally:
        stop_server(noop)

    total_calls = asyncio.run(db_counts(db_url))[0]
    results["events_on_kafka"] = asyncio.run(topic_size(kafka.bootstrap, topic))
    results["calls_recorded"] = total_calls
    results["ratio_gateway_to_noop"] = round(
        results["gateway_max"]["accepted_calls_per_s"] / results["noop_max"]["parsed_calls_per_s"], 3
    )
    asyncio.run(delete_topic(kafka.bootstrap, topic))
    (OUT / f"gateway-{stamp}.json").write_text(json.dumps(results, indent=2))
    print(render(results))
    if not args.keep_results:
        for f in OUT.glob(f"{stamp}-*.bin"):
            f.unlink()
    return 0


def _scraper(url: str, stop: threading.Event, counts: dict[str, int]) -> None:
    """Fetch ``/metrics`` every second, as Prometheus would."""
    while not stop.wait(1.0):
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
                response.read()
            counts["scrapes"] += 1
        except OSError:
            counts["failed"] += 1


def observability_rounds(
    args: argparse.Namespace, env: dict[str, str], port: int, stamp: str, phase: Any
) -> dict[str, Any]:
    """The gateway at max rate with metrics and tracing off, then on, ``args.rounds`` times."""
    sink_port = 18090
    sink = subprocess.Popen([sys.executable, "-m", "bench.otlp_sink", str(sink_port)], cwd=ROOT, start_new_session=True)
    exporting = {"METRICS_ENABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}"}
    configs = {
        "off": {"METRICS_ENABLED": "false", "TRACING_ENABLED": "false"},
        "metrics only": {"METRICS_ENABLED": "true", "TRACING_ENABLED": "false"},
        # Every call traced: the worst case.
        "on": {**exporting, "OTEL_TRACES_SAMPLER": "parentbased_always_on"},
        # One call in ten traced (the sampling decision is the gateway's, per call), as production
        # would run it at this rate; the others still carry their (unsampled) context.
        "on, 10% sampled": {
            **exporting,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
        },
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    try:
        for round_no in range(args.rounds):
            for name, extra in configs.items():
                server_env = {k: v for k, v in env.items() if not k.startswith(("OTEL_", "METRICS_", "TRACING_"))}
                gateway = start_server(
                    "gateway", port, args.workers, {**server_env, **extra}, OUT / f"{stamp}-{name}.log"
                )
                stop, counts = threading.Event(), {"scrapes": 0, "failed": 0}
                scraper = threading.Thread(target=_scraper, args=(f"http://127.0.0.1:{port}/metrics", stop, counts))
                if name != "off":
                    scraper.start()
                try:
                    label = name.replace(" ", "").replace(",", "-").replace("%", "")
                    summary = phase(f"{label}-{round_no}", "gateway", port, gateway, 0)
                finally:
                    stop.set()
                    if scraper.is_alive():
                        scraper.join()
                    stop_server(gateway)
                summary["scrapes"] = counts["scrapes"]
                runs[name].append(summary)
    finally:
        sink.terminate()
        sink.wait()
    medians: dict[str, Any] = {}
    for name, summaries in runs.items():
        medians[name] = {
            key: statistics.median(s[key] for s in summaries)
            for key in ("accepted_calls_per_s", "ok_per_s", "p50_ms", "p90_ms", "p99_ms")
        }
        medians[name]["server_cores"] = statistics.median(s["cpu_cores"]["gateway"] for s in summaries)
        medians[name]["runs"] = [s["accepted_calls_per_s"] for s in summaries]
    off = medians["off"]["accepted_calls_per_s"]
    medians["ratio_to_off"] = {name: round(medians[name]["accepted_calls_per_s"] / off, 3) for name in configs}
    return {"runs": runs, "medians": medians}


def render_observability(r: dict[str, Any]) -> str:
    m = r["observability"]["medians"]
    lines = [
        f"Run {r['started']} UTC, {r['args']['workers']} uvicorn workers, {r['args']['concurrency']} connections, "
        f"{r['args']['duration']:.0f} s per phase, {r['args']['rounds']} rounds taking turns, "
        f"{CALLS_PER_BATCH}-call batches; medians.",
        "",
        "| metrics and tracing | calls/s | batches/s | p50 ms | p90 ms | p99 ms | gateway CPU cores "
        "| calls/s per round |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in r["observability_configs"]:
        s = m[name]
        lines.append(
            f"| {name} | {s['accepted_calls_per_s']:.0f} | {s['ok_per_s']:.1f} | {s['p50_ms']} | {s['p90_ms']} "
            f"| {s['p99_ms']} | {s['server_cores']} | {', '.join(f'{v:.0f}' for v in s['runs'])} |"
        )
    lines += ["", "calls/s relative to off: " + ", ".join(f"{k} {v}" for k, v in m["ratio_to_off"].items())]
    return "\n".join(lines)


def render(r: dict[str, Any]) -> str:
    g, n, gh, nh = r["gateway_max"], r["noop_max"], r["gateway_half"], r["noop_half"]
    lines = [
        f"Run {r['started']} UTC, {r['args']['workers']} uvicorn workers per server, "
        f"{r['args']['concurrency']} connections at max rate, {r['args']['duration']:.0f} s per phase "
        f"({r['args']['half_duration']:.0f} s at half load), "
        f"{CALLS_PER_BATCH}-call batches.",
        "",
        "| phase | batches/s | calls/s | p50 ms | p90 ms | p99 ms | success "
        "| CPU cores (server / postgres / kafka / whole machine) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s, kind in (
        ("no-op, max rate", n, "noop"),
        ("gateway, max rate", g, "gateway"),
        (f"gateway, {r['half_rate']}/s (half)", gh, "gateway"),
        (f"no-op, {r['half_rate']}/s", nh, "noop"),
    ):
        calls = s.get("accepted_calls_per_s", s.get("parsed_calls_per_s"))
        cpu = s["cpu_cores"]
        lines.append(
            f"| {name} | {s['ok_per_s']} | {calls} | {s['p50_ms']} | {s['p90_ms']} | {s['p99_ms']} | "
            f"{s['success']:.3f} | {cpu.get(kind, 0)} / {cpu['postgres']} / {cpu['kafka']} / {cpu['machine']} |"
        )
    lines += [
        "",
        f"- accepted calls/s at max rate: **{g['accepted_calls_per_s']}** (counted in PostgreSQL); "
        f"ratio to the no-op: **{r['ratio_gateway_to_noop']}**",
        f"- p99 at half load ({r['half_rate']} batches/s): **{gh['p99_ms']} ms** "
        f"(no-op at the same rate: {nh['p99_ms']} ms)",
        f"- outbox backlog when the max-rate phase ended: {g['outbox_backlog_at_end']} events, drained in "
        f"{g['outbox_drain_s']} s; events on Kafka {r['events_on_kafka']} for {r['calls_recorded']} calls recorded",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--render"]:  # print the table of a saved --observability run
        print(render_observability(json.loads(Path(sys.argv[2]).read_text())))
        sys.exit(0)
    if shutil.which("go") is None and not (BIN / "vegeta").exists():
        raise SystemExit("the benchmark needs Go to install vegeta")
    sys.exit(main())
