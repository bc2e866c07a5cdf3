"""Gateway application factory. The lifespan opens every client and closes it; nothing is
created at import time."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas.events import (
    TOPIC_ANALYZED,
    TOPIC_CALLBACK_COMMANDS,
    TOPIC_DELIVERIES,
    TOPIC_ERASED,
    TOPIC_ERASURE_CONFIRMED,
    TOPIC_FAILED,
    TOPIC_FETCHED,
    TOPIC_INGESTED,
    TOPIC_PROGRESS,
)
from services.common import metrics, observability
from services.common.consumer import ConsumerSettings, dead_letter_topic
from services.common.db import create_pool, ping
from services.common.erasure import start_purges
from services.common.health import health_router
from services.common.kafka import KafkaProbe, TopicSpec, ensure_topics, make_producer
from services.common.logging import configure_logging
from services.common.outbox import OutboxRelay
from services.common.worker import KafkaWorker
from services.gateway import handlers, read_model
from services.gateway.api import INGEST_PATH, error_response, json_response, router
from services.gateway.config import GatewaySettings
from services.gateway.dashboard import runtime as dashboard_runtime
from services.gateway.dashboard.routes import router as dashboard_router
from services.gateway.deps import GatewayContext
from services.gateway.errors import GatewayError
from services.gateway.handlers import ConfigSnapshots, CredentialCache
from services.gateway.models import BATCH, CONFIG, ERASURE
from services.gateway.repository import GatewayRepository

log = logging.getLogger("services.gateway")
#: What the status read model follows.
READ_MODEL_TOPICS = (
    TOPIC_INGESTED,
    TOPIC_FETCHED,
    TOPIC_ANALYZED,
    TOPIC_FAILED,
    TOPIC_PROGRESS,
    TOPIC_DELIVERIES,
    TOPIC_ERASED,
    TOPIC_ERASURE_CONFIRMED,
)
_INTERNAL_ERROR = orjson.dumps({"success": False, "message": "Internal server error"})


class RequestLogMiddleware:
    """Access log line per request and a generic 500 for anything unexpected.

    Logs method, path, status, latency and the authenticated partner, never headers or bodies.
    An unhandled exception is logged with its traceback here and answered with the spec's
    500 body: no stack trace or internal detail reaches the client.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started_at = time.perf_counter()
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled error", extra={"request_id": request_id, "path": scope.get("path")})
            if not response_started:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(_INTERNAL_ERROR)).encode()),
                            (b"x-request-id", request_id.encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": _INTERNAL_ERROR})
        finally:
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "ms": round((time.perf_counter() - started_at) * 1000, 2),
                    "partner_id": scope["state"].get("partner_id"),
                },
            )


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the request body model, which the route reads itself (to enforce
    the size limit before parsing and to answer validation errors in the spec's shape)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, adapter in (("BatchIn", BATCH), ("AnalysisConfigIn", CONFIG), ("ErasureIn", ERASURE)):
        body = adapter.json_schema(ref_template="#/components/schemas/{model}")
        components.update(body.pop("$defs", {}))
        components[name] = body
    app.openapi_schema = schema
    return schema


def read_model_worker(settings: GatewaySettings, repo: GatewayRepository) -> KafkaWorker:
    """The read model's consumer: every gateway process joins one group, so the partitions are
    shared between them; a message that keeps failing goes to ``<group>.dlq``."""
    group = settings.kafka_topic_prefix + settings.read_model_group_id
    dead_letter = dead_letter_topic(group)
    partitions, replicas = settings.kafka_topic_partitions, settings.kafka_replication_factor
    return KafkaWorker(
        ConsumerSettings(
            kafka=settings.kafka(),
            group_id=group,
            topics=[settings.topic(t) for t in READ_MODEL_TOPICS],
            dead_letter_topic=dead_letter,
            topic_prefix=settings.kafka_topic_prefix,
            client_id="gateway-read-model",
            concurrency=settings.read_model_concurrency,
        ),
        functools.partial(read_model.project, store=read_model.BatchingStore(repo)),
        topics=[TopicSpec(settings.topic(t), partitions, replicas) for t in READ_MODEL_TOPICS]
        + [TopicSpec(dead_letter, partitions, replicas)],
    )


def add_error_handlers(app: FastAPI) -> None:
    """Every error becomes the spec's shape here, and only here."""

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> Response:
        if request.url.path == INGEST_PATH:
            metrics.INGEST_REJECTED.labels(exc.code).inc()
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return json_response({"success": False, "message": str(exc.detail)}, exc.status_code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_: Request, exc: RequestValidationError) -> Response:
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "message": str(e["msg"])} for e in exc.errors()]
        return json_response({"success": False, "message": "Validation failed", "errors": errors}, 422)


