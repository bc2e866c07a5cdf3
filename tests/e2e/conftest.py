"""What the end-to-end tests share: a partner's recording host (plain HTTP) and its callback
receiver (HTTPS, with a test CA of its own the notifier is told to trust)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.receivers import Receiver, TestCa, receiver
from tests.support.recordings import RecordingHost, recording_host


@pytest.fixture
async def host() -> AsyncIterator[RecordingHost]:
    async with recording_host("127.0.0.1") as h:
        yield h


@pytest.fixture
def tls() -> TestCa:
    return TestCa()


@pytest.fixture
async def rx(tls: TestCa) -> AsyncIterator[Receiver]:
    async with receiver(tls) as r:
        yield r
