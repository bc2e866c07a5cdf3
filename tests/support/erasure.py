"""Erasure and retention in tests: events with a tenant's retention, erasure events, and a look
at every table of a service's schema for what is left of a call."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from schemas.analysis import DEFAULT_CONFIG, ConfigSnapshot, DataProtection, Retention
from schemas.events import CallErased, CallErasedPayload, call_key, follow_up

# Rows whose columns name no call but which belong to it all the same.
_KEYED = {"outbox_dead": "key"}


def retention_snapshot(**days: float | None) -> ConfigSnapshot:
    """The default configuration keeping a call's data ``days`` (``recording_days``,
    ``transcript_days``, ``results_days``), as the gateway snapshots it into the ingested event."""
    config = DEFAULT_CONFIG.model_copy(update={"data_protection": DataProtection(retention=Retention(**days))})
    return ConfigSnapshot(config_id=config.config_id(), config=config, source="tenant")


def with_retention(event: Any, **days: float | None) -> Any:
    """``event`` (an ingested event) whose snapshotted configuration keeps its data ``days``."""
    payload = event.payload.model_copy(update={"analysis_config": retention_snapshot(**days)})
    return event.model_copy(update={"payload": payload})


def erased_event(of: Any, erasure_id: uuid.UUID | None = None) -> CallErased:
    """The ``calls.erased.v1`` the gateway publishes for the call of ``of`` (any event of it)."""
    return CallErased(
        **follow_up(of, event_id=uuid.uuid4(), source="gateway"),
        payload=CallErasedPayload(erasure_id=erasure_id or uuid.uuid4(), requested_at=datetime.now(UTC)),
    )


async def rows_of_call(database_url: str, schema: str, partner_id: str, call_id: str) -> dict[str, int]:
    """How many rows of every table in ``schema`` belong to the call (by partner_id/call_id
    columns, or a message key), tombstones (``erased_calls``) left out; tables with none are
    omitted."""
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch(
            "SELECT table_name, array_agg(column_name::text) AS columns FROM information_schema.columns"
            " WHERE table_schema = $1 GROUP BY table_name",
            schema,
        )
        found: dict[str, int] = {}
        for t in tables:
            name, columns = t["table_name"], set(t["columns"])
            if name == "erased_calls":
                continue
            table = f'"{schema}"."{name}"'
            if {"partner_id", "call_id"} <= columns:
                n = await conn.fetchval(
                    f"SELECT count(*) FROM {table} WHERE partner_id = $1 AND call_id = $2",  # noqa: S608
                    partner_id,
                    call_id,
                )
            elif name in _KEYED:
                n = await conn.fetchval(
                    f"SELECT count(*) FROM {table} WHERE {_KEYED[name]} = $1",  # noqa: S608
                    call_key(partner_id, call_id),
                )
            elif "keys" in columns:
                n = await conn.fetchval(
                    f"SELECT count(*) FROM {table} WHERE $1 = ANY(keys)",  # noqa: S608
                    call_key(partner_id, call_id),
                )
            elif "delivery_id" in columns:
                n = await conn.fetchval(
                    f"SELECT count(*) FROM {table} WHERE delivery_id IN"  # noqa: S608
                    f' (SELECT delivery_id FROM "{schema}".deliveries WHERE partner_id = $1 AND call_id = $2)',
                    partner_id,
                    call_id,
                )
            else:
                continue
            if n:
                found[name] = n
        return found
    finally:
        await conn.close()
