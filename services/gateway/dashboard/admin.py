"""The dashboard's administration commands (``python -m services.gateway.admin dashboard ...``):
a partner's allowed embedding origins, revoking its sessions, and the development token
``make up`` prints."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from services.gateway.config import GatewaySettings
from services.gateway.dashboard import handlers
from services.gateway.dashboard.repository import DashboardRepository, Grant

#: A development token stays exchangeable this long, so the URL `make up` prints keeps working
#: while a newcomer runs `make demo` (production tokens: GATEWAY_DASHBOARD_TOKEN_REDEEM_S).
DEV_REDEEM_S = 24 * 3600.0


def add_commands(areas: Any) -> None:
    """Add the ``dashboard`` area to the admin CLI's parser."""
    dash = areas.add_parser("dashboard", help="the embeddable dashboard").add_subparsers(dest="action", required=True)
    allow = dash.add_parser(
        "allow-origin", help="let a partner embed the dashboard on an origin (https://app.example.com)"
    )
    allow.add_argument("partner_id")
    allow.add_argument("origin")
    disallow = dash.add_parser("disallow-origin", help="stop allowing an origin")
    disallow.add_argument("partner_id")
    disallow.add_argument("origin")
    dash.add_parser("origins", help="a partner's allowed origins").add_argument("partner_id")
    dash.add_parser("revoke-sessions", help="end every dashboard session of a partner").add_argument("partner_id")
    dev = dash.add_parser("dev-token", help="a dashboard URL for the development partner (make up)")
    dev.add_argument("--credentials-file", default=".local/dev-credentials.env")
    dev.add_argument("--base-url", default="http://127.0.0.1:8000")


async def run(
    args: argparse.Namespace, pool: asyncpg.Pool, settings: GatewaySettings, env: dict[str, str]
) -> dict[str, Any]:
    """Run one ``dashboard`` command; returns what to print (raises ValueError on bad input)."""
    repo = DashboardRepository(pool)
    match args.action:
        case "allow-origin" | "disallow-origin":
            origin = handlers.normalize_origin(args.origin)
            if origin is None:
                raise ValueError("an origin is scheme://host[:port], http or https, without path or wildcard")
            if args.action == "allow-origin":
                await repo.allow_origin(args.partner_id, origin)
            elif not await repo.disallow_origin(args.partner_id, origin):
                raise ValueError(f"{origin} is not allowed for {args.partner_id}")
            return {"partner_id": args.partner_id, "origins": await repo.allowed_origins(args.partner_id)}
        case "origins":
            return {"partner_id": args.partner_id, "origins": await repo.allowed_origins(args.partner_id)}
        case "revoke-sessions":
            sessions, tokens = await repo.revoke_sessions(args.partner_id)
            return {"partner_id": args.partner_id, "sessions_ended": sessions, "tokens_voided": tokens}
        case "dev-token":
            grant = Grant(env["PARTNER_ID"], env["TENANT_ID"], env["SUBTENANT_ID"], None, False)
            return await handlers.issue_token(
                repo,
                grant,
                now=datetime.now(UTC),
                redeem_s=DEV_REDEEM_S,
                session_ttl_s=settings.dashboard_session_ttl_s + DEV_REDEEM_S,
                base_url=args.base_url,
            )
    raise ValueError(f"unknown dashboard command {args.action}")


def credentials_path(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "credentials_file", ".local/dev-credentials.env"))
