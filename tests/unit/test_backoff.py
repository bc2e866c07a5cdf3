"""The one back-off every retry loop uses, and the wait that gives a work slot back."""

from __future__ import annotations

import asyncio

import pytest

from services.common import backoff
from services.common.backoff import Backoff


def test_delays_grow_exponentially_within_their_jitter_and_cap() -> None:
    b = Backoff(base_s=1.0, max_s=30.0, factor=2.0, jitter=0.25)
    for attempt, raw in ((1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (10_000, 30.0)):
        for _ in range(50):
            assert raw * 0.75 <= b.delay(attempt) <= raw * 1.25


def test_retry_after_raises_the_delay_up_to_its_cap() -> None:
    b = Backoff(base_s=0.1, max_s=1.0, jitter=0.0, retry_after_max_s=60.0)
    assert b.delay(1, retry_after_s=5.0) == 5.0
    assert b.delay(1, retry_after_s=600.0) == 60.0
    assert b.delay(1, retry_after_s=0.0) == pytest.approx(0.1)


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(base_s=1.0, max_s=1.0, factor=0.5)
    with pytest.raises(ValueError):
        Backoff(base_s=1.0, max_s=1.0, jitter=1.0)


async def test_wait_gives_the_lent_slot_back_while_it_sleeps() -> None:
    slot = asyncio.Semaphore(1)
    await slot.acquire()
    seen: list[str] = []

    async def waiter(seconds: float) -> None:
        slot.release()
        try:
            await asyncio.sleep(seconds)
        finally:
            await slot.acquire()

    async def other() -> None:
        async with slot:
            seen.append("other ran during the wait")

    token = backoff.lend_slot(waiter)
    try:
        task = asyncio.create_task(other())
        await backoff.wait(0.05)
        await task
    finally:
        backoff.reset_slot(token)
    assert seen == ["other ran during the wait"]
    assert slot.locked()  # taken back after the wait


async def test_wait_without_a_slot_just_sleeps() -> None:
    await asyncio.wait_for(backoff.wait(0.01), 1)
