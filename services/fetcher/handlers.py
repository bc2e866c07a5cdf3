"""The fetcher's work as plain async functions: download a call's recording safely, verify it,
store it, and say what became of it.

``handle_ingested`` takes its dependencies as arguments and returns the events to publish; the
consumer runtime does the Kafka side. It is idempotent: a redelivered event whose blob exists (or
whose recording was purged under its retention) is answered from the fetcher's table without a
second download, with the same event id.

Erasure (``calls.erased.v1``, consumed by the same group): the call's row and blob are deleted
and a tombstone written, under the call's lock; a call erased before or while it is fetched ends
without anything stored or published (``services.common.erasure``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Literal

import aiohttp

from schemas.events import (
    AnyEvent,
    CallErased,
    CallFailed,
    CallFailedPayload,
    CallFetched,
    CallFetchedPayload,
    CallIngested,
    FetchFailureCode,
    follow_up,
)
from services.common import backoff, metrics, ssrf, tracing
from services.common.backoff import Backoff
from services.common.blobs import BlobStore
from services.common.erasure import confirmation, retention_expiries
from services.common.http import parse_retry_after
from services.common.kafka import is_permanent
from services.common.progress import Announce, announce_stage
from services.fetcher.errors import FetchFailed
from services.fetcher.media import MediaInfo, MediaProblem
from services.fetcher.repository import Fetch, FetcherRepository

log = logging.getLogger(__name__)

SOURCE = "fetcher"
_CHUNK = 256 * 1024
_EVENT_NAMESPACE = uuid.UUID("6f1c2d0e-8a57-4c1b-9a3e-3b5f0c9d7e21")

Probe = Callable[[Path], Awaitable[MediaInfo | MediaProblem]]


@dataclass(frozen=True)
class DownloadLimits:
    max_bytes: int
    attempts: int
    backoff_base_s: float
    backoff_max_s: float
    retry_after_max_s: float
    user_agent: str


@dataclass(frozen=True)
class FetchDeps:
    repo: FetcherRepository
    blobs: BlobStore
    session: aiohttp.ClientSession  # from ssrf.make_session: it carries the SSRF policy
    probe: Probe
    spool_dir: Path
    limits: DownloadLimits
    announce: Announce | None = None  # tells the status API the download started


@dataclass(frozen=True)
class Spooled:
    path: Path
    sha256: str
    size: int


class _Retryable(Exception):
    def __init__(
        self,
        code: Literal["http_status", "timeout", "connection_error"],
        message: str,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.retry_after_s = code, message, retry_after_s


def event_id(event: CallIngested, kind: str) -> uuid.UUID:
    """The same id every time this call's ``kind`` event is produced, so downstream consumers can
    drop redeliveries by id."""
    return uuid.uuid5(_EVENT_NAMESPACE, f"{event.partner_id}/{event.call_id}/{kind}")


async def handle_ingested(event: AnyEvent, deps: FetchDeps) -> list[AnyEvent]:
    """Fetch the recording of one ingested call; returns ``calls.fetched`` or ``calls.failed``
    (nothing for an erased call). An erasure is confirmed with ``calls.erasure_confirmed``."""
    if isinstance(event, CallErased):
        return await handle_erased(event, deps)
    if not isinstance(event, CallIngested):
        return []
    context = {"partner_id": event.partner_id, "call_id": event.call_id}
    if await deps.repo.is_erased(event.partner_id, event.call_id):
        log.info("erased call skipped", extra=context)
        return []
    known = await deps.repo.find(event.partner_id, event.call_id)
    # A purged recording is not downloaded again: the call was fetched, its retention ended.
    if known is not None and (known.purged_at is not None or await deps.blobs.exists(known.fetch.sha256)):
        return [fetched_event(event, known.fetch)]
    await announce_stage(
        event, "fetch", deps.announce, event_id=event_id(event, "call.stage_started/fetch"), source=SOURCE
    )
    started = time.perf_counter()
    with tracing.span("fetch recording") as span:
        try:
            fetch = await fetch_recording(event.payload.call.recording_url, deps)
        except FetchFailed as failure:
            metrics.FETCH_DURATION.labels(failure.code).observe(time.perf_counter() - started)
            tracing.fail(span, failure.code)
            log.info("recording not fetched", extra={**context, "code": failure.code})
            if await deps.repo.is_erased(event.partner_id, event.call_id):
                return []
            return [failed_event(event, failure)]
        metrics.FETCH_DURATION.labels("fetched").observe(time.perf_counter() - started)
        metrics.FETCH_BYTES.labels("fetched").inc(fetch.bytes)
        metrics.FETCH_SIZE.labels("fetched").observe(fetch.bytes)
        tracing.set_attributes(span, {"callpipe.recording.bytes": fetch.bytes, "callpipe.recording.codec": fetch.codec})
    recorded = await deps.repo.record(
        event.partner_id,
        event.call_id,
        fetch,
        recording_expires_at=retention_expiries(event.payload)["recording"],
        blobs=deps.blobs,
        now=datetime.now(UTC),
    )
    if not recorded:
        log.info("call erased while it was fetched; nothing kept", extra=context)
        return []
    return [fetched_event(event, fetch)]


async def handle_erased(event: CallErased, deps: FetchDeps) -> list[AnyEvent]:
    """Remove the call's fetch row and recording (a blob still held by another call stays) and
    confirm; a redelivered erasure removes nothing more and confirms again (same event id)."""
    removed = await deps.repo.erase(event, deps.blobs, datetime.now(UTC))
    log.info("call erased", extra={"partner_id": event.partner_id, "call_id": event.call_id, "removed": removed})
    return [confirmation(event, "fetcher", removed)]


async def purge(now: datetime, deps: FetchDeps) -> dict[str, int]:
    """The fetcher's retention purge: recordings whose retention ended by ``now``."""
    return await deps.repo.purge_recordings(deps.blobs, now)


