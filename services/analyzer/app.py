"""Analyzer application: health endpoints, and the consumer of ``calls.fetched.v1`` running in
the lifespan. Every client (database pool, blob store, recognition workers, analysis engine) is
opened in the lifespan and closed on the way out."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from schemas.events import TOPIC_ANALYZED, TOPIC_FAILED, TOPIC_FETCHED, TOPIC_PROGRESS, AnyEvent, dump_event
from services.analyzer import handlers
from services.analyzer.analysis import AnalysisSettings, create_analysis_engine
from services.analyzer.asr import AsrSettings, create_transcriber
from services.analyzer.config import AnalyzerSettings
from services.analyzer.repository import AnalyzerRepository
from services.common.blobs import open_blob_store
from services.common.consumer import ConsumerSettings
from services.common.db import create_pool
from services.common.kafka import TopicSpec
from services.common.logging import configure_logging
from services.common.worker import KafkaWorker, host_worker, worker_app

log = logging.getLogger("services.analyzer")


def progress_announcer(app: FastAPI, topic: str) -> Callable[[AnyEvent], Awaitable[None]]:
    """``announce`` for the handlers: sends a progress event with the worker's producer without
    waiting for Kafka's ack (progress is best-effort and must not slow the call down); a send that
    fails later is logged at warning."""

    def sent(ack: asyncio.Future[object]) -> None:
        if not ack.cancelled() and ack.exception() is not None:
            log.warning("progress event not published", extra={"error": type(ack.exception()).__name__})

    async def announce(event: AnyEvent) -> None:
        worker: KafkaWorker | None = getattr(app.state, "worker", None)
        producer = worker.producer if worker is not None else None
        if producer is None:
            raise RuntimeError("the worker's producer is not started")
        ack = await producer.send(topic, dump_event(event), key=event.key())
        ack.add_done_callback(sent)

    return announce


def dead_letter_topic(settings: AnalyzerSettings) -> str:
    return settings.topic(f"{TOPIC_FETCHED}.{settings.group_id}.dlq")


def asr_settings(s: AnalyzerSettings) -> AsrSettings:
    return AsrSettings(
        engine=s.asr_engine,
        workers=s.asr_workers,
        timeout_base_s=s.asr_timeout_base_s,
        timeout_per_audio_s=s.asr_timeout_per_audio_s,
        whisper_model_dir=s.whisper_model_dir,
        whisper_compute_type=s.whisper_compute_type,
        whisper_beam_size=s.whisper_beam_size,
        openai_base_url=s.asr_openai_base_url,
        openai_api_key=s.asr_openai_api_key.get_secret_value() if s.asr_openai_api_key else None,
        openai_model=s.asr_openai_model,
    )


def analysis_settings(s: AnalyzerSettings) -> AnalysisSettings:
    return AnalysisSettings(
        engine=s.analysis_engine,
        llm_base_url=s.llm_base_url,
        llm_api_key=s.llm_api_key.get_secret_value() if s.llm_api_key else None,
        llm_model=s.llm_model,
        llm_timeout_s=s.llm_timeout_s,
        llm_max_attempts=s.llm_max_attempts,
    )


def main_app() -> FastAPI:
    settings = AnalyzerSettings()
    configure_logging("analyzer", settings.log_level, settings.log_format)
    return create_app(settings)


def create_app(settings: AnalyzerSettings | None = None) -> FastAPI:
    settings = settings or AnalyzerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            pool = await create_pool(
                settings.database_url,
                settings.db_schema,
                min_size=1,
                max_size=settings.db_pool_max_size,
                app_name="analyzer",
            )
            stack.push_async_callback(pool.close)
            blobs = await open_blob_store(settings, settings.spool_dir)
            stack.push_async_callback(blobs.close)
            transcriber = create_transcriber(asr_settings(settings))
            stack.push_async_callback(transcriber.close)
            analysis = create_analysis_engine(analysis_settings(settings))
            stack.push_async_callback(analysis.close)
            deps = handlers.AnalyzeDeps(
                repo=AnalyzerRepository(pool),
                blobs=blobs,
                transcriber=transcriber,
                analysis=analysis,
                asr_attempts=settings.asr_attempts,
                announce=progress_announcer(app, settings.topic(TOPIC_PROGRESS)),
            )
            partitions, replicas = settings.kafka_topic_partitions, settings.kafka_replication_factor
            await host_worker(
                stack,
                app,
                pool,
                ConsumerSettings(
                    bootstrap_servers=settings.kafka_bootstrap_servers,
                    group_id=settings.topic(settings.group_id),
                    topics=[settings.topic(TOPIC_FETCHED)],
                    dead_letter_topic=dead_letter_topic(settings),
                    on_give_up=handlers.gave_up,
                    topic_prefix=settings.kafka_topic_prefix,
                    client_id="analyzer",
                    concurrency=settings.in_flight,
                    max_attempts=settings.max_attempts,
                    session_timeout_ms=settings.session_timeout_ms,
                    heartbeat_interval_ms=min(3_000, settings.session_timeout_ms // 3),
                ),
                functools.partial(handlers.handle_fetched, deps=deps),
                topics=[
                    TopicSpec(settings.topic(name), partitions, replicas)
                    for name in (TOPIC_FETCHED, TOPIC_ANALYZED, TOPIC_FAILED, TOPIC_PROGRESS)
                ]
                + [TopicSpec(dead_letter_topic(settings), partitions, replicas)],
            )
            log.info(
                "analyzer started",
                extra={"asr_engine": settings.asr_engine, "analysis_engine": settings.analysis_engine},
            )
            yield

    return worker_app("callpipe analyzer", lifespan)
