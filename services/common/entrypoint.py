"""The command line every service shares: ``python -m services.<name> [serve|migrate]``."""

from __future__ import annotations

import argparse
import asyncio

import uvicorn

from services.common import metrics
from services.common.db import apply_migrations
from services.common.http_server import HttpLimits, protocol_factory
from services.common.logging import configure_logging
from services.common.settings import ServiceSettings


def run_service(
    name: str,
    settings: ServiceSettings,
    *,
    host: str,
    port: int,
    db_schema: str,
    workers: int = 1,
    argv: list[str] | None = None,
) -> int:
    """Serve ``services.<name>.app:main_app`` (default), or apply the service's migrations."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{name}")
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=["serve", "migrate"],
        help="run the service (default) or apply its database migrations and exit",
    )
    args = parser.parse_args(argv)
    configure_logging(name, settings.log_level, settings.log_format)
    if args.command == "migrate":
        asyncio.run(apply_migrations(settings.database_url, db_schema, f"services.{name}.migrations"))
        return 0
    limits = HttpLimits(
        max_url_bytes=settings.http_max_url_bytes,
        max_header_bytes=settings.http_max_header_bytes,
        max_headers=settings.http_max_headers,
        header_timeout_s=settings.http_header_timeout_s,
    )
    # Several worker processes share one metrics directory (services.common.metrics).
    if settings.metrics_enabled:
        metrics.prepare_multiprocess(workers)
    uvicorn.run(
        f"services.{name}.app:main_app",
        factory=True,
        # uvicorn calls it as it calls a protocol class; a partial so it pickles into workers.
        http=protocol_factory(limits),  # type: ignore[arg-type]
        # No service speaks WebSocket: an upgrade request is served as plain HTTP by the app
        # (the websockets protocol would answer it 403 text/plain).
        ws="none",
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=30,
    )
    metrics.remove_multiprocess_dir()
    return 0
