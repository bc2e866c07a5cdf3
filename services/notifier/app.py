"""Notifier application: health endpoints, and in the lifespan the consumer of
``calls.analyzed.v1``, ``calls.failed.v1`` and ``callbacks.commands.v1``, the callback dispatcher
and the outbox relay of ``callbacks.deliveries.v1``. Every client is opened in the lifespan and
closed on the way out."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from fastapi import FastAPI

from schemas.events import (
    TOPIC_ANALYZED,
    TOPIC_CALLBACK_COMMANDS,
    TOPIC_DELIVERIES,
    TOPIC_ERASED,
    TOPIC_ERASURE_CONFIRMED,
    TOPIC_FAILED,
)
from services.common import observability, ssrf
from services.common.consumer import dead_letter_topic
from services.common.erasure import start_purges
from services.common.kafka import TopicSpec, ensure_topics, make_producer
from services.common.logging import configure_logging
from services.common.outbox import OutboxRelay
from services.common.worker import consumer_settings, host_worker, open_worker_pool, worker_app
from services.notifier import handlers
from services.notifier.config import NotifierSettings
from services.notifier.dispatcher import Dispatcher, DispatchSettings, RetryPolicy
from services.notifier.repository import NotifierRepository

log = logging.getLogger("services.notifier")

CONSUMED = (TOPIC_ANALYZED, TOPIC_FAILED, TOPIC_CALLBACK_COMMANDS, TOPIC_ERASED)


def dispatch_settings(s: NotifierSettings) -> DispatchSettings:
    return DispatchSettings(
        concurrency=s.dispatch_concurrency,
        per_partner=s.per_partner_concurrency,
        poll_interval_s=s.poll_interval_s,
        lease_s=s.lease,
        timeout_s=s.timeout_s,
        user_agent=s.user_agent,
        allow_http=s.allow_http,
        retry=RetryPolicy(
            attempts=s.delivery_attempts,
            base_s=s.retry_base_s,
            factor=s.retry_factor,
            max_s=s.retry_max_s,
            jitter=s.retry_jitter,
            retry_after_max_s=s.retry_after_max_s,
        ),
    )


def tls_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """Verifying client context: the system's CAs, or only those of ``ca_bundle``."""
    return ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)


def callback_session(settings: NotifierSettings, context: ssl.SSLContext) -> aiohttp.ClientSession:
    """The SSRF-guarded session every callback goes through."""
    policy = ssrf.SsrfPolicy(
        allow_networks=ssrf.parse_networks(settings.ssrf_allow_networks),
        schemes=frozenset({"http", "https"} if settings.allow_http else {"https"}),
        max_redirects=0,
    )
    return ssrf.make_session(
        policy,
        # The attempt's own deadline (timeout_s) is enforced by the dispatcher; this is a backstop.
        timeout=aiohttp.ClientTimeout(total=settings.timeout_s + 5, connect=settings.connect_timeout_s),
        ssl_context=context,
        limit=settings.dispatch_concurrency,
    )


def main_app() -> FastAPI:
    settings = NotifierSettings()
    configure_logging("notifier", settings.log_level, settings.log_format)
    observability.configure("notifier", settings)
    return create_app(settings)


def create_app(settings: NotifierSettings | None = None) -> FastAPI:
    settings = settings or NotifierSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            pool = await open_worker_pool(stack, settings, "notifier")
            repo = NotifierRepository(pool, settings.secret_box())
            # Secrets written in plain text by an older version, or wrapped by a rotated-out key,
            # are sealed with the current key before anything is signed.
            resealed = await repo.seal_secrets()
            if any(resealed.values()):
                log.info("signing secrets sealed", extra=resealed)
            kafka = settings.kafka()
            partitions, replicas = settings.kafka_topic_partitions, settings.kafka_replication_factor

            async def prepare_topics() -> None:
                await ensure_topics(kafka, [TopicSpec(settings.topic(TOPIC_DELIVERIES), partitions, replicas)])

            relay = OutboxRelay(
                pool,
                lambda: make_producer(kafka, "notifier-outbox"),
                prepare=prepare_topics,
                batch_size=settings.outbox_batch_size,
                poll_interval=settings.outbox_poll_interval_s,
            )
            relay.start()
            stack.push_async_callback(relay.stop)

            # Reading the CA files is blocking I/O: off the event loop.
            context = await asyncio.to_thread(tls_context, settings.ca_bundle)
            session = callback_session(settings, context)
            stack.push_async_callback(session.close)
            dispatcher = Dispatcher(
                repo, session, dispatch_settings(settings), topic=settings.topic, changed=relay.wake
            )
            dispatcher.start()
            # Stopped before the session and the relay (the stack unwinds in reverse), so the
            # last attempts are recorded and their events published.
            stack.push_async_callback(dispatcher.stop)

            def recorded() -> None:
                dispatcher.wake()
                relay.wake()

            deps = handlers.NotifyDeps(repo=repo, topic=settings.topic, recorded=recorded)
            await host_worker(
                stack,
                app,
                pool,
                consumer_settings(
                    settings,
                    topics=CONSUMED,
                    client_id="notifier",
                    concurrency=settings.concurrency,
                ),
                functools.partial(handlers.handle_event, deps=deps),
                topics=[
                    TopicSpec(settings.topic(name), partitions, replicas)
                    for name in (*CONSUMED, TOPIC_DELIVERIES, TOPIC_ERASURE_CONFIRMED)
                ]
                + [TopicSpec(dead_letter_topic(settings.topic(settings.group_id)), partitions, replicas)],
            )

            start_purges(
                stack,
                "notifier",
                functools.partial(handlers.purge, repo=repo),
                interval_s=settings.retention_purge_interval_s,
            )

            async def dispatching() -> bool:
                return dispatcher.alive()

            app.state.dispatcher = dispatcher
            app.state.relay = relay
            app.state.readiness_checks = {**app.state.readiness_checks, "dispatcher": dispatching}
            app.state.readiness_details = {"outbox": relay.details}
            app.state.metrics_refresh = [relay.refresh_metrics]
            log.info(
                "notifier started",
                extra={
                    "group": settings.group_id,
                    "dispatch_concurrency": settings.dispatch_concurrency,
                    "per_partner_concurrency": settings.per_partner_concurrency,
                },
            )
            yield

    return worker_app("callpipe notifier", lifespan)
