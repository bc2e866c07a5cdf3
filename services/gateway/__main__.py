"""Entry point: ``python -m services.gateway [serve|migrate]``."""

from __future__ import annotations

import argparse
import asyncio
import sys

import uvicorn

from services.common.db import apply_migrations
from services.common.logging import configure_logging
from services.gateway.config import GatewaySettings

MIGRATIONS = "services.gateway.migrations"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.gateway")
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=["serve", "migrate"],
        help="serve the API (default) or apply database migrations and exit",
    )
    args = parser.parse_args(argv)
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level, settings.log_format)
    if args.command == "migrate":
        asyncio.run(apply_migrations(settings.database_url, settings.db_schema, MIGRATIONS))
        return 0
    uvicorn.run(
        "services.gateway.app:main_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
