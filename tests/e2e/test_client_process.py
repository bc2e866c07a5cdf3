"""The blocking client and the CLI's commands against the gateway as its own process (a real
socket, the server's Date header): JSON output, exit codes, standard input, and what a stopped
gateway looks like."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from callpipe_client import Client, ClientConfig, NotFound

from services.gateway.config import GatewaySettings
from tests.factories import call_item
from tests.support.gateway import PartnerCreds, create_partner, gateway_process

CALLPIPE = str(Path(sys.executable).with_name("callpipe"))


def cli(env: dict[str, str], *args: str, stdin: bytes | None = None, cwd: Path | None = None) -> tuple[int, str, str]:
    done = subprocess.run(
        [CALLPIPE, *args], check=False, env=env, input=stdin, capture_output=True, timeout=120, cwd=cwd
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def environment(url: str, partner: PartnerCreds, secret: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLPIPE_")}
    env.update(
        CALLPIPE_BASE_URL=url,
        CALLPIPE_API_KEY=partner.api_key,
        CALLPIPE_API_SECRET=secret or partner.api_secret,
        CALLPIPE_TENANT_ID="tenant1",
        CALLPIPE_SUBTENANT_ID="subtenant1",
    )
    return env


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_blocking_client_and_the_commands_over_a_socket(
    gateway_settings: GatewaySettings, database_url: str, tmp_path: Path
) -> None:
    partner = await create_partner(database_url)
    items = [call_item() for _ in range(120)]
    with gateway_process(gateway_settings, tmp_path / "gateway.log") as url:
        config = ClientConfig(
            base_url=url,
            api_key=partner.api_key,
            api_secret=partner.api_secret,
            tenant_id="tenant1",
            subtenant_id="subtenant1",
        )
        with Client(config) as client:
            report = client.submit_calls(items[:100], concurrency=2)
            assert report.counts == {"accepted": 100, "duplicate": 0, "rejected": 0, "skipped": 0}
            assert client.get_call(items[0]["call"]["id"]).status == "received"
            assert client.server_date is not None  # the server's clock, from its Date header
            with pytest.raises(NotFound, match="Call not found"):
                client.get_call("nope")
            deadline = time.monotonic() + 30
            while len(list(client.iter_calls(limit=40))) < 100:
                assert time.monotonic() < deadline, "the list never showed the 100 calls"
                time.sleep(0.5)
            assert client.set_analysis_config({"labels": ["Budget"]}, scope="tenant").effective.labels == ["Budget"]

        env = environment(url, partner)
        # JSON Lines from standard input, with a journal.
        lines = b"".join(json.dumps(i).encode() + b"\n" for i in items[90:])  # 10 known, 20 new
        code, out, err = cli(env, "--json", "submit", "-", "--journal", str(tmp_path / "stdin.journal"), stdin=lines)
        assert code == 0, err
        summary = json.loads(out)
        assert (summary["accepted"], summary["duplicate"]) == (20, 10) and summary["journal"]

        code, out, _ = cli(env, "--json", "status", items[0]["call"]["id"])
        assert code == 0 and json.loads(out)["call_id"] == items[0]["call"]["id"]
        code, out, _ = cli(env, "--json", "list", "--max", "3")
        assert code == 0 and len(out.splitlines()) == 3
        code, out, _ = cli(env, "--json", "config", "get")
        assert code == 0 and json.loads(out)["effective"]["labels"] == ["Budget"]
        code, out, _ = cli(env, "--json", "config", "set", "--scope", "subtenant", "--labels", "Needs,Timeline")
        assert code == 0 and json.loads(out)["source"] == "subtenant"

        code, out, _ = cli(env, "--json", "redeliver", items[0]["call"]["id"])
        assert code == 4
        assert json.loads(out)["error"] == {
            "code": "conflict",
            "message": "Callback can be redelivered only once its delivery is delivered or failed",
            "status": 409,
            "errors": [],
        }
        code, _, err = cli(env, "status", "no-such-call")
        assert code == 4 and "Call not found (HTTP 404)" in err
        code, out, _ = cli(env, "--json", "list", "--status", "done")
        assert code == 4 and json.loads(out)["error"]["errors"][0]["field"] == "status"
        code, _, err = cli(environment(url, partner, secret="cs_wrong"), "list")
        assert code == 3 and "Forbidden (HTTP 403)" in err

    stopped = environment(f"http://127.0.0.1:{closed_port()}", partner)
    code, _, err = cli(stopped, "--timeout", "2", "status", "x")
    assert code == 5 and "ConnectError" in err


async def test_erase_commands(gateway_settings: GatewaySettings, database_url: str, tmp_path: Path) -> None:
    """`callpipe erase` and `callpipe erasure` against the gateway alone: the erasure is accepted
    and stays pending (no worker runs here to confirm it), which `--wait --timeout` reports."""
    partner = await create_partner(database_url)
    item = call_item(customer__id="cust-erase-cli")
    with gateway_process(gateway_settings, tmp_path / "gateway.log") as url:
        env = environment(url, partner)
        code, out, err = cli(env, "--json", "submit", "-", "--no-journal", stdin=json.dumps(item).encode() + b"\n")
        assert code == 0, err

        code, out, err = cli(env, "--json", "erase", item["call"]["id"])
        assert code == 0, err
        accepted = json.loads(out)
        assert accepted["calls"] == 1 and accepted["status"] == "pending"
        code, out, err = cli(env, "--json", "erase", item["call"]["id"])  # again: the same erasure
        assert code == 0 and json.loads(out)["erasure_id"] == accepted["erasure_id"], err

        code, out, err = cli(env, "erasure", accepted["erasure_id"])
        assert code == 0, err
        assert accepted["erasure_id"] in out and "pending" in out and "call" in out
        code, out, err = cli(env, "--json", "erasure", accepted["erasure_id"], "--wait", "--timeout", "1")
        assert code == 6 and json.loads(out)["status"] == "pending", (code, err)

        code, out, err = cli(env, "--json", "erase", "--customer-id", "nobody-here")
        assert code == 0 and json.loads(out) | {"erasure_id": ""} == {
            "erasure_id": "",
            "calls": 0,
            "status": "completed",
        }
        code, out, err = cli(env, "status", item["call"]["id"])
        assert code == 4 and "Call not found" in err, (code, err)
        code, out, err = cli(env, "erase", "unknown-call")
        assert code == 4, (code, err)
        code, out, err = cli(env, "erase")
        assert code == 2 and "call id" in err, (code, err)
