"""Administration CLI: the partners' callback signing secrets.

    python -m services.notifier.admin signing-secret show --partner PARTNER_ID
    python -m services.notifier.admin signing-secret rotate --partner PARTNER_ID [--grace-hours 24]
    python -m services.notifier.admin secrets reseal
    python -m services.notifier.admin outbox list
    python -m services.notifier.admin outbox requeue (ID ... | --all)

Every callback is signed (Standard Webhooks) with the partner's current secret (``whsec_...``).
A partner without one gets one when its first callback is sent, or on ``show``: that is how an
operator fetches the secret to hand to the partner. ``rotate`` makes a new current secret and
keeps the previous one valid for the grace period, during which callbacks carry both
signatures, so the partner can switch without rejecting a callback. A secret is printed only by
these two commands.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from services.common.db import create_pool
from services.common.outbox import add_admin_commands, run_admin_command
from services.notifier.config import NotifierSettings
from services.notifier.repository import NotifierRepository, SigningSecret


def _out(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _fail(message: str) -> int:
    sys.stderr.write(f"error: {message}\n")
    return 1


def _describe(partner_id: str, valid: list[SigningSecret]) -> dict[str, Any]:
    current = [s for s in valid if s.expires_at is None]
    return {
        "partner_id": partner_id,
        "secret": current[0].secret if current else None,
        "created_at": current[0].created_at if current else None,
        "previous_still_valid": [
            {"secret": s.secret, "expires_at": s.expires_at} for s in valid if s.expires_at is not None
        ],
    }


async def run(args: argparse.Namespace, settings: NotifierSettings) -> int:
    if args.area == "secrets":
        pool = await create_pool(
            settings.database_url, settings.db_schema, min_size=1, max_size=2, app_name="notifier-admin"
        )
        try:
            _out(await NotifierRepository(pool, settings.secret_box()).seal_secrets())
        finally:
            await pool.close()
        return 0
    if args.area == "outbox":
        pool = await create_pool(
            settings.database_url, settings.db_schema, min_size=1, max_size=2, app_name="notifier-admin"
        )
        try:
            _out(await run_admin_command(args, pool))
        except ValueError as exc:
            return _fail(str(exc))
        finally:
            await pool.close()
        return 0
    partner_id = args.partner.strip()
    if not partner_id or any(c.isspace() or c == "/" for c in partner_id):
        return _fail("--partner must be a partner id such as ptn_0123456789abcdef")
    pool = await create_pool(
        settings.database_url, settings.db_schema, min_size=1, max_size=2, app_name="notifier-admin"
    )
    repo = NotifierRepository(pool, settings.secret_box())
    try:
        match args.action:
            case "show":
                await repo.valid_secrets([partner_id])  # creates the first one if there is none
            case "rotate":
                if args.grace_hours < 0:
                    return _fail("--grace-hours must not be negative")
                await repo.rotate_secret(partner_id, args.grace_hours * 3600)
        _out(_describe(partner_id, await repo.secrets_of(partner_id)))
    finally:
        await pool.close()
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m services.notifier.admin",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    areas = p.add_subparsers(dest="area", required=True)
    secret = areas.add_parser("signing-secret", help="callback signing secrets").add_subparsers(
        dest="action", required=True
    )
    show = secret.add_parser("show", help="print the partner's valid secrets (creating the first one)")
    show.add_argument("--partner", required=True)
    rotate = secret.add_parser("rotate", help="new current secret; the previous stays valid for the grace period")
    rotate.add_argument("--partner", required=True)
    rotate.add_argument("--grace-hours", type=float, default=24.0)
    add_admin_commands(areas)
    sealing = areas.add_parser("secrets", help="signing secrets at rest").add_subparsers(dest="action", required=True)
    sealing.add_parser(
        "reseal",
        help="seal secrets still in plain text and re-wrap those sealed under an older key (after a key rotation)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return asyncio.run(run(args, NotifierSettings()))


if __name__ == "__main__":
    sys.exit(main())
