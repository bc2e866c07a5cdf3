"""Following many calls at once with few requests (every request counts towards the rate limit).

While few calls are left, each is read by id (``GET /calls/{id}``). With more, the list endpoint
is read instead, 200 calls a page, within the window of received times the tracked calls span
(learnt as they are seen), and only the calls the list does not show yet are read by id. The
list is built from the pipeline's events, so a call accepted a moment ago may be missing from it
for a moment; reading it by id always works.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime, timedelta

from callpipe_client.client import AsyncClient
from callpipe_client.errors import NotFound
from callpipe_client.models import FINAL_STATUSES, CallStatus, CallSummary

#: At most this many calls are read one by one per refresh.
FEW = 50
PAGE = 200
SAMPLE = 5


class Tracker:
    """The latest known state of ``ids`` (a ``CallSummary`` from the list, or a ``CallStatus``)."""

    def __init__(self, client: AsyncClient, ids: Iterable[str], *, concurrency: int = 4) -> None:
        self.client = client
        self.ids = list(dict.fromkeys(ids))
        self.known: dict[str, CallStatus | CallSummary] = {}
        self.missing: set[str] = set()
        self._gate = asyncio.Semaphore(concurrency)

    def is_final(self, call_id: str) -> bool:
        call = self.known.get(call_id)
        return call is not None and call.status in FINAL_STATUSES

    def pending(self) -> list[str]:
        """Tracked calls not final yet (unknown ids excluded)."""
        return [i for i in self.ids if i not in self.missing and not self.is_final(i)]

    async def read(self, call_id: str) -> CallStatus | None:
        """One call by id (None and remembered as missing on 404)."""
        async with self._gate:
            try:
                call = await self.client.get_call(call_id)
            except NotFound:
                self.missing.add(call_id)
                return None
        self.known[call_id] = call
        return call

    async def refresh(self, wanted: Iterable[str] | None = None) -> list[str]:
        """Bring ``wanted`` (default: the pending calls) up to date; returns the tracked ids that
        became final during this refresh."""
        before = {i for i in self.ids if self.is_final(i)}
        todo = list(self.pending() if wanted is None else wanted)
        if len(todo) > FEW:
            if not any(self._received(i) for i in todo):
                # Learn roughly when these calls came in from a few of them: the first, the last
                # and some in between (ids usually come in the order they were submitted).
                step = max(1, len(todo) // SAMPLE)
                sample = dict.fromkeys([todo[0], *todo[::step][1 : SAMPLE - 1], todo[-1]])
                await asyncio.gather(*(self.read(i) for i in sample))
            seen = await self._scan(set(todo))
            todo = [i for i in todo if i not in seen and i not in self.missing][:FEW]
        await asyncio.gather(*(self.read(i) for i in todo))
        return [i for i in self.ids if self.is_final(i) and i not in before]

    def _received(self, call_id: str) -> datetime | None:
        call = self.known.get(call_id)
        return call.timestamps.received if call is not None else None

    async def _scan(self, wanted: set[str]) -> set[str]:
        """Read the list within the window of known received times; returns the ids it showed."""
        times = [t for i in self.ids if (t := self._received(i)) is not None]
        start = min(times) if times else None
        # Closed at the newest call seen once every call has been seen; open until then.
        end = max(times) + timedelta(seconds=1) if times and len(times) + len(self.missing) >= len(self.ids) else None
        seen: set[str] = set()
        budget = 2 * len(self.ids) + 5 * PAGE  # whatever else the tenant received in that window
        async for call in self.client.iter_calls(limit=PAGE, received_from=start, received_to=end):
            if call.call_id in wanted:
                self.known[call.call_id] = call
                seen.add(call.call_id)
                if len(seen) == len(wanted):
                    break
            budget -= 1
            if budget <= 0:
                break
        return seen
