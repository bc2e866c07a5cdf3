"""Hosting a Kafka worker inside a service's lifespan: topics, producer and consumer runtime are
started in the background and retried until Kafka answers, so the process serves ``/healthz``
(and an honest ``/readyz``) while its dependencies come up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import FastAPI

from services.common.consumer import ConsumerRuntime, ConsumerSettings, Handler
from services.common.db import ping
from services.common.health import health_router
from services.common.kafka import KafkaProbe, TopicSpec, ensure_topics, make_producer

log = logging.getLogger(__name__)


class KafkaWorker:
    def __init__(
        self,
        settings: ConsumerSettings,
        handler: Handler,
        *,
        topics: list[TopicSpec],
        max_backoff_s: float = 10.0,
    ) -> None:
        self._settings = settings
        self._handler = handler
        self._topics = topics
        self._max_backoff_s = max_backoff_s
        self._producer: AIOKafkaProducer | None = None
        self.runtime: ConsumerRuntime | None = None
        self._starter: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._starter = asyncio.create_task(self._start(), name=f"start-{self._settings.group_id}")

    async def _start(self) -> None:
        delay = 0.5
        while True:
            producer = make_producer(self._settings.bootstrap_servers, self._settings.client_id)
            try:
                await ensure_topics(self._settings.bootstrap_servers, self._topics)
                await producer.start()
                runtime = ConsumerRuntime(self._settings, self._handler, producer)
                await runtime.start()
            except (KafkaError, OSError) as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                log.warning("Kafka not ready; retrying", extra={"error": type(exc).__name__, "retry_in_s": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff_s)
                continue
            self._producer, self.runtime = producer, runtime
            log.info("consuming", extra={"group": self._settings.group_id, "topics": self._settings.topics})
            return

    @property
    def producer(self) -> AIOKafkaProducer | None:
        """The producer the runtime publishes with, once started (None until Kafka answered):
        handlers may publish best-effort side events (e.g. progress) through it."""
        return self._producer

    def alive(self) -> bool:
        return self.runtime is not None and self.runtime.alive()

    async def stop(self) -> None:
        if self._starter is not None and not self._starter.done():
            self._starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starter
        if self.runtime is not None:
            await self.runtime.stop()
        if self._producer is not None:
            await self._producer.stop()


async def host_worker(
    stack: contextlib.AsyncExitStack,
    app: FastAPI,
    pool: asyncpg.Pool,
    consumer: ConsumerSettings,
    handler: Handler,
    *,
    topics: list[TopicSpec],
) -> KafkaWorker:
    """Start a worker inside a service's lifespan (stopped by ``stack``) and publish the
    service's readiness checks: PostgreSQL, Kafka, and a live consumer."""
    worker = KafkaWorker(consumer, handler, topics=topics)
    worker.start()
    stack.push_async_callback(worker.stop)
    probe = KafkaProbe(consumer.bootstrap_servers)
    stack.push_async_callback(probe.close)

    async def consuming() -> bool:
        return worker.alive()

    app.state.worker = worker
    app.state.readiness_checks = {"postgres": lambda: ping(pool), "kafka": probe.check, "consumer": consuming}
    return worker


def worker_app(title: str, lifespan: Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]) -> FastAPI:
    """A worker's HTTP side: health endpoints only."""
    app = FastAPI(title=title, version="1.0.0", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(health_router())
    return app
