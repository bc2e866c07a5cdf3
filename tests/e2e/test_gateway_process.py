"""The gateway as `make up` runs it: its own process, the development partner from the admin
CLI, and the spec's curl example over a real socket; the event arrives on calls.ingested.v1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.events import CallIngested, parse_event
from services.gateway.config import GatewaySettings
from tests.support.gateway import INGEST, ROOT, gateway_process
from tests.support.infra import Infra
from tests.support.kafka import consume

SPEC_BODY = """{
  "data": [
    {
      "call": {
        "id": "call123",
        "recording_url": "https://example.com/recordings/call123.mp3",
        "start_time": "2023-01-01T10:00:00Z",
        "end_time": "2023-01-01T10:30:00Z",
        "contact_number": "+1234567890"
      },
      "agent": {"id": "agent123", "email": "agent@example.com", "name": "John Doe"},
      "customer": {"id": "customer123", "name": "Jane Smith", "email": "customer@example.com",
                   "disposition_status": "interested"},
      "industry": "Technology",
      "function": "Sales",
      "callback_url": "https://partner.example.com/callback",
      "metadata": {"campaign": "Q1 Outreach", "source": "Website"}
    }
  ]
}"""


@pytest.fixture
def dev_credentials(database_url: str, tmp_path: Path) -> dict[str, str]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.gateway.admin",
            "dev-partner",
            "--credentials-file",
            str(tmp_path / "dev.env"),
        ],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
async def test_spec_curl_example_against_a_running_gateway(
    gateway_settings: GatewaySettings, dev_credentials: dict[str, str], infra: Infra, tmp_path: Path
) -> None:
    with gateway_process(gateway_settings, tmp_path / "gateway.log") as url:
        result = subprocess.run(
            [
                "curl",
                "-sS",
                "-X",
                "POST",
                f"{url}{INGEST}",
                "-H",
                "Content-Type: application/json",
                "-H",
                f"x-api-key: {dev_credentials['API_KEY']}",
                "-H",
                f"x-api-secret: {dev_credentials['API_SECRET']}",
                "-H",
                "x-tenant-id: tenant1",
                "-H",
                "x-sub-tenant-id: subtenant1",
                "-d",
                SPEC_BODY,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        body = json.loads(result.stdout)
        assert body["success"] is True
        assert body["data"]["calls"][0]["id"] == "call123"

        records = await consume(infra.kafka_bootstrap, gateway_settings.topic("calls.ingested.v1"), 1, timeout=30)
        assert len(records) == 1
        event = parse_event(records[0].value)
        assert isinstance(event, CallIngested)
        assert event.partner_id == dev_credentials["PARTNER_ID"]
        assert event.payload.extra == {"industry": "Technology", "function": "Sales"}

        # Over a real socket, a chunked body over 5 MB is cut off with 413 while streaming.
        chunk = b"x" * 65536
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=10) as sock:
            sock.sendall(
                f"POST {INGEST} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                f"x-api-key: {dev_credentials['API_KEY']}\r\nx-api-secret: {dev_credentials['API_SECRET']}\r\n"
                "x-tenant-id: t\r\nx-sub-tenant-id: s\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            )
            status_line = b""
            try:
                for _ in range(100):  # 6.25 MB
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server stopped reading: expected once the limit is passed
            status_line = sock.recv(65536).split(b"\r\n", 1)[0]
        assert status_line == b"HTTP/1.1 413 Request Entity Too Large"

    # nothing of the credentials in the service's own log
    log = (tmp_path / "gateway.log").read_text()
    assert dev_credentials["API_SECRET"] not in log
