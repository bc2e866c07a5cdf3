"""The one back-off every retry loop uses, and the one way to wait for a retry.

``Backoff.delay(n)`` is exponential with jitter: ``min(max_s, base_s * factor ** (n - 1))``
multiplied by a random factor in ``[1 - jitter, 1 + jitter]``; a server's ``Retry-After`` (already
parsed by ``services.common.http.parse_retry_after``) raises it to at least that long, capped by
``retry_after_max_s``.

``wait(seconds)`` sleeps, but first hands back whatever work slot the caller holds (a consumer
runtime's processing slot, see ``services.common.consumer``): a message waiting to retry must not
keep other messages, or other partners' calls, from being processed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Waiter = Callable[[float], Awaitable[None]]
#: Installed by whoever lends the current task a scarce slot; called instead of a plain sleep so
#: the slot is released while waiting and taken again afterwards.
_waiter: contextvars.ContextVar[Waiter | None] = contextvars.ContextVar("callpipe_backoff_waiter", default=None)


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off with jitter (see the module docstring)."""

    base_s: float
    max_s: float
    factor: float = 2.0
    jitter: float = 0.25
    retry_after_max_s: float | None = None

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.max_s < 0 or self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError("back-off needs base_s, max_s >= 0, factor >= 1 and 0 <= jitter < 1")

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1``, after ``attempt`` failures (1-based)."""
        exponent = max(attempt, 1) - 1
        # Bounded exponent: factor ** huge would overflow long before max_s caps it.
        raw = self.max_s if exponent > 64 else min(self.max_s, self.base_s * self.factor**exponent)
        delay = raw * random.uniform(1 - self.jitter, 1 + self.jitter)  # noqa: S311 - jitter, not security
        if retry_after_s is not None:
            cap = self.retry_after_max_s if self.retry_after_max_s is not None else retry_after_s
            delay = max(delay, min(retry_after_s, cap))
        return delay


async def wait(seconds: float) -> None:
    """Sleep ``seconds`` without holding the caller's work slot, if it holds one."""
    waiter = _waiter.get()
    if waiter is None:
        await asyncio.sleep(seconds)
    else:
        await waiter(seconds)


def lend_slot(
    waiter: Callable[[float], Awaitable[None]],
) -> contextvars.Token[Callable[[float], Awaitable[None]] | None]:
    """Make ``wait`` in the current task (and the tasks it starts) call ``waiter``; returns the
    token to ``reset_slot`` with."""
    return _waiter.set(waiter)


def reset_slot(token: contextvars.Token[Waiter | None]) -> None:
    _waiter.reset(token)
