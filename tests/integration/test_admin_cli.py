"""The admin CLI, run as operators run it, against the session database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import orjson

from services.gateway.config import GatewaySettings
from tests.factories import batch
from tests.support.gateway import INGEST, ROOT

ADMIN = [sys.executable, "-m", "services.gateway.admin"]


def run_admin(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run([*ADMIN, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)


def admin(database_url: str, *args: str) -> dict:
    result = run_admin(database_url, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def admin_fails(database_url: str, *args: str) -> str:
    result = run_admin(database_url, *args)
    assert result.returncode != 0
    return result.stderr


def headers(key: str, secret: str) -> dict[str, str]:
    return {
        "x-api-key": key,
        "x-api-secret": secret,
        "x-tenant-id": "t",
        "x-sub-tenant-id": "s",
        "content-type": "application/json",
    }


async def ingest(client: httpx.AsyncClient, key: str, secret: str) -> int:
    response = await client.post(INGEST, content=orjson.dumps(batch()), headers=headers(key, secret))
    return response.status_code


async def test_partner_lifecycle(
    client: httpx.AsyncClient, database_url: str, gateway_settings: GatewaySettings
) -> None:
    created = admin(database_url, "partner", "create", "--name", "Acme CRM", "--rate-limit", "2")
    partner_id, key, secret = created["partner_id"], created["api_key"], created["api_secret"]
    assert created["rate_limit_per_minute"] == 2
    assert await ingest(client, key, secret) == 200

    listed = admin(database_url, "partner", "list")["partners"]
    mine = next(p for p in listed if p["partner_id"] == partner_id)
    assert mine["name"] == "Acme CRM" and mine["active_keys"] == 1
    assert "secret" not in json.dumps(listed).lower()

    # a second key works alongside the first
    second = admin(database_url, "key", "issue", partner_id)
    assert await ingest(client, second["api_key"], second["api_secret"]) == 200

    # the limit (2/min) is now spent; raising it lets requests through again
    assert await ingest(client, key, secret) == 429
    admin(database_url, "partner", "set-rate-limit", partner_id, "100")
    assert await ingest(client, key, secret) == 200

    # revoke the first key: it is refused, the second still works
    admin(database_url, "key", "revoke", key)
    assert await ingest(client, key, secret) == 403
    assert await ingest(client, second["api_key"], second["api_secret"]) == 200
    assert "no active credential" in admin_fails(database_url, "key", "revoke", key)

    # rotate without grace: only the new key works
    rotated = admin(database_url, "key", "rotate", partner_id)
    assert rotated["previous_keys_expiring"] == 1
    assert await ingest(client, second["api_key"], second["api_secret"]) == 403
    assert await ingest(client, rotated["api_key"], rotated["api_secret"]) == 200


async def test_rotation_with_grace_keeps_the_old_key_working(client: httpx.AsyncClient, database_url: str) -> None:
    created = admin(database_url, "partner", "create", "--name", "Grace Inc")
    rotated = admin(database_url, "key", "rotate", created["partner_id"], "--grace-seconds", "3600")
    assert await ingest(client, created["api_key"], created["api_secret"]) == 200
    assert await ingest(client, rotated["api_key"], rotated["api_secret"]) == 200


def test_unknown_partner_is_an_error(database_url: str) -> None:
    assert "no partner" in admin_fails(database_url, "key", "issue", "ptn_nope")
    assert "no partner" in admin_fails(database_url, "partner", "set-rate-limit", "ptn_nope", "5")


def test_dev_partner_is_idempotent_and_keeps_working_credentials(database_url: str, tmp_path: Path) -> None:
    creds = tmp_path / "dev.env"
    first = admin(database_url, "dev-partner", "--credentials-file", str(creds))
    again = admin(database_url, "dev-partner", "--credentials-file", str(creds))
    assert first == again
    assert oct(creds.stat().st_mode & 0o777) == "0o600"
    assert f"API_SECRET={first['API_SECRET']}" in creds.read_text()
    creds.unlink()  # lost file: new credentials for the same partner
    third = admin(database_url, "dev-partner", "--credentials-file", str(creds))
    assert third["PARTNER_ID"] == first["PARTNER_ID"] and third["API_KEY"] != first["API_KEY"]
