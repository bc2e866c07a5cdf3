"""The fetcher's handler with real dependencies (PostgreSQL, blob store, SSRF-guarded HTTP,
probe process pool) but no Kafka: the handler is a plain async function."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from services.common import ssrf
from services.common.blobs import FilesystemBlobStore
from services.common.db import create_pool
from services.fetcher.handlers import DownloadLimits, FetchDeps
from services.fetcher.media import MediaInfo, MediaProblem, probe_file
from services.fetcher.repository import FetcherRepository
from tests.support import audio
from tests.support.infra import Infra
from tests.support.recordings import RecordingHost, recording_host

LIMITS = DownloadLimits(
    max_bytes=8 * 1024 * 1024,
    attempts=3,
    backoff_base_s=0.05,
    backoff_max_s=0.2,
    retry_after_max_s=5,
    user_agent="callpipe-test",
)


@pytest.fixture(scope="session")
def probe_pool() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver")) as pool:
        yield pool


@pytest.fixture
async def host() -> AsyncIterator[RecordingHost]:
    async with recording_host("127.0.0.1") as h:
        yield h


@pytest.fixture(scope="session")
def speech() -> audio.RenderedCall:
    if not audio.tools_available():
        pytest.skip("festival is not installed")
    return audio.render_conversation(audio.SCRIPTS["interested"][:2], stereo=True)


def make_deps(
    pool,
    blobs: FilesystemBlobStore,
    session: aiohttp.ClientSession,
    probe_pool: ProcessPoolExecutor,
    spool: Path,
    limits: DownloadLimits = LIMITS,
) -> FetchDeps:  # type: ignore[no-untyped-def]
    async def probe(path: Path) -> MediaInfo | MediaProblem:
        return await asyncio.get_running_loop().run_in_executor(probe_pool, probe_file, str(path))

    return FetchDeps(
        repo=FetcherRepository(pool), blobs=blobs, session=session, probe=probe, spool_dir=spool, limits=limits
    )


@pytest.fixture
async def fetch_env(database_url: str, tmp_path: Path, probe_pool: ProcessPoolExecutor):  # type: ignore[no-untyped-def]
    """(deps factory, blob store, spool dir): sessions built per policy inside the test."""
    pool = await create_pool(SecretStr(database_url), "fetcher", min_size=1, max_size=4)
    blobs = FilesystemBlobStore(tmp_path / "blobs")
    spool = tmp_path / "blobs" / ".incoming"
    sessions: list[aiohttp.ClientSession] = []

    def deps(allow: str = "127.0.0.1/32", read_timeout_s: float = 5, limits: DownloadLimits = LIMITS) -> FetchDeps:
        session = ssrf.make_session(
            ssrf.SsrfPolicy(allow_networks=ssrf.parse_networks(allow)),
            timeout=aiohttp.ClientTimeout(total=30, connect=2, sock_read=read_timeout_s),
        )
        sessions.append(session)
        return make_deps(pool, blobs, session, probe_pool, spool, limits)

    yield deps, blobs, spool
    for s in sessions:
        await s.close()
    await pool.close()


def fetcher_env(infra: Infra, database_url: str, topic_prefix: str, tmp_path: Path, port: int) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "KAFKA_TOPIC_PARTITIONS": "3",
        "FETCHER_PORT": str(port),
        "BLOB_ROOT": str(tmp_path / "blobs"),
        "FETCHER_SSRF_ALLOW_NETWORKS": "127.0.0.1/32",
        "FETCHER_DOWNLOAD_ATTEMPTS": "2",
        "FETCHER_BACKOFF_BASE_S": "0.1",
        "FETCHER_SESSION_TIMEOUT_MS": "6000",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="module")
def recording() -> bytes:
    if not audio.tools_available():
        pytest.skip("festival is not installed")
    return audio.encode(audio.render_conversation(audio.SCRIPTS["interested"][:3], stereo=True), "mp3")
