"""The dashboard's admin commands, run as operators run them: allowed origins, revoking a
partner's sessions, and the development token `make up` prints."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.integration.test_admin_cli import admin, admin_fails
from tests.support.gateway import PartnerCreds


def test_allowed_origins_are_exact_origins(database_url: str, partner: PartnerCreds) -> None:
    pid = partner.partner_id
    assert admin(database_url, "dashboard", "origins", pid) == {"partner_id": pid, "origins": []}
    added = admin(database_url, "dashboard", "allow-origin", pid, "HTTPS://App.Example.com:443/")
    assert added["origins"] == ["https://app.example.com"]  # canonical: lower case, default port dropped
    admin(database_url, "dashboard", "allow-origin", pid, "http://localhost:8080")
    assert admin(database_url, "dashboard", "origins", pid)["origins"] == [
        "http://localhost:8080",
        "https://app.example.com",
    ]
    for bad in ("*", "https://*.example.com", "https://app.example.com/path", "ftp://x.example", "app.example.com"):
        assert "an origin is scheme://host[:port]" in admin_fails(database_url, "dashboard", "allow-origin", pid, bad)
    assert "is not allowed" in admin_fails(database_url, "dashboard", "disallow-origin", pid, "https://other.example")
    left = admin(database_url, "dashboard", "disallow-origin", pid, "https://app.example.com")
    assert left["origins"] == ["http://localhost:8080"]


async def test_dev_token_and_revoke_sessions(database_url: str, client: httpx.AsyncClient, tmp_path: Path) -> None:
    issued = admin(
        database_url,
        "dashboard",
        "dev-token",
        "--credentials-file",
        str(tmp_path / "dev.env"),
        "--base-url",
        "http://gateway",
    )
    assert issued["url"] == f"http://gateway/dashboard?token={issued['token']}"
    assert (issued["tenant_id"], issued["subtenant_id"]) == ("tenant1", "subtenant1")
    exchanged = await client.get("/dashboard", params={"token": issued["token"]})
    assert exchanged.status_code == 303
    cookie = exchanged.headers["set-cookie"].split(";", 1)[0]
    assert (await client.get("/dashboard/api/session", headers={"cookie": cookie})).status_code == 200
    partner_id = (tmp_path / "dev.env").read_text().split("PARTNER_ID=")[1].split("\n")[0]
    revoked = admin(database_url, "dashboard", "revoke-sessions", partner_id)
    assert revoked == {"partner_id": partner_id, "sessions_ended": 1, "tokens_voided": 0}
    assert (await client.get("/dashboard/api/session", headers={"cookie": cookie})).status_code == 401
