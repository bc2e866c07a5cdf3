"""Prometheus metrics of every service, served on ``/metrics`` (the health port of a worker, the
API port of the gateway).

Names follow Prometheus' conventions with one ``callpipe_`` prefix: ``_total`` counters,
``_seconds`` and ``_bytes`` units, histograms for durations. Labels are low-cardinality only: a
consumer group, a topic, an outcome or failure code from a closed set, an HTTP route *template*;
never a call, partner or tenant id. Which service a series comes from is the scrape target's
business (the chart's PodMonitor and the tests' Prometheus add a ``component`` label).

**Several processes.** The gateway runs ``GATEWAY_WORKERS`` uvicorn processes behind one port, and
a scrape reaches one of them. With more than one, ``run_service`` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before the workers start: prometheus_client then
keeps every process's values in memory-mapped files there, and ``/metrics`` adds them up
(counters and histograms summed, live gauges summed over the processes still running, the outbox
gauges as last written). A worker leaving cleanly removes its live gauges (``process_exited``).

The metric objects live here, at import, as prometheus_client intends; they hold numbers, not
connections. Code that counts imports the object it needs; nothing else is registered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

log = logging.getLogger(__name__)
# ``_created`` series double every counter's series for a timestamp nobody queries.
disable_created_metrics()  # type: ignore[no-untyped-call]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Async callables run before each scrape (bounded), to read values that live elsewhere (the
#: outbox backlog in PostgreSQL): ``app.state.metrics_refresh``.
Refresh = Callable[[], Awaitable[None]]
REFRESH_TIMEOUT_S = 2.0

# Seconds: from a millisecond HTTP answer to an hour-long callback retry schedule.
_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_WORK = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_LONG = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 4 * 3600.0, 24 * 3600.0)
_BYTES = tuple(float(2**n) for n in range(14, 31, 2))  # 16 KiB .. 1 GiB
_RTF = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)

# -- HTTP (gateway) ----------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "callpipe_http_requests_total",
    "HTTP requests answered, by route template and status",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "callpipe_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template",
    ["method", "route"],
    buckets=_FAST,
)

# -- ingestion (gateway) -----------------------------------------------------------------------
INGEST_CALLS = Counter(
    "callpipe_ingest_calls_total", "Calls of successful ingestion requests: accepted or duplicate", ["outcome"]
)
INGEST_REJECTED = Counter(
    "callpipe_ingest_rejected_requests_total",
    "Ingestion requests refused as a whole (no call of them is recorded), by reason (the error code)",
    ["reason"],
)

# -- outbox relay (gateway, notifier) ----------------------------------------------------------
OUTBOX_BACKLOG = Gauge(
    "callpipe_outbox_backlog_events",
    "Events committed to the outbox and not yet acknowledged by Kafka",
    multiprocess_mode="mostrecent",
)
OUTBOX_SET_ASIDE_RECORDS = Gauge(
    "callpipe_outbox_set_aside_records",
    "Records the relay set aside because Kafka refuses them for good (admin outbox list)",
    multiprocess_mode="mostrecent",
)
OUTBOX_PUBLISHED = Counter("callpipe_outbox_published_events_total", "Events the outbox relay put on Kafka")
OUTBOX_SET_ASIDE = Counter("callpipe_outbox_set_aside_total", "Records the outbox relay set aside")
OUTBOX_FAILURES = Counter(
    "callpipe_outbox_publish_failures_total", "Publish rounds that left events in the outbox for a retry"
)
OUTBOX_DELAY = Histogram(
    "callpipe_outbox_publish_delay_seconds",
    "From the commit of an outbox row to Kafka's acknowledgement of its events",
    buckets=(*_FAST[3:], 30.0, 60.0, 300.0),
)

# -- consumer runtime (every worker, the gateway's read model) ---------------------------------
CONSUMER_MESSAGES = Counter(
    "callpipe_consumer_messages_total",
    "Messages finished by a consumer group: processed, or dead-lettered",
    ["group", "outcome"],
)
CONSUMER_DURATION = Histogram(
    "callpipe_consumer_processing_duration_seconds",
    "One attempt at a message: handler and publishing its events, by result (ok, error)",
    ["group", "result"],
    buckets=_WORK,
)
CONSUMER_IN_FLIGHT = Gauge(
    "callpipe_consumer_in_flight_messages",
    "Messages fetched and not finished (processing, waiting for a slot or a retry)",
    ["group"],
    multiprocess_mode="livesum",
)
CONSUMER_LAG = Gauge(
    "callpipe_consumer_lag_messages",
    "Messages on the assigned partitions after the group's committed offset (high watermark - commit)",
    ["group", "topic"],
    multiprocess_mode="livesum",
)
CONSUMER_RETRIES = Counter(
    "callpipe_consumer_retries_total",
    "Failed attempts that will be retried: transient (a dependency down) or failure (counts to max attempts)",
    ["group", "kind"],
)
CONSUMER_DEAD_LETTERS = Counter(
    "callpipe_consumer_dead_letters_total",
    "Messages put on the group's dead-letter topic: exhausted (retries used up), refused (Kafka will never"
    " take the output), undecodable",
    ["group", "reason"],
)
CONSUMER_SALVAGED = Counter(
    "callpipe_consumer_salvaged_total", "Messages decoded from their declared fields only", ["group"]
)
CONSUMER_COMMIT_FAILURES = Counter(
    "callpipe_consumer_commit_failures_total", "Offset commits that failed (redelivery follows)", ["group"]
)

# -- fetcher -------------------------------------------------------------------------------------
FETCH_DURATION = Histogram(
    "callpipe_fetch_duration_seconds",
    "Downloading, verifying and storing a recording (retries included), by outcome: fetched or the failure code",
    ["outcome"],
    buckets=_WORK,
)
FETCH_BYTES = Counter("callpipe_fetch_bytes_total", "Bytes of recordings stored, by outcome", ["outcome"])
FETCH_SIZE = Histogram(
    "callpipe_fetch_size_bytes", "Size of the recordings fetched, by outcome", ["outcome"], buckets=_BYTES
)

# -- analyzer ------------------------------------------------------------------------------------
ASR_DURATION = Histogram(
    "callpipe_asr_duration_seconds", "Transcribing a call, by engine and outcome", ["engine", "outcome"], buckets=_WORK
)
ASR_REAL_TIME_FACTOR = Histogram(
    "callpipe_asr_real_time_factor",
    "Transcription time divided by the audio's duration (below 1: faster than real time)",
    ["engine"],
    buckets=_RTF,
)
ASR_AUDIO = Counter("callpipe_asr_audio_seconds_total", "Seconds of audio transcribed", ["engine"])
ANALYSIS_DURATION = Histogram(
    "callpipe_analysis_duration_seconds",
    "Analysing a transcript against the tenant's configuration, by engine and outcome",
    ["engine", "outcome"],
    buckets=_WORK,
)
REDACTIONS = Counter(
    "callpipe_redactions_total",
    "PII spans masked in transcripts and results, by kind (card_number, phone_number, email, pattern)",
    ["kind"],
)
REDACTION_PATTERN_TIMEOUTS = Counter(
    "callpipe_redaction_pattern_timeouts_total", "Tenant redaction patterns skipped on a text for running out of time"
)

# -- notifier ------------------------------------------------------------------------------------
CALLBACK_ATTEMPTS = Counter(
    "callpipe_callback_attempts_total",
    "Callback attempts by kind (result, failure) and outcome: delivered, or the attempt's error code",
    ["kind", "outcome"],
)
CALLBACK_ATTEMPT_DURATION = Histogram(
    "callpipe_callback_attempt_duration_seconds",
    "One callback POST until the receiver's answer, by kind and outcome",
    ["kind", "outcome"],
    buckets=_FAST,
)
CALLBACK_DELIVERIES = Counter(
    "callpipe_callback_deliveries_total",
    "Deliveries that reached a final state: delivered or failed",
    ["kind", "state"],
)
CALLBACK_DELIVERY_LATENCY = Histogram(
    "callpipe_callback_delivery_latency_seconds",
    "From a delivery's recording to its final state (retries included), first round only",
    ["kind", "state"],
    buckets=_LONG,
)
CALLBACK_IN_FLIGHT = Gauge("callpipe_callback_in_flight", "Callback attempts in flight", multiprocess_mode="livesum")
CALL_END_TO_END = Histogram(
    "callpipe_call_end_to_end_seconds",
    "From a call's acceptance by the gateway to the final state of its callback (first round), by kind and state",
    ["kind", "state"],
    buckets=_LONG,
)


def group_label(group_id: str, topic_prefix: str) -> str:
    """A consumer group as a label: without the topic prefix (dashboards stay the same across
    environments that share a cluster)."""
    return group_id.removeprefix(topic_prefix) if topic_prefix else group_id


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess(workers: int) -> None:
    """Before the gateway's uvicorn workers start: with several, give them a metrics directory
    (emptied: files of an earlier run would be counted again). Call in the parent process."""
    if workers <= 1 and not multiprocess_dir():
        return
    directory = multiprocess_dir()
    if directory is None:
        directory = tempfile.mkdtemp(prefix="callpipe-metrics-")
        os.environ[MULTIPROC_ENV] = directory
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    log.info("metrics shared by the worker processes", extra={"directory": directory, "workers": workers})


def process_exited() -> None:
    """At a worker's clean exit: its live gauges no longer count."""
    if multiprocess_dir():
        with contextlib.suppress(OSError):
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def remove_multiprocess_dir() -> None:
    """The parent's clean-up once every worker stopped (only a directory it made itself)."""
    directory = multiprocess_dir()
    if directory and Path(directory).name.startswith("callpipe-metrics-"):
        shutil.rmtree(directory, ignore_errors=True)


def render() -> bytes:
    """The text exposition of every metric of this process, or of all of them in multiprocess mode."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


async def refresh(refreshers: Iterable[Refresh]) -> None:
    """Run the scrape-time readers, each bounded; one that fails leaves its last value."""

    async def one(read: Refresh) -> None:
        try:
            await asyncio.wait_for(read(), REFRESH_TIMEOUT_S)
        except Exception as exc:
            log.debug("metrics refresh failed", extra={"error": type(exc).__name__})

    await asyncio.gather(*(one(r) for r in refreshers))


def metrics_router() -> APIRouter:
    """``GET /metrics`` in Prometheus' text format."""
    router = APIRouter(tags=["health"])

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        await refresh(getattr(request.app.state, "metrics_refresh", ()))
        body = await asyncio.to_thread(render) if multiprocess_dir() else render()
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router
