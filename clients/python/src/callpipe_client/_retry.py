"""When to try a request again and how long to wait: the package's one back-off and its one
``Retry-After`` parser."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

#: Statuses worth another try: a body that did not arrive in time, the rate limit, and a server
#: or proxy that failed or is busy.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Of those, the ones that say the request was not acted on (safe to send again as it is).
NOT_ACTED_ON = frozenset({408, 429})


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all for connection errors, timeouts and 5xx, waiting
    ``base_s * 2**n`` (full jitter, at most ``max_s``) between them, or what ``Retry-After`` says.
    A 429 is waited out (its ``Retry-After``, at most ``retry_after_max_s`` each time) for up to
    ``rate_limit_wait_s`` in all per request: going slower is the only way through a rate limit."""

    attempts: int = 5
    base_s: float = 0.5
    max_s: float = 30.0
    retry_after_max_s: float = 300.0
    rate_limit_wait_s: float = 900.0

    def backoff(self, retry: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_max_s)
        ceiling = min(self.max_s, self.base_s * (2 ** (retry - 1)))
        # Full jitter: many clients that failed together do not come back together.
        return (rng or _rng).uniform(0, ceiling)


_rng = random.Random()  # noqa: S311 - jitter, not security


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date (never negative);
    None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if not math.isnan(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def parse_http_date(value: str | None) -> datetime | None:
    """A ``Date`` header as an aware datetime; None when absent or unreadable."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
