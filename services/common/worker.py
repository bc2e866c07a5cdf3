"""Hosting a Kafka worker inside a service's lifespan: topics, producer and consumer runtime are
started in the background and retried until Kafka answers, so the process serves ``/healthz``
(and an honest ``/readyz``) while its dependencies come up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas.events import AnyEvent, FailureStage, failure_from_key
from services.common.backoff import Backoff
from services.common.consumer import (
    ConsumerRuntime,
    ConsumerSettings,
    GiveUp,
    Handler,
    Undecodable,
    dead_letter_topic,
    partner_of,
)
from services.common.db import create_pool, ping
from services.common.health import health_router
from services.common.kafka import KafkaConnection, KafkaProbe, TopicSpec, ensure_topics, make_producer
from services.common.metrics import metrics_router
from services.common.observability import process_exiting

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
        retries = Backoff(0.5, self._max_backoff_s)
        attempt = 0
        while True:
            attempt += 1
            producer = make_producer(self._settings.kafka, self._settings.client_id)
            try:
                await ensure_topics(self._settings.kafka, self._topics)
                await producer.start()
                runtime = ConsumerRuntime(self._settings, self._handler, producer)
                await runtime.start()
            except (KafkaError, OSError) as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                delay = retries.delay(attempt)
                log.warning(
                    "Kafka not ready; retrying", extra={"error": type(exc).__name__, "retry_in_s": round(delay, 2)}
                )
                await asyncio.sleep(delay)
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
    probe = KafkaProbe(consumer.kafka)
    stack.push_async_callback(probe.close)

    async def consuming() -> bool:
        return worker.alive()

    app.state.worker = worker
    app.state.readiness_checks = {"postgres": lambda: ping(pool), "kafka": probe.check, "consumer": consuming}
    return worker


class WorkerConfig(Protocol):
    """The settings every worker service has (its pydantic-settings class provides them)."""

    def kafka(self) -> KafkaConnection: ...
    @property
    def kafka_topic_prefix(self) -> str: ...
    @property
    def group_id(self) -> str: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def session_timeout_ms(self) -> int: ...
    @property
    def database_url(self) -> SecretStr: ...
    @property
    def db_schema(self) -> str: ...
    @property
    def db_pool_max_size(self) -> int: ...
    def topic(self, base: str) -> str: ...


async def open_worker_pool(stack: contextlib.AsyncExitStack, settings: WorkerConfig, app_name: str) -> asyncpg.Pool:
    """The service's PostgreSQL pool (its own schema), closed by ``stack``."""
    pool = await create_pool(
        settings.database_url, settings.db_schema, min_size=1, max_size=settings.db_pool_max_size, app_name=app_name
    )
    stack.push_async_callback(pool.close)
    return pool


def consumer_settings(
    settings: WorkerConfig,
    *,
    topics: Sequence[str],
    client_id: str,
    concurrency: int,
    on_give_up: GiveUp | None = None,
    on_undecodable: Undecodable | None = None,
    prefetch: int = 0,
    per_partner_concurrency: int = 0,
) -> ConsumerSettings:
    """The consumer runtime's settings for a worker: ``topics`` are base names (the prefix is
    added, to them and to the group), dead letters go to ``<group>.dlq``, heartbeats at a third
    of the session timeout. ``per_partner_concurrency`` caps the slots one partner's calls take."""
    group = settings.topic(settings.group_id)
    return ConsumerSettings(
        kafka=settings.kafka(),
        group_id=group,
        topics=[settings.topic(t) for t in topics],
        dead_letter_topic=dead_letter_topic(group),
        on_give_up=on_give_up,
        on_undecodable=on_undecodable,
        prefetch=prefetch,
        fairness_key=partner_of if per_partner_concurrency else None,
        per_key_concurrency=per_partner_concurrency,
        topic_prefix=settings.kafka_topic_prefix,
        client_id=client_id,
        concurrency=concurrency,
        max_attempts=settings.max_attempts,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=min(3_000, settings.session_timeout_ms // 3),
    )


def worker_app(title: str, lifespan: Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]) -> FastAPI:
    """A worker's HTTP side: health endpoints and ``/metrics``, every other answer in the API's
    error shape (``{"success": false, "message": ...}``), like the gateway's."""

    @contextlib.asynccontextmanager
    async def observed(app: FastAPI) -> AsyncIterator[None]:
        try:
            async with lifespan(app):
                yield
        finally:
            process_exiting()

    app = FastAPI(title=title, version="1.0.0", lifespan=observed, docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(health_router())
    app.include_router(metrics_router())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"success": False, "message": str(exc.detail)}, exc.status_code, exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on the health port")
        return JSONResponse({"success": False, "message": "Internal server error"}, 500)

    return app


def end_undecodable_calls(stage: FailureStage, source: str) -> Undecodable:
    """The ``on_undecodable`` of a processing stage: a message nothing can be read from ends its
    call as ``calls.failed.v1`` (``undecodable_event``) built from the message key, with an id
    derived from the message's position, so a redelivery publishes the same event."""

    def end(record: ConsumerRecord) -> list[AnyEvent]:
        position = f"{record.topic}/{record.partition}/{record.offset}/undecodable"
        failed = failure_from_key(
            record.key,
            record.value or b"",
            stage=stage,
            source=source,
            event_id=uuid.uuid5(_UNDECODABLE_NAMESPACE, position),
        )
        return [failed] if failed is not None else []

    return end


_UNDECODABLE_NAMESPACE = uuid.UUID("5b0f9c1e-2d7a-4e63-8f41-c7a9e2d3b6f0")
