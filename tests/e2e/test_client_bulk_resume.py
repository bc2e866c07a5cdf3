"""10,000 calls through `callpipe submit` against the gateway as its own process, with the
partner's rate limit lowered so that 429s happen, interrupted twice and resumed:

1. SIGKILL while the gateway's answer to a recorded batch is still on its way (a proxy holds
   it), so the journal has that batch open;
2. SIGINT (Ctrl-C) in the middle of the second run: a graceful stop;
3. a third run to the end.

What crossed the wire is recorded by a proxy between the CLI and the gateway, independently of
the CLI: every call must be in exactly one request the gateway answered 200, the gateway must
never have answered `duplicate`, and its ledger must hold exactly the 10,000 calls."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from callpipe_client.journal import load

from services.gateway.config import GatewaySettings
from tests.support.call_files import write_calls_csv
from tests.support.gateway import PartnerCreds, create_partner, gateway_process
from tests.support.proxy import recording_proxy

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

CALLS = 10_000
RATE_LIMIT = 120  # per minute: 200 batches cannot all pass at once
CALLPIPE = str(Path(sys.executable).with_name("callpipe"))


def cli_env(base_url: str, partner: PartnerCreds) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLPIPE_")}
    env.update(
        CALLPIPE_BASE_URL=base_url,
        CALLPIPE_API_KEY=partner.api_key,
        CALLPIPE_API_SECRET=partner.api_secret,
        CALLPIPE_TENANT_ID="tenant1",
        CALLPIPE_SUBTENANT_ID="subtenant1",
    )
    return env


async def until(condition: Callable[[], bool], proc: asyncio.subprocess.Process, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.returncode is None, "the CLI ended before the interruption point"
        assert time.monotonic() < deadline, "interruption point not reached"
        await asyncio.sleep(0.005)


async def run_cli(
    env: dict[str, str], csv_path: Path, stop: tuple[signal.Signals, Callable[[], bool]] | None = None
) -> tuple[int, dict[str, Any] | None, str, float]:
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
        sig, condition = stop
        await until(condition, proc)
        proc.send_signal(sig)
    out, err = await asyncio.wait_for(communicate, 300)
    summary = json.loads(out) if out.strip() else None
    return proc.returncode or 0, summary, err.decode(), time.monotonic() - started


async def ledger(database_url: str, partner_id: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT call_id FROM gateway.calls WHERE partner_id = $1", partner_id)
    finally:
        await conn.close()
    return [r["call_id"] for r in rows]


async def test_ten_thousand_calls_interrupted_twice_are_each_accepted_exactly_once(
    gateway_settings: GatewaySettings, database_url: str, tmp_path: Path
) -> None:
    partner = await create_partner(database_url, rate_limit=RATE_LIMIT)
    csv_path = tmp_path / "calls.csv"
    ids = write_calls_csv(csv_path, CALLS)
    with gateway_process(gateway_settings, tmp_path / "gateway.log") as gateway_url:
        async with recording_proxy(gateway_url, hold_s=0.3) as proxy:
            env = cli_env(proxy.base_url, partner)

            # 1. Killed outright while an answer the gateway gave is held back.
            first = await run_cli(
                env, csv_path, (signal.SIGKILL, lambda: proxy.accepted >= CALLS * 0.3 and proxy.holding > 0)
            )
            assert first[0] == -signal.SIGKILL and first[1] is None
            open_after_kill = load(tmp_path / "calls.csv.journal").open
            held = {i for b in open_after_kill.values() for i in b.ids} & set(proxy.ingested())
            assert held, "no recorded batch was left open by the kill"
            proxy.hold_s = 0.0

            # 2. Ctrl-C half-way through the rest.
            second = await run_cli(env, csv_path, (signal.SIGINT, lambda: proxy.accepted >= CALLS * 0.65))
            assert second[0] == 130 and second[1] is not None and second[1]["interrupted"] is True
            assert load(tmp_path / "calls.csv.journal").open == {}  # a graceful stop leaves nothing open

            # 3. To the end.
            third = await run_cli(env, csv_path)
            assert third[0] == 0, third[2]

    runs = [first, second, third]
    s2, s3 = second[1], third[1]
    assert s2 is not None and s3 is not None
    # The batches left open by the kill were found recorded, not sent again.
    assert s2["recovered"] >= len(held)
    assert s3["accepted"] + s3["skipped"] == CALLS and s3["rejected"] == 0 and s3["duplicate"] == 0
    # On the wire: each call in exactly one request the gateway recorded, never a duplicate.
    recorded = proxy.ingested(200)
    assert set(recorded) == set(ids) and set(recorded.values()) == {1}
    assert proxy.outcomes() == {"accepted": CALLS}
    assert proxy.statuses()[429] > 0  # the rate limit was met, and waited out
    assert sorted(await ledger(database_url, partner.partner_id)) == sorted(ids)

    figures = {
        "runs_s": [round(r[3], 1) for r in runs],
        # as the gateway recorded them (the first run's include the answers it never received)
        "accepted_per_run": [CALLS - s2["accepted"] - s3["accepted"], s2["accepted"], s3["accepted"]],
        "recovered_after_kill": s2["recovered"],
        "ingest_requests": dict(proxy.statuses()),
        "status_reads": sum(1 for e in proxy.exchanges if e.method == "GET"),
        "calls_per_s_overall": round(CALLS / sum(r[3] for r in runs), 1),
    }
    (tmp_path / "figures.json").write_text(json.dumps(figures))
    log.info("10k resumed run: %s", json.dumps(figures))
