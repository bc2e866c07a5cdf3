"""Administration CLI: partners, their API credentials and rate limits.

    python -m services.gateway.admin partner create --name "Acme CRM" [--rate-limit 600]
    python -m services.gateway.admin partner list
    python -m services.gateway.admin partner set-rate-limit PARTNER_ID (N | default)
    python -m services.gateway.admin key issue PARTNER_ID
    python -m services.gateway.admin key rotate PARTNER_ID [--grace-seconds 86400]
    python -m services.gateway.admin key revoke API_KEY
    python -m services.gateway.admin dev-partner --credentials-file .local/dev-credentials.env
    python -m services.gateway.admin outbox list
    python -m services.gateway.admin outbox requeue (ID ... | --all)
    python -m services.gateway.admin dashboard (allow-origin|disallow-origin) PARTNER_ID ORIGIN
    python -m services.gateway.admin dashboard (origins|revoke-sessions) PARTNER_ID

A secret is shown once, when it is issued; only its hash is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from services.common.db import create_pool
from services.common.outbox import add_admin_commands, run_admin_command
from services.gateway.config import GatewaySettings
from services.gateway.dashboard import admin as dashboard_admin
from services.gateway.repository import GatewayRepository
from services.gateway.security import IssuedCredential, issue_credential, new_partner_id, secret_matches

DEV_PARTNER_NAME = "Development partner"
DEV_TENANT, DEV_SUBTENANT = "tenant1", "subtenant1"


def _out(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _fail(message: str) -> int:
    sys.stderr.write(f"error: {message}\n")
    return 1


async def _issue(repo: GatewayRepository, partner_id: str) -> IssuedCredential:
    cred = issue_credential()
    await repo.add_credential(partner_id, cred.api_key, cred.secret_sha256)
    return cred


def _read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            values[k.strip()] = v.strip()
    return values


async def dev_partner(repo: GatewayRepository, credentials_file: Path) -> dict[str, str]:
    """The development partner and working credentials, reusing the saved ones while valid."""
    partner_id = await repo.find_partner_by_name(DEV_PARTNER_NAME)
    if partner_id is None:
        partner_id = new_partner_id()
        await repo.create_partner(partner_id, DEV_PARTNER_NAME, None)
    if await asyncio.to_thread(credentials_file.exists):
        saved = await asyncio.to_thread(_read_env_file, credentials_file)
        found = await repo.find_credential(saved.get("API_KEY", ""))
        if (
            found is not None
            and found.partner_id == partner_id
            and secret_matches(saved.get("API_SECRET", ""), found.secret_sha256)
        ):
            return saved
    cred = await _issue(repo, partner_id)
    values = {
        "PARTNER_ID": partner_id,
        "API_KEY": cred.api_key,
        "API_SECRET": cred.api_secret,
        "TENANT_ID": DEV_TENANT,
        "SUBTENANT_ID": DEV_SUBTENANT,
    }
    await asyncio.to_thread(_write_env_file, credentials_file, values)
    return values


def _write_env_file(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# Development partner credentials written by `make up` (local use only)\n")
        f.writelines(f"{k}={v}\n" for k, v in values.items())


async def run(args: argparse.Namespace, settings: GatewaySettings) -> int:
    pool = await create_pool(
        settings.database_url, settings.db_schema, min_size=1, max_size=2, app_name="gateway-admin"
    )
    repo = GatewayRepository(pool)
    try:
        match (args.area, args.action):
            case ("partner", "create"):
                partner_id = new_partner_id()
                await repo.create_partner(partner_id, args.name, args.rate_limit)
                cred = await _issue(repo, partner_id)
                _out(
                    {
                        "partner_id": partner_id,
                        "name": args.name,
                        "rate_limit_per_minute": args.rate_limit or settings.default_rate_limit_per_minute,
                        "api_key": cred.api_key,
                        "api_secret": cred.api_secret,
                    }
                )
            case ("partner", "list"):
                _out({"partners": [dict(r) for r in await repo.list_partners()]})
            case ("partner", "set-rate-limit"):
                limit = None if args.limit == "default" else int(args.limit)
                if limit is not None and limit < 1:
                    return _fail("the limit must be a positive number of requests per minute")
                if not await repo.set_rate_limit(args.partner_id, limit):
                    return _fail(f"no partner {args.partner_id}")
                _out(
                    {
                        "partner_id": args.partner_id,
                        "rate_limit_per_minute": limit or settings.default_rate_limit_per_minute,
                    }
                )
            case ("key", "issue"):
                if not await repo.partner_exists(args.partner_id):
                    return _fail(f"no partner {args.partner_id}")
                cred = await _issue(repo, args.partner_id)
                _out({"partner_id": args.partner_id, "api_key": cred.api_key, "api_secret": cred.api_secret})
            case ("key", "rotate"):
                if not await repo.partner_exists(args.partner_id):
                    return _fail(f"no partner {args.partner_id}")
                cred = issue_credential()
                expiring = await repo.rotate_credential(
                    args.partner_id, cred.api_key, cred.secret_sha256, args.grace_seconds
                )
                _out(
                    {
                        "partner_id": args.partner_id,
                        "api_key": cred.api_key,
                        "api_secret": cred.api_secret,
                        "previous_keys_expiring": expiring,
                        "grace_seconds": args.grace_seconds,
                    }
                )
            case ("key", "revoke"):
                if not await repo.revoke_credential(args.api_key):
                    return _fail("no active credential with that key")
                _out({"api_key": args.api_key, "revoked": True})
            case ("outbox", _):
                try:
                    _out(await run_admin_command(args, pool))
                except ValueError as exc:
                    return _fail(str(exc))
            case ("dev-partner", _):
                _out(await dev_partner(repo, Path(args.credentials_file)))
            case ("dashboard", _):
                env = {}
                if args.action == "dev-token":
                    env = await dev_partner(repo, dashboard_admin.credentials_path(args))
                try:
                    _out(await dashboard_admin.run(args, pool, settings, env))
                except ValueError as exc:
                    return _fail(str(exc))
    finally:
        await pool.close()
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m services.gateway.admin",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    areas = p.add_subparsers(dest="area", required=True)

    partner = areas.add_parser("partner").add_subparsers(dest="action", required=True)
    create = partner.add_parser("create", help="create a partner and its first credential")
    create.add_argument("--name", required=True)
    create.add_argument("--rate-limit", type=int, default=None, help="requests per minute")
    partner.add_parser("list")
    limit = partner.add_parser("set-rate-limit")
    limit.add_argument("partner_id")
    limit.add_argument("limit", help="requests per minute, or 'default'")

    key = areas.add_parser("key").add_subparsers(dest="action", required=True)
    key.add_parser("issue", help="add a credential").add_argument("partner_id")
    rotate = key.add_parser("rotate", help="add a credential; the others expire after the grace period")
    rotate.add_argument("partner_id")
    rotate.add_argument("--grace-seconds", type=float, default=0.0)
    key.add_parser("revoke").add_argument("api_key")

    add_admin_commands(areas)

    dev = areas.add_parser("dev-partner", help="development partner and credentials (make up)")
    dev.add_argument("--credentials-file", default=".local/dev-credentials.env")
    dev.set_defaults(action=None)
    dashboard_admin.add_commands(areas)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return asyncio.run(run(args, GatewaySettings()))


if __name__ == "__main__":
    sys.exit(main())
