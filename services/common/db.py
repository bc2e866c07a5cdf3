"""PostgreSQL plumbing: connection pools and a small, lock-protected migration runner.

Each service owns one PostgreSQL schema (``gateway``, ``fetcher``, ...) and only ever sets its
``search_path`` to it, so no service can read another's tables by accident.
"""

from __future__ import annotations

import logging
import re
from importlib import resources
from typing import Any

import asyncpg
import orjson
from pydantic import SecretStr

from services.common.errors import MigrationError

log = logging.getLogger(__name__)

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _check_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise MigrationError(f"invalid schema name {name!r}")
    return name


async def _reset_connection(conn: asyncpg.Connection) -> None:
    """Run when a connection returns to its pool, instead of asyncpg's default reset (four
    statements, one round trip per release). The services keep no session state on pooled
    connections (no SET, LISTEN, session advisory locks or cursors outside a transaction), so
    only a transaction left open by an error needs undoing."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(
            typ,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def create_pool(
    dsn: SecretStr, schema: str, *, min_size: int = 2, max_size: int = 10, app_name: str = ""
) -> asyncpg.Pool:
    """A pool whose connections see only ``schema`` (plus ``public`` for extensions)."""
    pool = await asyncpg.create_pool(
        dsn.get_secret_value(),
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_reset_connection,
        server_settings={
            "search_path": f"{_check_ident(schema)},public",
            "application_name": app_name or schema,
        },
    )
    if pool is None:  # only None when created without awaiting, which we never do
        raise RuntimeError("asyncpg returned no pool")
    return pool


async def apply_migrations(dsn: SecretStr, schema: str, package: str) -> list[str]:
    """Apply the ``NNN_name.sql`` files of ``package`` not yet applied to ``schema``.

    One transaction under an advisory lock, so replicas starting together apply each file
    exactly once; returns the versions applied now.
    """
    schema = _check_ident(schema)
    files = sorted(
        (f.name, f.read_text(encoding="utf-8")) for f in resources.files(package).iterdir() if f.name.endswith(".sql")
    )
    conn: asyncpg.Connection = await asyncpg.connect(dsn.get_secret_value())
    applied_now: list[str] = []
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            await conn.execute(f"SET LOCAL search_path TO {schema},public")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for name, sql in files:
                version = name.removesuffix(".sql")
                if version in done:
                    continue
                try:
                    await conn.execute(sql)
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"{schema}/{name}: {exc}") from exc
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
                applied_now.append(version)
    finally:
        await conn.close()
    if applied_now:
        log.info("migrations applied", extra={"schema": schema, "versions": applied_now})
    return applied_now


PING_TIMEOUT_S = 2.0


async def ping(pool: asyncpg.Pool) -> bool:
    """True when a pooled connection answers ``SELECT 1`` within ``PING_TIMEOUT_S``."""
    try:
        async with pool.acquire(timeout=PING_TIMEOUT_S) as conn:
            value: Any = await conn.fetchval("SELECT 1", timeout=PING_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    return bool(value == 1)
