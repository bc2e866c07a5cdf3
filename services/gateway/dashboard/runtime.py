"""What the gateway's lifespan starts for the dashboard: its connection pools, the projector,
and (on first use) the blob store, through which recordings are read (never from another
service's tables)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI

from services.common.blobs import BlobStore, open_blob_store
from services.common.db import create_pool
from services.common.settings import BlobStoreSettings
from services.gateway.config import GatewaySettings
from services.gateway.dashboard.projector import projector_worker
from services.gateway.dashboard.repository import DashboardRepository

log = logging.getLogger("services.gateway.dashboard")

#: How often expired sessions and tokens are deleted (a day after they ended).
PURGE_INTERVAL_S = 900.0
#: Chart.js as `make install` puts it (npm ci, pinned by package-lock.json); served by the app.
FRONTEND_DIR = Path(__file__).parent / "frontend"
CHART_JS = FRONTEND_DIR / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"


@dataclass
class DashboardContext:
    settings: GatewaySettings
    repo: DashboardRepository
    chart_js: Path | None
    stack: contextlib.AsyncExitStack
    _blobs: BlobStore | None = None
    _opening: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def blobs(self) -> BlobStore:
        """The blob store, opened on the first recording asked for: a process that never serves
        one (the read-model Deployment, say) never touches it."""
        async with self._opening:
            if self._blobs is None:
                blob_settings = BlobStoreSettings()
                spool = self.settings.dashboard_spool_dir or blob_settings.blob_root / ".dashboard"
                store = await open_blob_store(blob_settings, spool)
                self.stack.push_async_callback(store.close)
                self._blobs = store
            return self._blobs


async def start(app: FastAPI, settings: GatewaySettings, *, projector: bool) -> contextlib.AsyncExitStack:
    """Open the dashboard's clients and store its context on ``app.state.dashboard``; the returned
    stack closes everything (the lifespan awaits ``aclose()``)."""
    stack = contextlib.AsyncExitStack()
    try:
        pool = await create_pool(
            settings.database_url, settings.db_schema, min_size=1, max_size=4, app_name="gateway-dashboard"
        )
        stack.push_async_callback(pool.close)
        if projector:
            # Its own small pool: folding events never waits for a page's connection.
            fold_pool = await create_pool(
                settings.database_url, settings.db_schema, min_size=1, max_size=4, app_name="gateway-dashboard-fold"
            )
            stack.push_async_callback(fold_pool.close)
            worker = projector_worker(settings, DashboardRepository(fold_pool))
            worker.start()
            stack.push_async_callback(worker.stop)
        repo = DashboardRepository(pool)
        purger = asyncio.create_task(_purge(repo), name="dashboard-purge")
        stack.push_async_callback(_cancel, purger)
        chart_js = CHART_JS if CHART_JS.is_file() else None
        if chart_js is None:
            log.warning("Chart.js is not installed (make install runs npm ci): the dashboard shows no charts")
        app.state.dashboard = DashboardContext(settings, repo, chart_js, stack)
    except BaseException:
        await stack.aclose()
        raise
    return stack


async def _purge(repo: DashboardRepository) -> None:
    while True:
        await asyncio.sleep(PURGE_INTERVAL_S)
        try:
            await repo.purge_expired()
        except Exception as exc:  # a database hiccup must not end the loop
            log.warning("purging expired dashboard sessions failed", extra={"error": type(exc).__name__})


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
