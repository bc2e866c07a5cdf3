"""`make demo`: watch the whole job on the stack `make up` started.

Serves three synthesised sales calls (festival speech) from a local recording host, submits them
through the public API with the development credentials, receives the signed callbacks on a local
HTTPS receiver (certificate from the development CA the local notifier trusts), verifies each
signature with the official Standard Webhooks library, prints the callbacks, and says where to look
in the status API.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiohttp import web
from standardwebhooks import Webhook

from deploy.local import dev_tls
from deploy.local.stack import GATEWAY_URL, ROOT, STATE
from tests.support import audio

# (script, format, stereo, what the analysis should find)
CALLS: list[tuple[str, audio.Format, bool, str]] = [
    ("interested", "mp3", True, "an interested customer asking for a proposal and a demo"),
    ("price_objection", "wav", False, "a price objection (concern category Pricing)"),
    ("not_interested", "m4a", True, "a clear refusal"),
]
MIME = {"mp3": "audio/mpeg", "wav": "audio/wav", "m4a": "audio/mp4"}
TIMEOUT_S = 300.0


def say(message: str = "") -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def credentials() -> dict[str, str]:
    path = STATE / "dev-credentials.env"
    if not path.exists():
        raise SystemExit("No development credentials: run `make up` first.")
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {k: v for k, v in pairs}


def signing_secret(partner_id: str) -> str:
    """The partner's callback signing secret, as an operator gets it (the notifier's admin CLI)."""
    out = subprocess.run(
        [sys.executable, "-m", "services.notifier.admin", "signing-secret", "show", "--partner", partner_id],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    secret: str = json.loads(out.stdout)["secret"]
    return secret


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Servers:
    """The partner's side: a recording host (HTTP) and a callback receiver (HTTPS)."""

    def __init__(self) -> None:
        self.recordings: dict[str, tuple[bytes, str]] = {}
        self.callbacks: asyncio.Queue[tuple[Mapping[str, str], bytes]] = asyncio.Queue()
        self.recording_port = free_port()
        self.receiver_port = free_port()
        self._runners: list[web.AppRunner] = []

    async def _recording(self, request: web.Request) -> web.Response:
        body, mime = self.recordings.get(request.match_info["name"], (b"", ""))
        if not body:
            return web.Response(status=404)
        return web.Response(body=body, content_type=mime)

    async def _callback(self, request: web.Request) -> web.Response:
        await self.callbacks.put((dict(request.headers), await request.read()))
        return web.Response(text="ok")

    async def start(self) -> None:
        host = web.Application()
        host.router.add_get("/recordings/{name}", self._recording)
        receiver = web.Application()
        receiver.router.add_post("/callbacks", self._callback)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(dev_tls.SERVER)
        for app, port, context in ((host, self.recording_port, None), (receiver, self.receiver_port, tls)):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
            self._runners.append(runner)

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()


def batch(servers: Servers, run: str) -> tuple[dict[str, Any], dict[str, str]]:
    now = datetime.now(UTC).replace(microsecond=0)
    items, about = [], {}
    for script, fmt, stereo, description in CALLS:
        call = audio.render_conversation(audio.SCRIPTS[script], stereo=stereo)
        name = f"{script}.{fmt}"
        servers.recordings[name] = (audio.encode(call, fmt), MIME[fmt])
        call_id = f"demo-{run}-{script}"
        about[call_id] = f"{description} ({fmt.upper()}, {'stereo' if stereo else 'mono'}, {call.duration_s:.0f} s)"
        items.append(
            {
                "call": {
                    "id": call_id,
                    "recording_url": f"http://127.0.0.1:{servers.recording_port}/recordings/{name}",
                    "start_time": (now - timedelta(seconds=call.duration_s)).isoformat().replace("+00:00", "Z"),
                    "end_time": now.isoformat().replace("+00:00", "Z"),
                    "contact_number": "+14155550123",
                },
                "agent": {"id": "agent-mark", "name": "Mark"},
                "customer": {"id": f"customer-{script}"},
                "callback_url": f"https://127.0.0.1:{servers.receiver_port}/callbacks",
                "metadata": {"campaign": "make demo", "script": script},
            }
        )
    return {"data": items}, about


async def demo() -> int:
    if not audio.tools_available():
        raise SystemExit("festival and its voices are needed: make test-tools")
    creds = credentials()
    headers = {
        "x-api-key": creds["API_KEY"],
        "x-api-secret": creds["API_SECRET"],
        "x-tenant-id": creds["TENANT_ID"],
        "x-sub-tenant-id": creds["SUBTENANT_ID"],
    }
    webhook = Webhook(await asyncio.to_thread(signing_secret, creds["PARTNER_ID"]))
    servers = Servers()
    say("Rendering three sales calls with festival ...")
    # Speech synthesis and encoding are slow and blocking: done before the servers run.
    body, about = await asyncio.to_thread(batch, servers, uuid.uuid4().hex[:6])
    await servers.start()
    try:
        async with httpx.AsyncClient(base_url=GATEWAY_URL, timeout=30) as client:
            response = await client.post("/api/v1/partner/ingest/batch-call", json=body, headers=headers)
            say(f"\nPOST /api/v1/partner/ingest/batch-call -> {response.status_code} {response.text}")
            if response.status_code != 200:
                return 1
            say(f"\nWaiting for the callbacks on https://127.0.0.1:{servers.receiver_port}/callbacks ...")
            started, pending = time.monotonic(), set(about)
            while pending:
                left = TIMEOUT_S - (time.monotonic() - started)
                if left <= 0:
                    say(f"\nNo callback within {TIMEOUT_S:.0f} s for: {', '.join(sorted(pending))}.")
                    say("Look at .local/log/*.log and `make status`.")
                    return 1
                try:
                    callback_headers, raw = await asyncio.wait_for(servers.callbacks.get(), left)
                except TimeoutError:
                    continue
                callback = webhook.verify(raw, callback_headers)  # raises on a bad signature
                call_id = callback["call_id"]
                pending.discard(call_id)
                say(f"\n=== {call_id}: {about.get(call_id, '')}")
                say(f"webhook-id {callback_headers['webhook-id']}, signature verified")
                say(json.dumps(callback, indent=2, ensure_ascii=False))
            # The partner's way in to the dashboard: a single-use token from its backend.
            issued = await client.get("/api/v1/partner/dashboard/auth/token", headers=headers)
            dashboard = issued.json()["data"]["url"] if issued.status_code == 200 else None
        say("\nEvery call's status, timestamps per stage, result and delivery attempts:")
        flags = " ".join(f"-H '{k}: {v}'" for k, v in headers.items())
        for call_id in about:
            say(f"  curl -s {flags} {GATEWAY_URL}/api/v1/partner/calls/{call_id}")
        say(f"  (all of them: curl -s {flags} '{GATEWAY_URL}/api/v1/partner/calls?limit=10')")
        if dashboard:
            say("\nThe calls on the dashboard (a single-use link: open it within 5 minutes; `make up` prints")
            say(f"a development one that stays valid for a day):\n  {dashboard}")
        return 0
    finally:
        await servers.stop()


def main() -> int:
    os.chdir(ROOT)
    return asyncio.run(demo())


if __name__ == "__main__":
    sys.exit(main())