async def open_read_model(settings: GatewaySettings) -> tuple[asyncpg.Pool | None, KafkaWorker | None]:
    """The status read model's pool and consumer, when this process hosts it."""
    if not settings.read_model_enabled:
        return None, None
    # Its own small pool: folding events never waits for, or delays, a request's connection.
    model_pool = await create_pool(
        settings.database_url,
        settings.db_schema,
        min_size=1,
        # Batches need few connections; a failed batch retries its changes one by one.
        max_size=min(settings.read_model_concurrency, 4),
        app_name="gateway-read-model",
    )
    return model_pool, read_model_worker(settings, GatewayRepository(model_pool))


def retention_purges(settings: GatewaySettings, model_pool: asyncpg.Pool | None) -> contextlib.AsyncExitStack:
    """The retention purge, where the read model runs (its pool); the stack stops it. Every such
    process purges on the schedule; the purge's row locks (SKIP LOCKED) keep two of them from
    doing the same rows, and a purge is idempotent anyway."""
    stack = contextlib.AsyncExitStack()
    if model_pool is not None:
        repo = GatewayRepository(model_pool)
        start_purges(stack, "gateway", repo.purge_expired, interval_s=settings.retention_purge_interval_s)
    return stack


def main_app() -> FastAPI:
    """Factory used by ``python -m services.gateway`` (once per uvicorn worker process)."""
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level, settings.log_format)
    observability.configure("gateway", settings)
    return create_app(settings)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(
            settings.database_url,
            settings.db_schema,
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            app_name="gateway",
        )
        model_pool, worker = await open_read_model(settings)
        topic = settings.topic(TOPIC_INGESTED)
        commands_topic = settings.topic(TOPIC_CALLBACK_COMMANDS)
        kafka = settings.kafka()

        async def prepare_topics() -> None:
            partitions, replicas = settings.kafka_topic_partitions, settings.kafka_replication_factor
            names = (topic, commands_topic, settings.topic(TOPIC_ERASED))
            await ensure_topics(kafka, [TopicSpec(name, partitions, replicas) for name in names])

        relay = OutboxRelay(
            pool,
            lambda: make_producer(kafka, "gateway-outbox"),
            prepare=prepare_topics,
            batch_size=settings.outbox_batch_size,
            poll_interval=settings.outbox_poll_interval_s,
            on_unpublishable=functools.partial(handlers.unpublishable, failed_topic=settings.topic(TOPIC_FAILED)),
        )
        probe = KafkaProbe(kafka)
        repo = GatewayRepository(pool)
        credentials = CredentialCache(repo, settings.credential_cache_ttl_s)
        snapshots = ConfigSnapshots(repo, settings.config_cache_ttl_s)
        app.state.gateway = GatewayContext(
            settings,
            repo,
            credentials,
            snapshots,
            relay,
            ingest_topic=topic,
            commands_topic=commands_topic,
            erased_topic=settings.topic(TOPIC_ERASED),
        )
        # Readiness stays PostgreSQL and Kafka: ingestion does not depend on the read model, so a
        # lagging consumer must not take the API out of the load balancer.
        app.state.readiness_checks = {"postgres": lambda: ping(pool), "kafka": probe.check}
        app.state.readiness_details = {"outbox": relay.details}
        app.state.metrics_refresh = [relay.refresh_metrics]
        relay.start()
        if worker is not None:
            worker.start()
        app.state.read_model = worker
        dashboard = await dashboard_runtime.start(app, settings, projector=settings.read_model_enabled)
        # Stopped first, with the dashboard's clients.
        dashboard.push_async_callback(retention_purges(settings, model_pool).aclose)
        log.info("gateway started", extra={"topic": topic, "read_model": worker is not None})
        try:
            yield
        finally:
            await dashboard.aclose()
            if worker is not None:
                await worker.stop()
            if model_pool is not None:
                await model_pool.close()
            await relay.stop()
            await probe.close()
            await pool.close()
            observability.process_exiting()

    app = FastAPI(
        title="Call ingestion API",
        version="1.0.0",
        description="Batch call ingestion for partners. Reference: docs/api-reference.md.",
        lifespan=lifespan,
    )
    app.include_router(router)
    app.include_router(dashboard_router)
    app.include_router(health_router())
    app.include_router(metrics.metrics_router())

    add_error_handlers(app)
    if settings.metrics_enabled:
        app.add_middleware(observability.HttpObservability)
    # Outermost: its 500 for an unexpected error is what the metrics and the span then record.
    app.add_middleware(RequestLogMiddleware)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