async def fetch_recording(url: str, deps: FetchDeps) -> Fetch:
    """Download, verify and store one recording (raises ``FetchFailed``)."""
    spooled = await download(url, deps.session, deps.spool_dir, deps.limits)
    try:
        info = await deps.probe(spooled.path)
        if isinstance(info, MediaProblem):
            raise FetchFailed(info.code, info.message, retryable=False)
        stored = await deps.blobs.put_file(spooled.path, spooled.sha256, spooled.size)
    finally:
        await asyncio.to_thread(spooled.path.unlink, True)
    return Fetch(
        sha256=stored.sha256,
        blob_uri=stored.uri,
        bytes=stored.size,
        container=info.container,
        codec=info.codec,
        duration_s=info.duration_s,
        channels=info.channels,
        sample_rate=info.sample_rate,
    )


async def download(url: str, session: aiohttp.ClientSession, spool_dir: Path, limits: DownloadLimits) -> Spooled:
    """Stream ``url`` to a spool file, retrying what may pass (connection errors, timeouts, 5xx,
    429) with exponential backoff and jitter, honouring Retry-After."""
    retries = Backoff(limits.backoff_base_s, limits.backoff_max_s)
    attempt = 0
    while True:
        attempt += 1
        try:
            return await _download_once(url, session, spool_dir, limits)
        except _Retryable as problem:
            if attempt >= limits.attempts:
                raise FetchFailed(problem.code, problem.message, retryable=True) from None
            if problem.retry_after_s is not None and problem.retry_after_s > limits.retry_after_max_s:
                raise FetchFailed(problem.code, problem.message, retryable=True) from None
            # The wait holds no download slot: other calls (other partners') go on meanwhile.
            await backoff.wait(retries.delay(attempt, problem.retry_after_s))


