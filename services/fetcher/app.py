"""Fetcher application: health endpoints, and the consumer of ``calls.ingested.v1`` running in
the lifespan. Every client is opened in the lifespan and closed on the way out."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from fastapi import FastAPI

from schemas.events import (
    TOPIC_ERASED,
    TOPIC_ERASURE_CONFIRMED,
    TOPIC_FAILED,
    TOPIC_FETCHED,
    TOPIC_INGESTED,
    TOPIC_PROGRESS,
)
from services.common import observability, ssrf
from services.common.blobs import open_blob_store
from services.common.consumer import dead_letter_topic
from services.common.erasure import start_purges
from services.common.kafka import TopicSpec
from services.common.logging import configure_logging
from services.common.progress import progress_announcer
from services.common.worker import (
    consumer_settings,
    end_undecodable_calls,
    host_worker,
    open_worker_pool,
    worker_app,
)
from services.fetcher import handlers
from services.fetcher.config import FetcherSettings
from services.fetcher.media import MediaInfo, MediaProblem, probe_file
from services.fetcher.repository import FetcherRepository

log = logging.getLogger("services.fetcher")


def _clean_spool(spool: Path) -> None:
    """Remove partial downloads left by processes of this host that no longer run (a crash
    mid-download); their calls are redelivered and downloaded again."""
    if not spool.is_dir():
        return
    for part in spool.glob("*.part"):
        pid = part.name.split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            part.unlink(missing_ok=True)


def main_app() -> FastAPI:
    settings = FetcherSettings()
    configure_logging("fetcher", settings.log_level, settings.log_format)
    observability.configure("fetcher", settings)
    return create_app(settings)


def create_app(settings: FetcherSettings | None = None) -> FastAPI:
    settings = settings or FetcherSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            pool = await open_worker_pool(stack, settings, "fetcher")
            blobs = await open_blob_store(settings, settings.spool)
            stack.push_async_callback(blobs.close)
            await asyncio.to_thread(_clean_spool, settings.spool)

            policy = ssrf.SsrfPolicy(allow_networks=ssrf.parse_networks(settings.ssrf_allow_networks))
            session = ssrf.make_session(
                policy,
                timeout=aiohttp.ClientTimeout(
                    total=settings.total_timeout_s,
                    connect=settings.connect_timeout_s,
                    sock_read=settings.read_timeout_s,
                ),
                limit=settings.concurrency * 2,
            )
            stack.push_async_callback(session.close)

            # forkserver: a clean child, not a fork of a process running an event loop and threads.
            executor = ProcessPoolExecutor(settings.probe_workers, mp_context=multiprocessing.get_context("forkserver"))
            stack.callback(executor.shutdown, wait=False, cancel_futures=True)

            async def probe(path: Path) -> MediaInfo | MediaProblem:
                loop = asyncio.get_running_loop()
                return await asyncio.wait_for(
                    loop.run_in_executor(executor, probe_file, str(path)), settings.probe_timeout_s
                )

            deps = handlers.FetchDeps(
                repo=FetcherRepository(pool),
                blobs=blobs,
                session=session,
                probe=probe,
                spool_dir=settings.spool,
                limits=handlers.DownloadLimits(
                    max_bytes=settings.max_bytes,
                    attempts=settings.download_attempts,
                    backoff_base_s=settings.backoff_base_s,
                    backoff_max_s=settings.backoff_max_s,
                    retry_after_max_s=settings.retry_after_max_s,
                    user_agent=settings.user_agent,
                ),
                announce=progress_announcer(app, settings.topic(TOPIC_PROGRESS)),
            )
            partitions, replicas = settings.kafka_topic_partitions, settings.kafka_replication_factor
            await host_worker(
                stack,
                app,
                pool,
                consumer_settings(
                    settings,
                    topics=[TOPIC_INGESTED, TOPIC_ERASED],
                    client_id="fetcher",
                    concurrency=settings.concurrency,
                    prefetch=settings.prefetch,
                    per_partner_concurrency=settings.per_partner_concurrency,
                    on_give_up=handlers.gave_up,
                    on_undecodable=end_undecodable_calls("fetch", handlers.SOURCE),
                ),
                functools.partial(handlers.handle_ingested, deps=deps),
                topics=[
                    TopicSpec(settings.topic(name), partitions, replicas)
                    for name in (
                        TOPIC_INGESTED,
                        TOPIC_ERASED,
                        TOPIC_FETCHED,
                        TOPIC_FAILED,
                        TOPIC_PROGRESS,
                        TOPIC_ERASURE_CONFIRMED,
                    )
                ]
                + [TopicSpec(dead_letter_topic(settings.topic(settings.group_id)), partitions, replicas)],
            )
            start_purges(
                stack,
                "fetcher",
                functools.partial(handlers.purge, deps=deps),
                interval_s=settings.retention_purge_interval_s,
            )
            log.info("fetcher started", extra={"group": settings.group_id, "blob_backend": settings.blob_backend})
            yield

    return worker_app("callpipe fetcher", lifespan)
