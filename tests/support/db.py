"""Throw-away PostgreSQL databases for tests, migrated once and cloned from a template."""

from __future__ import annotations

import asyncio
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from pydantic import SecretStr

from services.common.db import apply_migrations

# (schema, migrations package) of every service, applied once per test session.
SERVICES = [
    ("gateway", "services.gateway.migrations"),
    ("fetcher", "services.fetcher.migrations"),
    ("analyzer", "services.analyzer.migrations"),
    ("notifier", "services.notifier.migrations"),
]


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_database(server_url: str, template: str | None = None) -> tuple[str, str]:
    """Create a uniquely named database (optionally a copy of ``template``); returns (name, url)."""
    name = f"callpipe_test_{uuid.uuid4().hex[:12]}"
    suffix = f" TEMPLATE {template}" if template else ""
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"{suffix}'))
    return name, with_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    # FORCE cannot end an autovacuum worker for a non-superuser; such a worker finishes within
    # moments, so the drop is tried again rather than failing a test's teardown.
    for attempt in range(10):
        try:
            asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except asyncpg.InsufficientPrivilegeError:
            if attempt == 9:
                raise
            time.sleep(0.5)


def migrate(url: str) -> None:
    async def apply_all() -> None:
        for schema, package in SERVICES:
            await apply_migrations(SecretStr(url), schema, package)

    asyncio.run(apply_all())
