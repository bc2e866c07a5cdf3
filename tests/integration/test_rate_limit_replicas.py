"""The per-partner rate limit holds across gateway replicas (separate processes)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson
import pytest

from services.gateway.config import GatewaySettings
from tests.factories import batch
from tests.support.gateway import INGEST, create_partner, gateway_process

pytestmark = pytest.mark.slow


async def test_two_gateway_processes_share_one_limit(
    gateway_settings: GatewaySettings, database_url: str, tmp_path: Path
) -> None:
    partner = await create_partner(database_url, rate_limit=10)
    headers = {**partner.headers(), "content-type": "application/json"}
    with (
        gateway_process(gateway_settings, tmp_path / "a.log") as url_a,
        gateway_process(gateway_settings, tmp_path / "b.log") as url_b,
    ):
        async with httpx.AsyncClient(timeout=30) as client:

            async def send(url: str) -> int:
                response = await client.post(f"{url}{INGEST}", content=orjson.dumps(batch()), headers=headers)
                return response.status_code

            # 16 requests, 8 to each replica, concurrently: exactly the limit gets through.
            statuses = await asyncio.gather(*(send(url_a if i % 2 else url_b) for i in range(16)))
            assert sorted(statuses) == [200] * 10 + [429] * 6
            # each replica has refused some: the state is shared, not per process
            per_replica = {
                url: [s for i, s in enumerate(statuses) if (url_a if i % 2 else url_b) == url] for url in (url_a, url_b)
            }
            assert all(200 in s for s in per_replica.values())
            # and both keep refusing once the limit is spent
            assert await send(url_a) == 429
            assert await send(url_b) == 429
