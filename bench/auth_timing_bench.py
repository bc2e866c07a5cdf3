"""Does the answer's timing tell whether an API key exists? (``make bench``; issue 10, defect 11)

A real gateway process (one worker, its default 2 s credential cache) is asked, alternately and
over one keep-alive connection, with three kinds of refused credentials:

- a known key with a wrong secret;
- an unknown key, the same one every time (what an attacker probing one leaked key sends);
- an unknown key, a fresh one every time (a scan);
- a known key on its first use (a fresh one every time), against which the fresh unknown key is
  compared: both cost one database lookup.

Each request is a ``GET /api/v1/partner/calls`` (authentication is its first step and the
refusal its whole answer). Medians and p90 per kind are measured side by side in one run, and the
difference of medians is reported; the known/unknown pair must not differ beyond noise.

Usage: python -m bench.auth_timing_bench [--rounds 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import sys
import time
import uuid

import httpx
from pydantic import SecretStr

from bench.common import OUT, fresh_database, log, start_service, stop_server
from deploy.local import stack
from services.common.db import create_pool
from services.gateway.repository import GatewayRepository
from services.gateway.security import issue_credential, new_partner_id
from tests.support.infra import free_port

CALLS = "/api/v1/partner/calls"


async def make_partner(database_url: str, keys: int = 1) -> list[str]:
    """A partner with ``keys`` credentials; returns the keys."""
    pool = await create_pool(SecretStr(database_url), "gateway", min_size=1, max_size=1)
    try:
        repo = GatewayRepository(pool)
        partner_id = new_partner_id()
        await repo.create_partner(partner_id, "Timing partner", None)
        issued = []
        for _ in range(keys):
            cred = issue_credential()
            await repo.add_credential(partner_id, cred.api_key, cred.secret_sha256)
            issued.append(cred.api_key)
        return issued
    finally:
        await pool.close()


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 3),
        "p90_ms": round(ordered[int(len(ordered) * 0.9)] * 1000, 3),
    }


async def run(rounds: int) -> dict[str, object]:
    database_url = await fresh_database("callpipe_bench_auth", ["gateway"])
    # One key asked every round (its lookup cached, like a partner's busy key) and one fresh known
    # key per round (never cached: the same cost as a first-seen unknown key should have).
    known_key, *cold_keys = await make_partner(database_url, keys=rounds + 1)
    port = free_port()
    env = {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": stack.default_kafka().bootstrap,
        "KAFKA_TOPIC_PREFIX": f"bench{uuid.uuid4().hex[:8]}.",
        "GATEWAY_PORT": str(port),
        "GATEWAY_READ_MODEL_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }
    proc = start_service(
        [sys.executable, "-m", "services.gateway"],
        env,
        OUT / "auth-timing-gateway.log",
        f"http://127.0.0.1:{port}/healthz",
    )
    kinds = (
        "known key, wrong secret",
        "unknown key (repeated)",
        "unknown key (fresh)",
        "known key, first use",
    )
    samples: dict[str, list[float]] = {kind: [] for kind in kinds}
    repeated = "ck_" + secrets.token_urlsafe(18)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:

            async def probe(kind: str, key: str) -> None:
                headers = {"x-api-key": key, "x-api-secret": "cs_" + "w" * 43, "x-tenant-id": "t"}
                started = time.perf_counter()
                response = await client.get(CALLS, headers=headers)
                elapsed = time.perf_counter() - started
                if response.status_code != 403:
                    raise SystemExit(f"expected 403, got {response.status_code}: {response.text}")
                samples[kind].append(elapsed)

            for _ in range(50):  # warm-up: connection, caches, code paths
                await probe(kinds[0], known_key)
                await probe(kinds[1], repeated)
            for value in samples.values():
                value.clear()
            order = random.Random(7)
            for _ in range(rounds):
                # A shuffled order each round: no kind always follows the same one.
                plan = [
                    (kinds[0], known_key),
                    (kinds[1], repeated),
                    (kinds[2], "ck_" + secrets.token_urlsafe(18)),
                    (kinds[3], cold_keys.pop()),
                ]
                order.shuffle(plan)
                for kind, key in plan:
                    await probe(kind, key)
    finally:
        stop_server(proc)
    result = {kind: summary(values) for kind, values in samples.items()}
    known = result[kinds[0]]["median_ms"]
    return {
        "rounds": rounds,
        "results": result,
        "median_difference_ms": {
            kind: round(values["median_ms"] - known, 3) for kind, values in result.items() if kind != kinds[0]
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    stack.default_kafka().start()
    stack.ensure_postgres()
    report = asyncio.run(run(args.rounds))
    log(f"auth timing: {report}")
    for kind, values in report["results"].items():  # type: ignore[attr-defined]
        print(f"{kind:28s} median {values['median_ms']:.3f} ms  p90 {values['p90_ms']:.3f} ms")
    print(f"difference of medians vs known key: {report['median_difference_ms']}")


if __name__ == "__main__":
    main()
