"""Bulk submission: any number of calls in, each call's outcome out.

``submit_calls`` validates every item locally, splits the valid ones into requests of at most 50
calls and 5 MB, sends ``concurrency`` requests at a time (waiting out 429s as ``Retry-After``
says), and reports each call as ``accepted``, ``duplicate`` or ``rejected`` (with its field
errors), or ``skipped`` when the journal shows an earlier run already got it accepted.

Exactly once, also across interruptions, rests on three facts of the API: a batch is recorded
all or nothing (one transaction); a recorded call answers ``GET /calls/{id}`` at once, with the
time its batch was received; and ids are unique per partner for ever. So a batch whose answer
was lost (a timeout, a 5xx, a crash of this process) is settled by looking, not by sending it
again: if its calls are there, received after the batch left, it was recorded (``recovered``);
if one is missing, nothing of it was, and it is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callpipe_client.errors import (
    Abandoned,
    ApiError,
    BadRequest,
    CallpipeError,
    NotFound,
    PayloadTooLarge,
    ServerError,
    TransportError,
    ValidationFailed,
)
from callpipe_client.journal import Journal, JournalState, fingerprint
from callpipe_client.models import CallItem, FieldError
from callpipe_client.validation import (
    BATCH_OVERHEAD,
    MAX_BATCH_BYTES,
    MAX_BATCH_CALLS,
    batch_body,
    call_id_of,
    encode_item,
    json_errors,
    normalize,
    rebase,
    size_error,
    size_errors,
    validate_item,
)

if TYPE_CHECKING:
    from callpipe_client.client import AsyncClient, RetryEvent

#: What a call became.
ACCEPTED, DUPLICATE, REJECTED, SKIPPED = "accepted", "duplicate", "rejected", "skipped"


@dataclass
class CallResult:
    """One input item's outcome.

    ``outcome`` is ``accepted`` (recorded now; will be processed), ``duplicate`` (the API already
    had this id, or the input repeats it), ``rejected`` (``errors`` says why; ``source`` is
    ``local`` or ``server``), or ``skipped`` (an earlier run with this journal got it
    ``previous``: accepted or duplicate). ``recovered`` marks an accepted call whose answer was
    lost and which was found recorded through the status API."""

    index: int
    call_id: str | None
    outcome: str
    errors: list[FieldError] = field(default_factory=list)
    source: str = "server"
    previous: str | None = None
    recovered: bool = False


@dataclass
class SubmitReport:
    """Every item's result, in input order, and what it took."""

    results: list[CallResult]
    elapsed_s: float
    requests: int
    rate_limited: int
    reconciled_batches: int
    interrupted: bool = False

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    @property
    def counts(self) -> dict[str, int]:
        return {o: self.count(o) for o in (ACCEPTED, DUPLICATE, REJECTED, SKIPPED)}

    @property
    def rejected(self) -> list[CallResult]:
        return [r for r in self.results if r.outcome == REJECTED]


class SubmitAborted(CallpipeError):
    """The run stopped on an error that concerns every call (credentials, tenancy, the API being
    unreachable after every retry). ``report`` holds what was settled before; with a journal,
    running again resumes."""

    code = "aborted"

    def __init__(self, cause: CallpipeError, report: SubmitReport) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.report = report


@dataclass
class _Item:
    index: int
    call_id: str
    encoded: bytes


@dataclass
class _Batch:
    items: list[_Item]
    attempts: int = 0

    @property
    def ids(self) -> list[str]:
        return [i.call_id for i in self.items]

    def body(self) -> bytes:
        return batch_body([i.encoded for i in self.items])


async def reconcile(client: AsyncClient, ids: list[str], not_before: datetime | None) -> bool:
    """Was this batch recorded? Its calls are looked up in order: one missing (404) means no
    (a batch is recorded whole or not at all); calls received at or after ``not_before`` (the
    server's clock before the batch left) are its own. Two of them with the same received time
    (one for a batch of one) settle it, as does finding every call. Calls received earlier were
    there before (an older submission) and prove nothing."""
    own: list[datetime] = []
    needed = min(2, len(ids))
    for call_id in ids:
        try:
            status = await client.get_call(call_id)
        except NotFound:
            return False
        received = status.timestamps.received
        if not_before is not None and received is not None and received >= not_before:
            own.append(received)
            if len(own) >= needed and len(set(own)) == 1:
                return True
    return True


