"""A small per-process TTL cache for lookups on the request path."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Remembers values for ``ttl_s`` seconds (0 disables caching). ``None`` results are not
    cached, so misses (unknown keys) cannot fill it; past ``max_entries`` expired entries go
    first, then the oldest."""

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V | None]]) -> V | None:
        now = time.monotonic()
        cached = self._entries.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        value = await load()
        if value is None or self._ttl_s <= 0:
            self._entries.pop(key, None)
            return value
        self.put(key, value)
        return value

    def peek(self, key: K) -> V | None:
        """The cached value, if there is one and it has not expired; never loads."""
        cached = self._entries.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return None

    def put(self, key: K, value: V) -> None:
        """Remember ``value`` for ``ttl_s`` (nothing is kept when caching is off)."""
        if self._ttl_s <= 0:
            return
        now = time.monotonic()
        if key not in self._entries and len(self._entries) >= self._max_entries:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= self._max_entries:
                self._entries.pop(next(iter(self._entries)))
        self._entries[key] = (now + self._ttl_s, value)

    def invalidate(self, key: K) -> None:
        self._entries.pop(key, None)

    def invalidate_where(self, predicate: Callable[[K], bool]) -> None:
        self._entries = {k: v for k, v in self._entries.items() if not predicate(k)}
