"""The dispatcher: sends due deliveries from PostgreSQL, records every attempt, schedules retries.

- **Claiming.** Due deliveries (``next_attempt_at <= now()``) are claimed with ``FOR UPDATE SKIP
  LOCKED``; the claim pushes ``next_attempt_at`` to the end of a lease, so several replicas share
  the work and a crashed replica's deliveries become due again when their lease ends.
- **Isolation.** At most ``concurrency`` callbacks are in flight per process, and at most
  ``per_partner`` for any one partner: a partner whose endpoint hangs holds only its own slots,
  and its other due deliveries are not even claimed until one frees up, so every other partner's
  callbacks go out as usual.
- **One attempt.** Refused before any connection when the URL is not https (unless development
  allows http) or fails the SSRF guard; otherwise a POST of the stored body bytes with fresh
  Standard Webhooks headers, through the SSRF-guarded session (resolved address checked at
  connect). Success is a 2xx within ``timeout_s``. A 3xx is a failure and its ``Location`` is
  never contacted.
- **Retries.** A failed attempt is retried ``attempts - 1`` times, after an exponential delay with
  jitter (``RetryPolicy``); a 429 or 503 with ``Retry-After`` waits at least that long (capped).
  The next attempt's time is written to the table with the attempt, so retries survive restarts.
  After the last attempt the delivery is ``failed``; a redeliver command starts a new round.

Attempt error codes: ``http_status`` (a non-2xx answer), ``redirect`` (a 3xx), ``timeout``,
``connection_error``, ``tls_error``, and, without retry, ``blocked_address``; refusals without an
attempt: ``https_required``, ``unsupported_scheme``, ``invalid_url``, ``blocked_address``.

- **Observability.** Each attempt is a span in the trace stored with the delivery (the call's),
  so retries hours later still join it; the receiver is sent no trace header (it is a third
  party). Attempts are counted by outcome (``delivered`` or the error code) and timed; a delivery
  reaching its final state at the end of its first round records its latency and the call's
  ingest-to-callback time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from yarl import URL

from services.common import metrics, ssrf, tracing
from services.common.backoff import Backoff
from services.common.http import parse_retry_after
from services.notifier.errors import DeliveryRefused
from services.notifier.handlers import announce
from services.notifier.repository import AttemptRecord, Claimed, Delivery, NotifierRepository
from services.notifier.signing import signed_headers

log = logging.getLogger(__name__)

# A receiver's answer body is read (up to this much, for this long) only so that the connection
# can be reused; its content is ignored.
_DRAIN_BYTES = 64 * 1024
_DRAIN_S = 2.0


#: Waits after a dispatch round failed (the database unreachable, say).
_ROUND_RETRY = Backoff(0.4, 10.0)


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` per round; attempt n+1 waits ``base_s * factor ** (n-1)`` (at most ``max_s``)
    times a random factor in ``[1 - jitter, 1 + jitter]``."""

    attempts: int = 4
    base_s: float = 30.0
    factor: float = 4.0
    max_s: float = 3600.0
    jitter: float = 0.2
    retry_after_max_s: float = 3600.0

    def delay(self, failed_in_round: int, retry_after_s: float | None = None) -> float:
        """Seconds before the next attempt, after ``failed_in_round`` failed attempts."""
        return Backoff(self.base_s, self.max_s, self.factor, self.jitter, self.retry_after_max_s).delay(
            failed_in_round, retry_after_s
        )


