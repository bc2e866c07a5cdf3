"""The notifier's handlers and dispatcher with real dependencies: PostgreSQL (a database of the
test's own, so no other test's deliveries are claimed), real HTTPS receivers on loopback behind a
test CA, the SSRF-guarded session. Kafka is exercised by the service-process tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp
import asyncpg
import pytest
from pydantic import SecretStr

from schemas.events import CallbackDelivery, parse_event
from services.common import ssrf
from services.common.crypto import SecretBox
from services.common.db import create_pool
from services.common.settings import DEV_SECRETS_ENCRYPTION_KEYS
from services.notifier.dispatcher import Dispatcher, DispatchSettings, RetryPolicy
from services.notifier.handlers import NotifyDeps
from services.notifier.repository import Delivery, NotifierRepository
from tests.support.receivers import Receiver, TestCa, receiver

T = TypeVar("T")

# Short schedule: gaps of about 0.2, 0.6 and 1.8 s (+-20%), so each gap is longer than the last.
FAST_RETRY = RetryPolicy(attempts=4, base_s=0.2, factor=3, max_s=30, jitter=0.2, retry_after_max_s=10)
SETTINGS = DispatchSettings(
    concurrency=16, per_partner=2, poll_interval_s=0.1, lease_s=30, timeout_s=5, retry=FAST_RETRY
)


@pytest.fixture(scope="session")
def tls() -> TestCa:
    return TestCa()


@pytest.fixture
async def rx(tls: TestCa) -> AsyncIterator[Receiver]:
    async with receiver(tls) as r:
        yield r


@dataclass
class NotifierEnv:
    pool: asyncpg.Pool
    repo: NotifierRepository
    deps: NotifyDeps
    tls: TestCa
    topic_prefix: str
    dispatchers: list[Dispatcher] = field(default_factory=list)
    sessions: list[aiohttp.ClientSession] = field(default_factory=list)

    def dispatcher(
        self, settings: DispatchSettings = SETTINGS, *, allow: str = "127.0.0.1/32", trust_test_ca: bool = True
    ) -> Dispatcher:
        """A started dispatcher (stopped at teardown)."""
        session = ssrf.make_session(
            ssrf.SsrfPolicy(
                allow_networks=ssrf.parse_networks(allow),
                schemes=frozenset({"http", "https"} if settings.allow_http else {"https"}),
            ),
            timeout=aiohttp.ClientTimeout(total=settings.timeout_s + 5, connect=2),
            ssl_context=self.tls.client_context() if trust_test_ca else None,
        )
        self.sessions.append(session)
        d = Dispatcher(self.repo, session, settings, topic=lambda base: self.topic_prefix + base)
        d.start()
        self.dispatchers.append(d)
        return d

    async def wait_delivery(
        self, partner_id: str, call_id: str, kind: str, states: set[str], timeout: float = 20.0
    ) -> Delivery:
        """The delivery once it is in one of ``states``."""
        return await eventually(lambda: self._in(partner_id, call_id, kind, states), timeout)

    async def _in(self, partner_id: str, call_id: str, kind: str, states: set[str]) -> Delivery | None:
        d = await self.repo.find(partner_id, call_id, kind)
        return d if d is not None and d.state in states else None

    async def delivery_events(self, call_id: str) -> list[CallbackDelivery]:
        """The callbacks.deliveries.v1 events of ``call_id`` waiting in the outbox, in order."""
        rows = await self.pool.fetch("SELECT payloads FROM outbox ORDER BY id")
        events = [parse_event(bytes(p)) for r in rows for p in r["payloads"]]
        return [e for e in events if isinstance(e, CallbackDelivery) and e.call_id == call_id]


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 20.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


@pytest.fixture
def notifier_db(isolated_database_url: str) -> Iterator[str]:
    yield isolated_database_url


@pytest.fixture
async def env(notifier_db: str, topic_prefix: str, tls: TestCa) -> AsyncIterator[NotifierEnv]:
    pool = await create_pool(SecretStr(notifier_db), "notifier", min_size=1, max_size=8)
    repo = NotifierRepository(pool, SecretBox.from_config(DEV_SECRETS_ENCRYPTION_KEYS))
    e = NotifierEnv(pool, repo, NotifyDeps(repo=repo, topic=lambda base: topic_prefix + base), tls, topic_prefix)
    yield e
    for d in e.dispatchers:
        await d.stop(grace_s=1)
    for s in e.sessions:
        await s.close()
    await pool.close()