class _Run:
    def __init__(
        self,
        client: AsyncClient,
        *,
        concurrency: int,
        max_batch_calls: int,
        max_batch_bytes: int,
        journal: Journal | None,
        on_result: Callable[[CallResult], None] | None,
        stop: asyncio.Event,
        validate: bool = True,
    ) -> None:
        self.client = client
        self.concurrency = concurrency
        self.max_calls = max_batch_calls
        self.max_bytes = max_batch_bytes
        self.journal = journal
        self.on_result = on_result
        self.stop = stop
        self.results: dict[int, CallResult] = {}
        self.queue: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=concurrency * 2)
        self.run_id = uuid.uuid4().hex[:12]
        self.batch_seq = 0
        self.requests = 0
        self.reconciled = 0
        self.fatal: CallpipeError | None = None
        self.validate = validate
        self.recovered_at_start: set[str] = set()
        self.rate_limited = 0
        self.interrupted = False
        self.started = time.monotonic()

    # -- results ---------------------------------------------------------------------------

    def settle(self, result: CallResult) -> None:
        self.results[result.index] = result
        if self.on_result is not None:
            self.on_result(result)

    async def _record(self, what: str, *args: Any) -> None:
        """Write a journal record (blocking: it may fsync) from a thread."""
        if self.journal is not None:
            await asyncio.to_thread(getattr(self.journal, what), *args)

    def _key(self) -> str:
        self.batch_seq += 1
        return f"{self.run_id}-{self.batch_seq}"

    # -- producing batches -----------------------------------------------------------------

    async def produce(self, items: Iterable[CallItem | Mapping[str, Any]], state: JournalState) -> None:
        seen: set[str] = set()
        batch: list[_Item] = []
        size = BATCH_OVERHEAD
        try:
            for index, raw in enumerate(items):
                if self.stop.is_set() or self.fatal is not None:
                    return
                item = normalize(raw)
                call_id = call_id_of(item)
                if call_id is not None and call_id in seen:
                    repeat = FieldError(field="call.id", message="id appears earlier in this input; sent once")
                    self.settle(CallResult(index, call_id, DUPLICATE, [repeat], "input"))
                    continue
                if call_id is not None and call_id in state.done:
                    seen.add(call_id)
                    recovered = call_id in self.recovered_at_start
                    result = CallResult(index, call_id, SKIPPED, source="journal", previous=state.done[call_id])
                    result.recovered = recovered
                    self.settle(result)
                    continue
                errors = validate_item(item) if self.validate else json_errors(item)
                encoded = b""
                if not errors:
                    try:
                        encoded = encode_item(item)
                    except (ValueError, RecursionError) as exc:
                        errors = [FieldError(field="", message=f"item cannot be encoded as JSON: {exc}")]
                if not errors:
                    errors = (
                        size_errors(item, encoded, self.max_bytes)
                        if self.validate
                        else [e for e in [size_error(len(encoded), self.max_bytes)] if e is not None]
                    )
                if errors or call_id is None:
                    self.settle(CallResult(index, call_id, REJECTED, errors, "local"))
                    continue
                seen.add(call_id)
                if call_id in state.rejected:
                    print_, previous_errors = state.rejected[call_id]
                    if print_ == fingerprint(encoded):
                        # Refused before exactly as it is now: sending it again would change nothing.
                        self.settle(CallResult(index, call_id, REJECTED, previous_errors, "journal"))
                        continue
                if batch and (len(batch) >= self.max_calls or size + len(encoded) + 1 > self.max_bytes):
                    await self.queue.put(_Batch(batch))
                    batch, size = [], BATCH_OVERHEAD
                batch.append(_Item(index, call_id, encoded))
                size += len(encoded) + (1 if len(batch) > 1 else 0)
                # Yield now and then: reading a large file must not starve the senders.
                if index % 256 == 0:
                    await asyncio.sleep(0)
            if batch and not self.stop.is_set() and self.fatal is None:
                await self.queue.put(_Batch(batch))
        finally:
            for _ in range(self.concurrency):
                await self.queue.put(None)

    # -- sending ---------------------------------------------------------------------------

    async def worker(self) -> None:
        while True:
            batch = await self.queue.get()
            if batch is None:
                return
            if self.stop.is_set() or self.fatal is not None:
                continue  # drained, never sent
            pending = [batch]
            while pending and self.fatal is None and not self.stop.is_set():
                pending = await self.send(pending.pop(0)) + pending

    async def send(self, batch: _Batch) -> list[_Batch]:
        """Send one batch; returns the batches still to send (parts of it, or itself again)."""
        key = self._key()
        batch.attempts += 1
        not_before = self.client.server_date  # the server's clock before this batch leaves
        await self._record("sent", key, batch.ids, not_before)
        self.requests += 1
        try:
            outcomes = await self.client.ingest_encoded(batch.body(), retry_ambiguous=False, abandon=self.stop)
        except Abandoned:
            await self._record("unsent", key)  # stopped while waiting (a rate limit): nothing in flight
            return []
        except ValidationFailed as exc:
            await self._record("unsent", key)
            return await self.refused(batch, exc)
        except (PayloadTooLarge, BadRequest) as exc:
            await self._record("unsent", key)
            if isinstance(exc, BadRequest) and exc.message != "Malformed JSON body":
                self.fatal = exc  # tenancy headers: every call would be refused alike
                return []
            return await self.split_or_reject(batch, [FieldError(field="", message=exc.message)])
        except (TransportError, ServerError) as exc:
            if isinstance(exc, TransportError) and not exc.sent:
                await self._record("unsent", key)
                self.fatal = exc
                return []
            return await self.ambiguous(batch, key, not_before, exc)
        except ApiError as exc:
            await self._record("unsent", key)
            self.fatal = exc  # 403, a 429 waited out too long, ...: the same for every batch
            return []
        await self.answered(batch, key, [o.status for o in outcomes])
        return []

    async def answered(self, batch: _Batch, key: str, statuses: list[str]) -> None:
        if len(statuses) != len(batch.items):
            self.fatal = ApiError(200, f"{len(statuses)} outcomes for {len(batch.items)} calls")
            return
        accepted = [i.call_id for i, s in zip(batch.items, statuses, strict=True) if s == ACCEPTED]
        duplicate = [i.call_id for i, s in zip(batch.items, statuses, strict=True) if s != ACCEPTED]
        await self._record("outcomes", key, accepted, duplicate)
        for item, status in zip(batch.items, statuses, strict=True):
            self.settle(CallResult(item.index, item.call_id, ACCEPTED if status == ACCEPTED else DUPLICATE))

    async def ambiguous(self, batch: _Batch, key: str, not_before: datetime | None, exc: CallpipeError) -> list[_Batch]:
        """The request may have been recorded: look before sending it again."""
        self.reconciled += 1
        try:
            recorded = await reconcile(self.client, batch.ids, not_before)
        except CallpipeError:
            self.fatal = exc  # cannot tell; the journal keeps the batch open for the next run
            return []
        if recorded:
            await self._record("recovered", key, batch.ids)
            for item in batch.items:
                self.settle(CallResult(item.index, item.call_id, ACCEPTED, recovered=True))
            return []
        await self._record("unsent", key)
        if batch.attempts >= self.client.config.retry.attempts:
            self.fatal = exc
            return []
        await asyncio.sleep(self.client.config.retry.backoff(batch.attempts))
        return [batch]

    async def refused(self, batch: _Batch, exc: ValidationFailed) -> list[_Batch]:
        """A 422: nothing of the batch was recorded. Reject the items the errors name; send the
        others again. Errors that name no item (a rule about the whole request) split the batch
        until they do."""
        by_item: dict[int, list[FieldError]] = {}
        unattributed = []
        for error in exc.errors:
            position, relative = rebase(error)
            if position is None or not 0 <= position < len(batch.items):
                unattributed.append(error)
            else:
                by_item.setdefault(position, []).append(relative)
        if not by_item:
            return await self.split_or_reject(batch, unattributed or [FieldError(field="", message=exc.message)])
        for position, errors in by_item.items():
            await self.reject(batch.items[position], errors)
        rest = [item for position, item in enumerate(batch.items) if position not in by_item]
        return [_Batch(rest)] if rest else []

    async def split_or_reject(self, batch: _Batch, errors: list[FieldError]) -> list[_Batch]:
        if len(batch.items) == 1:
            await self.reject(batch.items[0], errors)
            return []
        half = len(batch.items) // 2
        return [_Batch(batch.items[:half]), _Batch(batch.items[half:])]

    async def reject(self, item: _Item, errors: list[FieldError]) -> None:
        await self._record("rejected", item.call_id, fingerprint(item.encoded), errors)
        self.settle(CallResult(item.index, item.call_id, REJECTED, errors, "server"))

    async def execute(self, items: Iterable[CallItem | Mapping[str, Any]], grace_s: float) -> None:
        """Settle what earlier runs left open, then produce and send until done or stopped."""
        state = JournalState()
        if self.journal is not None:
            state = await asyncio.to_thread(self.journal.open, journal_target(self.client), self.run_id)
            await self.settle_open(state)
        tasks = [asyncio.create_task(self.produce(items, state))]
        tasks += [asyncio.create_task(self.worker()) for _ in range(self.concurrency)]
        everything: asyncio.Future[Any] = asyncio.gather(*tasks)
        stopping: asyncio.Future[Any] = asyncio.create_task(self.stop.wait())
        try:
            await asyncio.wait([everything, stopping], return_when=asyncio.FIRST_COMPLETED)
            if not everything.done():
                # Stopped: requests in flight may still be answered and recorded; after the
                # grace they are abandoned (the journal keeps them open for the next run).
                self.interrupted = True
                await asyncio.wait([everything], timeout=grace_s)
            if everything.done():
                everything.result()
        finally:
            stopping.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await everything
        self.interrupted = self.interrupted or self.stop.is_set()

    def report(self) -> SubmitReport:
        return SubmitReport(
            results=[self.results[i] for i in sorted(self.results)],
            elapsed_s=time.monotonic() - self.started,
            requests=self.requests,
            rate_limited=self.rate_limited,
            reconciled_batches=self.reconciled,
            interrupted=self.interrupted,
        )

    async def settle_open(self, state: JournalState) -> None:
        """Batches an earlier run sent without recording the answer: recorded or not?"""
        for batch in list(state.open.values()):
            self.reconciled += 1
            if await reconcile(self.client, batch.ids, batch.not_before):
                await self._record("recovered", batch.key, batch.ids)
                for call_id in batch.ids:
                    state.done[call_id] = ACCEPTED
                    self.recovered_at_start.add(call_id)
            else:
                await self._record("unsent", batch.key)


