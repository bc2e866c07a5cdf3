"""Analyzer application: health endpoints, and the consumer of ``calls.fetched.v1`` running in
the lifespan. Every client (database pool, blob store, recognition workers, analysis engine) is
opened in the lifespan and closed on the way out."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from schemas.events import (
    TOPIC_ANALYZED,
    TOPIC_ERASED,
    TOPIC_ERASURE_CONFIRMED,
    TOPIC_FAILED,
    TOPIC_FETCHED,
    TOPIC_PROGRESS,
)
from services.analyzer import handlers
from services.analyzer.analysis import AnalysisSettings, create_analysis_engine
from services.analyzer.asr import AsrSettings, create_transcriber
from services.analyzer.config import AnalyzerSettings
from services.analyzer.repository import AnalyzerRepository
from services.common import observability
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

log = logging.getLogger("services.analyzer")


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
    observability.configure("analyzer", settings)
    return create_app(settings)


def create_app(settings: AnalyzerSettings | None = None) -> FastAPI:
    settings = settings or AnalyzerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            pool = await open_worker_pool(stack, settings, "analyzer")
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
                spool_dir=settings.spool_dir,
            )
            partitions, replicas = settings.kafka_topic_partitions, settings.kafka_replication_factor
            await host_worker(
                stack,
                app,
                pool,
                consumer_settings(
                    settings,
                    topics=[TOPIC_FETCHED, TOPIC_ERASED],
                    client_id="analyzer",
                    concurrency=settings.in_flight,
                    on_give_up=handlers.gave_up,
                    on_undecodable=end_undecodable_calls("analyze", handlers.SOURCE),
                ),
                functools.partial(handlers.handle_fetched, deps=deps),
                topics=[
                    TopicSpec(settings.topic(name), partitions, replicas)
                    for name in (
                        TOPIC_FETCHED,
                        TOPIC_ERASED,
                        TOPIC_ANALYZED,
                        TOPIC_FAILED,
                        TOPIC_PROGRESS,
                        TOPIC_ERASURE_CONFIRMED,
                    )
                ]
                + [TopicSpec(dead_letter_topic(settings.topic(settings.group_id)), partitions, replicas)],
            )
            start_purges(
                stack,
                "analyzer",
                functools.partial(handlers.purge, deps=deps),
                interval_s=settings.retention_purge_interval_s,
            )
            log.info(
                "analyzer started",
                extra={"asr_engine": settings.asr_engine, "analysis_engine": settings.analysis_engine},
            )
            yield

    return worker_app("callpipe analyzer", lifespan)