@dataclass(frozen=True)
class DispatchSettings:
    concurrency: int = 64
    per_partner: int = 4
    poll_interval_s: float = 0.5
    lease_s: float = 45.0
    timeout_s: float = 15.0
    user_agent: str = "callpipe-notifier/0.1"
    allow_http: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to. ``error_code`` None means delivered."""

    status_code: int | None = None
    latency_ms: float | None = None
    error_code: str | None = None
    error: str | None = None
    retry_after_s: float | None = None
    final: bool = False  # retrying cannot help (the address is refused)


@dataclass
class DispatcherStats:
    attempts: int = 0
    delivered: int = 0
    failed: int = 0
    retries_scheduled: int = 0
    refused: int = 0
    lost_leases: int = 0
    errors: int = 0


def check_target(url: str, policy: ssrf.SsrfPolicy, *, allow_http: bool) -> None:
    """Raise ``DeliveryRefused`` when ``url`` must not be contacted at all."""
    try:
        scheme = URL(url).scheme
    except (ValueError, TypeError):
        raise DeliveryRefused("invalid_url", "the callback URL is not a valid URL") from None
    if scheme == "http" and not allow_http:
        raise DeliveryRefused("https_required", "the callback URL must use https")
    try:
        ssrf.check_url(url, policy)
    except ssrf.SsrfError as exc:
        raise DeliveryRefused(exc.code, str(exc)) from None


async def _drain(response: aiohttp.ClientResponse) -> None:
    read = 0
    while read <= _DRAIN_BYTES and not response.content.at_eof():
        chunk = await response.content.readany()
        if not chunk:
            return
        read += len(chunk)


async def send(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], timeout_s: float
) -> Outcome:
    """POST ``body`` once; never raises for what the receiver or the network did."""
    started = time.perf_counter()

    def elapsed_ms() -> float:
        return round((time.perf_counter() - started) * 1000, 1)

    try:
        async with asyncio.timeout(timeout_s):
            response = await ssrf.guarded_request(
                session, "POST", url, follow_redirects=False, data=body, headers=headers
            )
    except ssrf.SsrfError as exc:
        return Outcome(latency_ms=elapsed_ms(), error_code=exc.code, error=str(exc), final=True)
    except TimeoutError:
        return Outcome(latency_ms=elapsed_ms(), error_code="timeout", error=f"no answer within {timeout_s:g} s")
    except (aiohttp.ClientSSLError, aiohttp.ClientConnectorCertificateError):
        return Outcome(latency_ms=elapsed_ms(), error_code="tls_error", error="the TLS handshake failed")
    except aiohttp.ClientError as exc:
        return Outcome(
            latency_ms=elapsed_ms(), error_code="connection_error", error=f"connection failed ({type(exc).__name__})"
        )
    latency = elapsed_ms()
    status = response.status
    try:
        async with asyncio.timeout(_DRAIN_S):
            await _drain(response)
    except (TimeoutError, aiohttp.ClientError):
        pass
    finally:
        response.release()
    if 200 <= status < 300:
        return Outcome(status_code=status, latency_ms=latency)
    if 300 <= status < 400:
        return Outcome(
            status_code=status,
            latency_ms=latency,
            error_code="redirect",
            error=f"the receiver answered HTTP {status}; redirects are not followed",
        )
    retry_after = parse_retry_after(response.headers.get("Retry-After")) if status in (429, 503) else None
    return Outcome(
        status_code=status,
        latency_ms=latency,
        error_code="http_status",
        error=f"the receiver answered HTTP {status}",
        retry_after_s=retry_after,
    )


class Dispatcher:
    """Claims and sends due deliveries until stopped (``start``/``stop`` in the app's lifespan)."""

    def __init__(
        self,
        repo: NotifierRepository,
        session: aiohttp.ClientSession,
        settings: DispatchSettings,
        *,
        topic: Callable[[str], str],
        changed: Callable[[], None] = lambda: None,
    ) -> None:
        self._repo = repo
        self._session = session
        self._s = settings
        self._topic = topic
        self._changed = changed  # wakes the outbox relay after a state change
        connector = session.connector
        if not isinstance(connector, ssrf.GuardedConnector):
            raise TypeError("the dispatcher needs a session from ssrf.make_session")
        self._policy = connector.policy
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._in_flight: dict[asyncio.Task[None], Claimed] = {}
        self._per_partner: dict[str, int] = {}
        self.last_loop = 0.0
        self.stats = DispatcherStats()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="callback-dispatcher")

    def wake(self) -> None:
        """New or reset deliveries are due: look now rather than at the next poll."""
        self._wake.set()

    def alive(self) -> bool:
        """The loop runs and went round recently."""
        return (
            self._task is not None
            and not self._task.done()
            and time.monotonic() - self.last_loop < max(10.0, 4 * self._s.poll_interval_s)
        )

    def in_flight(self) -> int:
        return len(self._in_flight)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop claiming, let attempts in flight finish (bounded), hand the rest back."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        tasks = list(self._in_flight)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            unfinished = [self._in_flight[t] for t in pending if t in self._in_flight]
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
            with contextlib.suppress(Exception):
                await self._repo.release(unfinished)

    # -- the loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            self.last_loop = time.monotonic()
            # Cleared before looking, not after: a wake-up during the round starts the next one.
            self._wake.clear()
            try:
                wait = await self._round()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self.stats.errors += 1
                wait = _ROUND_RETRY.delay(failures)
                log.warning(
                    "dispatch round failed; retrying",
                    extra={"error": type(exc).__name__, "attempt": failures, "retry_in_s": round(wait, 2)},
                )
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)

    async def _round(self) -> float:
        """Claim what is due and start sending it; returns how long to wait before the next round."""
        free = self._s.concurrency - len(self._in_flight)
        if free <= 0:
            return self._s.poll_interval_s  # a finishing attempt wakes the loop
        claims = await self._repo.claim(
            limit=free, in_flight=self._per_partner, per_partner=self._s.per_partner, lease_s=self._s.lease_s
        )
        for claimed in claims:
            partner = claimed.delivery.partner_id
            self._per_partner[partner] = self._per_partner.get(partner, 0) + 1
            task = asyncio.create_task(self._deliver(claimed), name=f"deliver-{claimed.delivery.delivery_id}")
            metrics.CALLBACK_IN_FLIGHT.inc()
            self._in_flight[task] = claimed
            task.add_done_callback(self._finished)
        if claims:
            return 0.0  # more may be due
        busy = [p for p, n in self._per_partner.items() if n >= self._s.per_partner]
        due = await self._repo.next_due(exclude_partners=busy)
        if due is None:
            return self._s.poll_interval_s
        # Not less than 10 ms: rows another replica is claiming right now look due but are not.
        return min(self._s.poll_interval_s, max(0.01, (due - datetime.now(UTC)).total_seconds()))

    def _finished(self, task: asyncio.Task[None]) -> None:
        claimed = self._in_flight.pop(task, None)
        if claimed is not None:
            metrics.CALLBACK_IN_FLIGHT.dec()
            partner = claimed.delivery.partner_id
            left = self._per_partner.get(partner, 1) - 1
            if left > 0:
                self._per_partner[partner] = left
            else:
                self._per_partner.pop(partner, None)
        self._wake.set()

    # -- one attempt --------------------------------------------------------------------------

    @staticmethod
    def _observe(d: Delivery, outcome: Outcome) -> None:
        """Count and time an attempt; its span gets the answer's status."""
        result = outcome.error_code or "delivered"
        metrics.CALLBACK_ATTEMPTS.labels(d.kind, result).inc()
        if outcome.latency_ms is not None:
            metrics.CALLBACK_ATTEMPT_DURATION.labels(d.kind, result).observe(outcome.latency_ms / 1000)
        current = trace.get_current_span()
        if current.is_recording():
            current.set_attribute("http.response.status_code", outcome.status_code or 0)
            if outcome.error_code is not None:
                tracing.fail(current, outcome.error_code)

    @staticmethod
    def _final(d: Delivery, state: str) -> None:
        """Count a delivery that reached ``state``; at the end of its first round (the call's
        acceptance time still known), its latency and the call's ingest-to-callback time."""
        metrics.CALLBACK_DELIVERIES.labels(d.kind, state).inc()
        if d.received_at is not None:
            now = datetime.now(UTC)
            metrics.CALLBACK_DELIVERY_LATENCY.labels(d.kind, state).observe((now - d.created_at).total_seconds())
            metrics.CALL_END_TO_END.labels(d.kind, state).observe((now - d.received_at).total_seconds())

    async def _deliver(self, claimed: Claimed) -> None:
        d = claimed.delivery
        tracing.CALL_ID.set(d.call_id)  # this task's log lines
        try:
            with tracing.span(
                "callback attempt",
                parent=d.trace_context,
                kind=SpanKind.CLIENT,
                attributes={
                    "callpipe.call_id": d.call_id,
                    "callpipe.delivery_id": d.delivery_id,
                    "callpipe.callback.kind": d.kind,
                    "callpipe.callback.attempt": d.attempts + 1,
                },
            ):
                await self.attempt(claimed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The lease runs out and the delivery is tried again; nothing is lost.
            self.stats.errors += 1
            log.warning(
                "delivery attempt not recorded; it will be retried when its lease ends",
                extra={"delivery_id": claimed.delivery.delivery_id, "error": type(exc).__name__},
            )

    async def attempt(self, claimed: Claimed) -> None:
        """One attempt of a claimed delivery, recorded with the delivery's new state."""
        d = claimed.delivery
        context = {"delivery_id": d.delivery_id, "partner_id": d.partner_id, "call_id": d.call_id, "kind": d.kind}
        try:
            check_target(d.url, self._policy, allow_http=self._s.allow_http)
        except DeliveryRefused as refused:
            error = f"{refused.code}: {refused.message}"
            metrics.CALLBACK_ATTEMPTS.labels(d.kind, refused.code).inc()
            if await self._repo.refuse(claimed, error, announce(self._topic, error=error)) is not None:
                self.stats.refused += 1
                self._final(d, "failed")
                log.info("callback refused", extra={**context, "code": refused.code})
                self._changed()
            return

        found, created = await self._repo.valid_secrets([d.partner_id])
        if created:
            log.info(
                "signing secret created for partner; operators fetch it with "
                "`python -m services.notifier.admin signing-secret show`",
                extra={"partner_id": d.partner_id},
            )
        number = d.attempts + 1
        started_at = datetime.now(UTC)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": self._s.user_agent,
            **signed_headers(found[d.partner_id], d.delivery_id, int(time.time()), claimed.body),
        }
        outcome = await send(self._session, d.url, claimed.body, headers, self._s.timeout_s)
        self.stats.attempts += 1
        self._observe(d, outcome)

        record = AttemptRecord(
            number=number,
            started_at=started_at,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            error_code=outcome.error_code,
            error=None if outcome.error_code is None else f"{outcome.error_code}: {outcome.error}",
        )
        failed_in_round = d.round_attempts + 1
        retry_in: float | None = None
        if outcome.error_code is None:
            state = "delivered"
        elif outcome.final or failed_in_round >= self._s.retry.attempts:
            state = "failed"
        else:
            state = "retrying"
            retry_in = self._s.retry.delay(failed_in_round, outcome.retry_after_s)
        updated = await self._repo.finish_attempt(
            claimed, record, state=state, retry_in_s=retry_in, announce=announce(self._topic, attempt=record)
        )
        if updated is None:
            self.stats.lost_leases += 1
            log.warning("delivery lease lost; attempt not recorded", extra=context)
            return
        if state == "delivered":
            self.stats.delivered += 1
        elif state == "failed":
            self.stats.failed += 1
        else:
            self.stats.retries_scheduled += 1
        if state in ("delivered", "failed"):
            self._final(d, state)
        log.info(
            "callback attempt",
            extra={
                **context,
                "attempt": number,
                "state": state,
                "status_code": outcome.status_code,
                "error_code": outcome.error_code,
                "latency_ms": outcome.latency_ms,
                "retry_in_s": None if retry_in is None else round(retry_in, 2),
            },
        )
        self._changed()