def journal_target(client: AsyncClient) -> dict[str, Any]:
    """What a journal belongs to: ids are unique per partner, and tenancy decides where calls go."""
    return {
        "base_url": client.config.base_url.rstrip("/"),
        "tenant_id": client.config.tenant_id,
        "subtenant_id": client.config.subtenant_id,
        "api_key": (client.config.api_key or "")[:10],
    }


async def submit_calls(
    client: AsyncClient,
    items: Iterable[CallItem | Mapping[str, Any]],
    *,
    concurrency: int = 4,
    max_batch_calls: int = MAX_BATCH_CALLS,
    max_batch_bytes: int = MAX_BATCH_BYTES,
    journal: Journal | str | Path | None = None,
    on_result: Callable[[CallResult], None] | None = None,
    stop: asyncio.Event | None = None,
    grace_s: float = 30.0,
    validate: bool = True,
) -> SubmitReport:
    """Submit ``items`` (``CallItem`` models or mappings in the API's shape).

    - ``concurrency``: requests in flight at once.
    - ``max_batch_calls`` / ``max_batch_bytes``: the API's limits (50 calls, 5 MB); lower them to
      send smaller requests.
    - ``journal``: a path (or ``Journal``) recording what was sent and answered. Run again with
      the same journal after an interruption and only what is not yet accepted is sent; batches
      whose answer was lost are settled through the status API first. Without a journal, the
      run is still exactly once for its own retries, but cannot resume.
    - ``on_result``: called with each ``CallResult`` as soon as it is known (progress).
    - ``validate``: check items against the API's documented rules before sending (default).
      With False they are sent as they are, and the API's 422 rejects just the items it names.
    - ``stop``: set it to stop gracefully: no new request starts; requests in flight get
      ``grace_s`` seconds to be answered (then they are abandoned, and the journal has them
      open for the next run). The report's ``interrupted`` is then True.

    Raises ``SubmitAborted`` (with the partial report) on errors that concern every call:
    credentials (403), tenancy (400), a rate limit that never lets up, an API unreachable after
    every retry.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if not 1 <= max_batch_calls <= MAX_BATCH_CALLS:
        raise ValueError(f"max_batch_calls must be between 1 and {MAX_BATCH_CALLS}")
    if not BATCH_OVERHEAD < max_batch_bytes <= MAX_BATCH_BYTES:
        raise ValueError(f"max_batch_bytes must be at most {MAX_BATCH_BYTES}")
    run = _Run(
        client,
        concurrency=concurrency,
        max_batch_calls=max_batch_calls,
        max_batch_bytes=max_batch_bytes,
        journal=journal if isinstance(journal, Journal) or journal is None else Journal(journal),
        on_result=on_result,
        stop=stop or asyncio.Event(),
        validate=validate,
    )
    previous_hook = client.on_retry

    def count_retry(event: RetryEvent) -> None:
        run.rate_limited += event.reason == "rate_limited"
        if previous_hook is not None:
            previous_hook(event)

    client.on_retry = count_retry
    try:
        await run.execute(items, grace_s)
    except CallpipeError as exc:
        raise SubmitAborted(exc, run.report()) from exc
    finally:
        client.on_retry = previous_hook
        if run.journal is not None and not isinstance(journal, Journal):
            run.journal.close()
    if run.fatal is not None:
        raise SubmitAborted(run.fatal, run.report())
    return run.report()