async def _download_once(url: str, session: aiohttp.ClientSession, spool_dir: Path, limits: DownloadLimits) -> Spooled:
    try:
        async with await ssrf.guarded_request(
            session, "GET", url, follow_redirects=True, headers={"User-Agent": limits.user_agent}
        ) as response:
            status = response.status
            if status == 429 or status >= 500:
                raise _Retryable(
                    "http_status",
                    f"the recording host answered HTTP {status}",
                    parse_retry_after(response.headers.get("Retry-After")),
                )
            if not 200 <= status < 300:
                raise FetchFailed("http_status", f"the recording host answered HTTP {status}", retryable=False)
            if response.content_length is not None and response.content_length > limits.max_bytes:
                raise FetchFailed(
                    "too_large", f"the recording is larger than {limits.max_bytes} bytes", retryable=False
                )
            return await _spool(response, spool_dir, limits.max_bytes)
    except ssrf.SsrfError as exc:
        raise FetchFailed(_ssrf_code(exc), str(exc), retryable=False) from None
    except TimeoutError:
        raise _Retryable("timeout", "the recording host did not answer in time") from None
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
        if isinstance(exc, aiohttp.ServerTimeoutError):
            raise _Retryable("timeout", "the recording host did not answer in time") from None
        raise _Retryable("connection_error", "the connection to the recording host failed") from None


def _ssrf_code(exc: ssrf.SsrfError) -> FetchFailureCode:
    if isinstance(exc, ssrf.InvalidUrl):
        return "invalid_url"
    if isinstance(exc, ssrf.UnsupportedScheme):
        return "unsupported_scheme"
    if isinstance(exc, ssrf.TooManyRedirects):
        return "too_many_redirects"
    return "blocked_address"


async def _spool(response: aiohttp.ClientResponse, spool_dir: Path, max_bytes: int) -> Spooled:
    await asyncio.to_thread(spool_dir.mkdir, parents=True, exist_ok=True)
    path = spool_dir / f"{os.getpid()}-{uuid.uuid4().hex}.part"
    digest = hashlib.sha256()
    size = 0
    f = await asyncio.to_thread(open, path, "wb")
    try:
        async for chunk in response.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise FetchFailed("too_large", f"the recording is larger than {max_bytes} bytes", retryable=False)
            await asyncio.to_thread(_write_and_hash, f, digest, chunk)
        await asyncio.to_thread(_close_durably, f)
    except BaseException:
        await asyncio.to_thread(f.close)
        await asyncio.to_thread(path.unlink, True)
        raise
    if size == 0:
        await asyncio.to_thread(path.unlink, True)
        raise FetchFailed("empty_body", "the recording host sent an empty body", retryable=False)
    return Spooled(path, digest.hexdigest(), size)


def _write_and_hash(f: BinaryIO, digest: hashlib._Hash, chunk: bytes) -> None:
    digest.update(chunk)
    f.write(chunk)


def _close_durably(f: BinaryIO) -> None:
    f.flush()
    os.fsync(f.fileno())
    f.close()


def fetched_event(event: CallIngested, fetch: Fetch) -> CallFetched:
    return CallFetched(
        **follow_up(event, event_id=event_id(event, "call.fetched"), source=SOURCE),
        payload=CallFetchedPayload(
            ingested=event.payload,
            blob_uri=fetch.blob_uri,
            sha256=fetch.sha256,
            bytes=fetch.bytes,
            container=fetch.container,
            codec=fetch.codec,
            duration_s=fetch.duration_s,
            channels=fetch.channels,
            sample_rate=fetch.sample_rate,
        ),
    )


def failed_event(event: CallIngested, failure: FetchFailed) -> CallFailed:
    return CallFailed(
        **follow_up(event, event_id=event_id(event, "call.failed/fetch"), source=SOURCE),
        payload=CallFailedPayload(
            stage="fetch",
            code=failure.code,
            message=failure.message,
            retryable=failure.retryable,
            ingested=event.payload,
        ),
    )


def gave_up(event: AnyEvent, exc: BaseException) -> list[AnyEvent]:
    """What a call becomes when the consumer runtime gives up on its message (dead-lettered after
    its retries): a failure the partner is told about, never a silent stop. The cause stays in the
    logs and the dead-letter topic, not in the event."""
    if not isinstance(event, CallIngested):
        return []
    return [
        failed_event(
            event,
            FetchFailed("event_too_large", "The call's result is too large to be passed on.", retryable=False)
            if is_permanent(exc)
            else FetchFailed(
                "internal_error", "The recording could not be fetched because of an internal error.", retryable=True
            ),
        )
    ]
