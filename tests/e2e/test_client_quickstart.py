"""The README's quickstart as a partner would run it, against the whole pipeline (gateway,
fetcher, analyzer, notifier as processes): `callpipe submit` a CSV, `callpipe watch` until every
call is final, `callpipe export` the results, and the real signed callbacks of the notifier,
received on an HTTPS endpoint, verified and read with the package's `Webhook` and with
`callpipe verify-webhook`; `callpipe redeliver` sends one again with the same webhook-id."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from callpipe_client import Webhook, WebhookVerificationError

from services.gateway.config import GatewaySettings
from tests.support import audio
from tests.support.gateway import PartnerCreds, create_partner
from tests.support.pipeline import pipeline, signing_secret
from tests.support.processes import ROOT
from tests.support.receivers import Receiver, TestCa
from tests.support.recordings import RecordingHost

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not audio.tools_available(), reason="festival is not installed")]

CALLPIPE = str(Path(sys.executable).with_name("callpipe"))


async def callpipe(env: dict[str, str], *args: str, cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        CALLPIPE, *args, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    return proc.returncode or 0, out.decode(), err.decode()


def rotate_secret(database_url: str, partner_id: str) -> str:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.notifier.admin",
            "signing-secret",
            "rotate",
            "--partner",
            partner_id,
            "--grace-hours",
            "1",
        ],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=True,
    )
    secret: str = json.loads(out.stdout)["secret"]
    return secret


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def row(call_id: str, recording_url: str, callback_url: str) -> dict[str, str]:
    return {
        "call_id": call_id,
        "recording_url": recording_url,
        "start_time": "2024-05-01T10:00:00Z",
        "end_time": "2024-05-01T10:01:00Z",
        "contact_number": "+14155550100",
        "agent_id": "agent-7",
        "agent_name": "John Doe",
        "customer_id": f"cust-{call_id}",
        "callback_url": callback_url,
        "metadata.crm_id": f"opp-{call_id}",
    }


async def test_submit_watch_export_and_verified_callbacks_through_the_whole_pipeline(
    gateway_settings: GatewaySettings,
    database_url: str,
    host: RecordingHost,
    rx: Receiver,
    tls: TestCa,
    tmp_path: Path,
) -> None:
    partner: PartnerCreds = await create_partner(database_url)
    interested = audio.render_conversation(audio.SCRIPTS["interested"][:4], stereo=True)
    declined = audio.render_conversation(audio.SCRIPTS["not_interested"][:4], stereo=False)
    rows = [
        row("qs-interested", host.add("a.mp3", audio.encode(interested, "mp3"), "audio/mpeg"), rx.url("interested")),
        row("qs-declined", host.add("b.wav", audio.encode(declined, "wav"), "audio/wav"), rx.url("declined")),
        row("qs-broken", host.add("c.mp3", b"<html>not audio</html>", "audio/mpeg"), rx.url("broken")),
    ]
    write_csv(tmp_path / "calls.csv", rows)
    with pipeline(
        gateway_settings, tmp_path / "logs", blob_root=tmp_path / "blobs", ca_bundle=tls.write_bundle(tmp_path)
    ) as running:
        (tmp_path / "dev.env").write_text(
            f"CALLPIPE_BASE_URL={running.gateway_url}\nAPI_KEY={partner.api_key}\nAPI_SECRET={partner.api_secret}\n"
            "TENANT_ID=tenant1\nSUBTENANT_ID=subtenant1\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLPIPE_")}
        env["CALLPIPE_ENV_FILE"] = str(tmp_path / "dev.env")

        code, out, err = await callpipe(env, "--json", "submit", "calls.csv", cwd=tmp_path)
        assert code == 0, err
        assert json.loads(out)["accepted"] == 3

        code, out, err = await callpipe(
            env, "--json", "watch", "--input", "calls.csv", "--interval", "1", "--timeout", "240", cwd=tmp_path
        )
        assert code == 1, err  # one call failed, as its recording calls for
        final = {c["call_id"]: c for c in map(json.loads, out.splitlines())}
        assert {k: v["status"] for k, v in final.items()} == {
            "qs-interested": "completed",
            "qs-declined": "completed",
            "qs-broken": "failed",
        }

        code, _, err = await callpipe(
            env, "export", "--input", "calls.csv", "--format", "csv", "-o", "results.csv", cwd=tmp_path
        )
        assert code == 0, err
        with (tmp_path / "results.csv").open(newline="") as f:
            exported = {r["call_id"]: r for r in csv.DictReader(f)}
        assert exported["qs-interested"]["intent"] == "INTERESTED"
        assert exported["qs-declined"]["intent"] == "NOT_INTERESTED"
        assert int(exported["qs-interested"]["quality_score"]) >= 0 and exported["qs-interested"]["summary"]
        assert exported["qs-interested"]["qualification.Needs"] is not None
        assert (exported["qs-broken"]["error.stage"], exported["qs-broken"]["error.code"]) == (
            "fetch",
            "unsupported_format",
        )

        hits = {name: (await rx.wait_for(name, 1, timeout=120))[0] for name in ("interested", "declined", "broken")}
        webhook = Webhook(signing_secret(database_url, partner.partner_id))
        seen: dict[str, Any] = {}
        for name, hit in hits.items():
            verified = webhook.verify_message(hit.body, hit.headers)
            seen[name] = verified.callback
            assert verified.webhook_id == hit.headers["webhook-id"]
        assert seen["interested"].intent == "INTERESTED" and seen["interested"].quality
        meta = seen["interested"].meta
        assert meta is not None and meta.model_extra == {"crm_id": "opp-qs-interested"}
        assert seen["declined"].intent == "NOT_INTERESTED" and not seen["declined"].failed
        broken = seen["broken"]
        assert broken.failed and broken.error is not None and broken.error.code == "unsupported_format"
        with pytest.raises(WebhookVerificationError):
            webhook.verify(hits["interested"].body.replace(b"INTERESTED", b"UNDECIDED"), hits["interested"].headers)

        # A saved callback, verified later from the command line.
        (tmp_path / "body.json").write_bytes(hits["declined"].body)
        (tmp_path / "headers.json").write_text(json.dumps(hits["declined"].headers))
        (tmp_path / "secret").write_text(signing_secret(database_url, partner.partner_id))
        verify = ["verify-webhook", "--body", "body.json", "--headers", "headers.json", "--secret-file", "secret"]
        code, out, err = await callpipe(env, "--json", *verify, "--any-age", cwd=tmp_path)
        assert code == 0, err
        assert json.loads(out)["callback"]["call_id"] == "qs-declined"
        (tmp_path / "body.json").write_bytes(hits["declined"].body.replace(b"qs-declined", b"qs-other"))
        code, out, _ = await callpipe(env, "--json", *verify, "--any-age", cwd=tmp_path)
        assert code == 1 and json.loads(out) == {"valid": False, "error": "no matching signature"}

        # The notifier's secret is rotated with a grace period, then the callback redelivered: it
        # carries both signatures, and the old secret and the new one each verify it.
        old = signing_secret(database_url, partner.partner_id)
        new = rotate_secret(database_url, partner.partner_id)
        assert new != old
        # Redelivery: the same callback again, with the same webhook-id.
        code, out, err = await callpipe(env, "--json", "redeliver", "qs-interested", cwd=tmp_path)
        assert code == 0, err
        assert json.loads(out)["delivery_id"] == hits["interested"].headers["webhook-id"]
        again = (await rx.wait_for("interested", 2, timeout=60))[1]
        assert again.headers["webhook-id"] == hits["interested"].headers["webhook-id"]
        assert len(again.headers["webhook-signature"].split()) == 2
        assert Webhook(old).verify(again.body, again.headers).call_id == "qs-interested"
        assert Webhook(new).verify(again.body, again.headers).call_id == "qs-interested"
        with pytest.raises(WebhookVerificationError):
            Webhook(new).verify(hits["interested"].body, hits["interested"].headers)  # signed before the rotation
