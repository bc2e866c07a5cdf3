"""The partner API's clients: ``Client`` (blocking) and ``AsyncClient`` (asyncio), with the same
methods. Both retry connection errors, timeouts, 429 and 5xx with back-off that honours
``Retry-After``, and raise the typed errors of ``callpipe_client.errors``.

    from callpipe_client import Client

    with Client.from_env() as client:           # CALLPIPE_BASE_URL, CALLPIPE_API_KEY, ...
        report = client.submit_calls(items)     # any number of calls, batched and throttled
        status = client.get_call("call123")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from callpipe_client import bulk
from callpipe_client._retry import NOT_ACTED_ON, RETRY_STATUSES, parse_http_date, parse_retry_after
from callpipe_client._version import __version__
from callpipe_client.config import ClientConfig
from callpipe_client.errors import Abandoned, ApiError, ConfigurationError, RateLimited, TransportError, api_error
from callpipe_client.models import (
    AnalysisConfig,
    CallItem,
    CallOutcome,
    CallPage,
    CallStatus,
    CallSummary,
    ConfigView,
    DashboardSessionsRevoked,
    DashboardToken,
    Erasure,
    ErasureAccepted,
    Redelivery,
    utc_timestamp,
)
from callpipe_client.validation import MAX_BATCH_CALLS, batch_body, encode_item, normalize

INGEST_PATH = "/api/v1/partner/ingest/batch-call"
CALLS_PATH = "/api/v1/partner/calls"
CONFIG_PATH = "/api/v1/partner/analysis-config"
ERASURES_PATH = "/api/v1/partner/erasures"
DASHBOARD_TOKEN_PATH = "/api/v1/partner/dashboard/auth/token"  # noqa: S105 - a path
DASHBOARD_REVOKE_PATH = "/api/v1/partner/dashboard/sessions/revoke"


def _dashboard_params(agent_id: str | None, read_only: bool) -> dict[str, str]:
    params = {"read_only": "true"} if read_only else {}
    if agent_id is not None:
        params["agent_id"] = agent_id
    return params


M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class RetryEvent:
    """A request about to be tried again: why, after how long, and which try comes next."""

    reason: str  # "rate_limited", "server_error" or "transport"
    wait_s: float
    attempt: int
    status_code: int | None = None


RetryHook = Callable[[RetryEvent], None]

# Failures before the request was written: it cannot have taken effect.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def call_path(call_id: str, suffix: str = "") -> str:
    """``/api/v1/partner/calls/{id}`` with the id as one path segment (``/``, ``?``, ``#`` and
    dot segments escaped, so no id can address another resource)."""
    segment = quote(call_id, safe="")
    if segment in (".", ".."):
        segment = segment.replace(".", "%2E")
    return f"{CALLS_PATH}/{segment}{suffix}"


def _timestamp_param(value: datetime | str | None) -> str | None:
    if isinstance(value, datetime):
        return utc_timestamp(value)
    return value


def list_params(
    *,
    status: str | Sequence[str] | None = None,
    subtenant: str | None = None,
    agent: str | None = None,
    received_from: datetime | str | None = None,
    received_to: datetime | str | None = None,
    intent: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> dict[str, str]:
    """The list endpoint's query: ``status`` one or several, times as datetimes or UTC strings."""
    params = {
        "status": status if status is None or isinstance(status, str) else ",".join(status),
        "subtenant": subtenant,
        "agent": agent,
        "from": _timestamp_param(received_from),
        "to": _timestamp_param(received_to),
        "intent": intent,
        "limit": None if limit is None else str(limit),
        "cursor": cursor,
    }
    return {k: v for k, v in params.items() if v is not None}


class _Base:
    """What both clients share: settings, headers, decoding, and the retry decisions."""

    def __init__(self, config: ClientConfig, on_retry: RetryHook | None) -> None:
        self.config = config
        self.on_retry = on_retry
        #: The latest ``Date`` the server sent (its clock, to the second); ``submit_calls`` uses it
        #: to recognise its own calls after an interrupted request.
        self.server_date: datetime | None = None
        self._gate_until = 0.0  # monotonic time before which no request is sent (after a 429)

    def _headers(self, *, subtenant_required: bool, json_body: bool) -> list[tuple[bytes, bytes]]:
        headers = {**self.config.credential_headers(), "user-agent": f"callpipe-client/{__version__}"}
        if not self.config.tenant_id:
            raise ConfigurationError("no tenant: set CALLPIPE_TENANT_ID or pass tenant_id=")
        headers["x-tenant-id"] = self.config.tenant_id
        if self.config.subtenant_id:
            headers["x-sub-tenant-id"] = self.config.subtenant_id
        elif subtenant_required:
            raise ConfigurationError("no subtenant: set CALLPIPE_SUBTENANT_ID or pass subtenant_id=")
        if json_body:
            headers["content-type"] = "application/json"
        # Tenancy ids are text the API reads as UTF-8 (httpx takes only ASCII in a str value).
        return [(name.encode("ascii"), value.encode("utf-8")) for name, value in headers.items()]

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.config.timeout_s, connect=self.config.connect_timeout_s)

    def _note(self, response: httpx.Response) -> None:
        when = parse_http_date(response.headers.get("date"))
        if when is not None and (self.server_date is None or when > self.server_date):
            self.server_date = when

    def _decide(
        self, attempt: int, rate_waited: float, outcome: httpx.Response | Exception, retry_ambiguous: bool
    ) -> tuple[float, RetryEvent] | Exception:
        """After try number ``attempt``: the wait before the next try, or the error to raise."""
        policy = self.config.retry
        if isinstance(outcome, Exception):
            sent = not isinstance(outcome, _NOT_SENT)
            broken = TransportError(f"{type(outcome).__name__}: {outcome}".rstrip(": "), sent=sent)
            if attempt >= policy.attempts or (sent and not retry_ambiguous):
                return broken
            wait = policy.backoff(attempt)
            return wait, RetryEvent("transport", wait, attempt + 1)
        error = api_error(outcome.status_code, _decode(outcome), outcome.headers)
        if outcome.status_code not in RETRY_STATUSES:
            return error
        retry_after = error.retry_after_s if isinstance(error, RateLimited) else None
        if outcome.status_code == 429:
            # Waiting is the only way through a rate limit: it does not use up the tries.
            wait = policy.backoff(attempt, retry_after if retry_after is not None else 1.0)
            if rate_waited + wait > policy.rate_limit_wait_s:
                return error
            self._gate_until = max(self._gate_until, time.monotonic() + wait)
            return wait, RetryEvent("rate_limited", wait, attempt, 429)
        acted_on = outcome.status_code not in NOT_ACTED_ON
        if attempt >= policy.attempts or (acted_on and not retry_ambiguous):
            return error
        wait = policy.backoff(attempt, parse_retry_after(outcome.headers.get("retry-after")))
        reason = "server_error" if acted_on else "request_timeout"
        return wait, RetryEvent(reason, wait, attempt + 1, outcome.status_code)

    def _emit(self, event: RetryEvent) -> None:
        if self.on_retry is not None:
            self.on_retry(event)


def _decode(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:500]


def _data(response: httpx.Response) -> Any:
    body = _decode(response)
    if not isinstance(body, dict) or "data" not in body:
        raise ApiError(response.status_code, "unexpected response body", body=body)
    return body["data"]


def _top(response: httpx.Response, key: str | None = None) -> Any:
    """The body of a response whose fields sit beside ``success`` (the erasure endpoints), or
    its ``key`` member."""
    body = _decode(response)
    if not isinstance(body, dict) or (key is not None and key not in body):
        raise ApiError(response.status_code, "unexpected response body", body=body)
    return body[key] if key is not None else body


def _erasure_body(customer_id: str | None, contact_number: str | None) -> bytes:
    if customer_id is None and contact_number is None:
        raise ConfigurationError("give customer_id, contact_number or both")
    document = {k: v for k, v in (("customer_id", customer_id), ("contact_number", contact_number)) if v is not None}
    return json.dumps(document).encode()


def erasure_path(erasure_id: str) -> str:
    return f"{ERASURES_PATH}/{quote(erasure_id, safe='')}"


def _batch(items: Sequence[CallItem | Mapping[str, Any]]) -> bytes:
    if not 1 <= len(items) <= MAX_BATCH_CALLS:
        raise ValueError(f"a batch holds 1 to {MAX_BATCH_CALLS} calls; use submit_calls for more")
    return batch_body([encode_item(normalize(item)) for item in items])


def _outcomes(response: httpx.Response) -> list[CallOutcome]:
    data = _data(response)
    calls = data.get("calls") if isinstance(data, dict) else None
    if not isinstance(calls, list):
        raise ApiError(response.status_code, "response without data.calls", body=data)
    return [CallOutcome.model_validate(c) for c in calls]


async def _pause(seconds: float, abandon: asyncio.Event | None) -> None:
    """Sleep, or return early once ``abandon`` is set."""
    if abandon is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(abandon.wait(), seconds)


class Client(_Base):
    """Blocking client. ``Client.from_env()`` reads ``CALLPIPE_*``; keyword arguments override."""

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        on_retry: RetryHook | None = None,
        http_client: httpx.Client | None = None,
        **settings: Any,
    ) -> None:
        super().__init__((config or ClientConfig.from_env()).with_overrides(**settings), on_retry)
        self._own_http = http_client is None
        self._http = http_client or httpx.Client(base_url=self.config.base_url, timeout=self._timeout())
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, **settings: Any) -> Client:
        return cls(ClientConfig.from_env(**settings))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        subtenant_required: bool = False,
        retry_ambiguous: bool = True,
    ) -> httpx.Response:
        """One API request with retries; the 2xx response, or the typed error."""
        headers = self._headers(subtenant_required=subtenant_required, json_body=content is not None)
        attempt, rate_waited = 0, 0.0
        while True:
            attempt += 1
            if (gate := self._gate_until - time.monotonic()) > 0:
                time.sleep(gate)
            outcome: httpx.Response | Exception
            try:
                outcome = self._http.request(method, path, params=params, content=content, headers=headers)
            except httpx.TransportError as exc:
                outcome = exc
            else:
                self._note(outcome)
                if outcome.status_code < 400:
                    return outcome
            decision = self._decide(attempt, rate_waited, outcome, retry_ambiguous)
            if isinstance(decision, Exception):
                raise decision
            wait, event = decision
            if event.reason == "rate_limited":
                rate_waited += wait
                attempt -= 1
            self._emit(event)
            time.sleep(wait)

    def ingest_batch(self, items: Sequence[CallItem | Mapping[str, Any]]) -> list[CallOutcome]:
        """``POST`` one batch (1 to 50 calls) as is; one outcome per call, in order.

        No local validation: a 422 raises ``ValidationFailed`` for the whole batch. After a retried
        timeout a call may answer ``duplicate`` because the first try accepted it; ``submit_calls``
        tells the two apart."""
        return _outcomes(self.request("POST", INGEST_PATH, content=_batch(items), subtenant_required=True))

    def get_call(self, call_id: str) -> CallStatus:
        """A call's status, stage times, result or error, and callback attempts (404: ``NotFound``)."""
        return CallStatus.model_validate(_data(self.request("GET", call_path(call_id))))

    def list_calls(self, **filters: Any) -> CallPage:
        """One page of calls, newest first. Filters: ``status``, ``subtenant``, ``agent``,
        ``received_from``, ``received_to``, ``intent``, ``limit`` (1-200), ``cursor``."""
        return CallPage.model_validate(_data(self.request("GET", CALLS_PATH, params=list_params(**filters))))

    def iter_calls(self, *, max_items: int | None = None, **filters: Any) -> Iterator[CallSummary]:
        """Every call matching ``filters``, page after page (the cursor followed for you)."""
        seen = 0
        cursor = filters.pop("cursor", None)
        while True:
            page = self.list_calls(cursor=cursor, **filters)
            for call in page.calls:
                if max_items is not None and seen >= max_items:
                    return
                seen += 1
                yield call
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def redeliver_callback(self, call_id: str) -> Redelivery:
        """Deliver the call's callback again (``Conflict`` while a delivery is still under way)."""
        return Redelivery.model_validate(_data(self.request("POST", call_path(call_id, "/callback/redeliver"))))

    def erase_call(self, call_id: str) -> ErasureAccepted:
        """Erase the call everywhere (``NotFound`` outside the tenant, and subtenant when set);
        erasing it again returns the same erasure."""
        return ErasureAccepted.model_validate(_top(self.request("DELETE", call_path(call_id))))

    def erase_customer(self, *, customer_id: str | None = None, contact_number: str | None = None) -> ErasureAccepted:
        """Erase every call of the customer whose id OR contact number matches, in the tenant
        (only the client's subtenant when one is set)."""
        response = self.request("POST", ERASURES_PATH, content=_erasure_body(customer_id, contact_number))
        return ErasureAccepted.model_validate(_top(response))

    def get_erasure(self, erasure_id: str) -> Erasure:
        """The erasure's status and each service's confirmations."""
        return Erasure.model_validate(_top(self.request("GET", erasure_path(erasure_id)), "erasure"))

    def get_analysis_config(self) -> ConfigView:
        return ConfigView.model_validate(_data(self.request("GET", CONFIG_PATH, subtenant_required=True)))

    def get_dashboard_token(self, *, agent_id: str | None = None, read_only: bool = False) -> DashboardToken:
        """A single-use dashboard token for this tenant and subtenant (one agent's calls only with
        ``agent_id``; no redeliver button with ``read_only``); embed its ``url`` in an iframe."""
        response = self.request(
            "GET", DASHBOARD_TOKEN_PATH, params=_dashboard_params(agent_id, read_only), subtenant_required=True
        )
        return DashboardToken.model_validate(_data(response))

    def revoke_dashboard_sessions(self) -> DashboardSessionsRevoked:
        """End every dashboard session of the account and void every token not yet exchanged."""
        return DashboardSessionsRevoked.model_validate(_data(self.request("POST", DASHBOARD_REVOKE_PATH)))

    def set_analysis_config(self, config: AnalysisConfig | Mapping[str, Any], *, scope: str) -> ConfigView:
        """Store a new version of the ``tenant`` or ``subtenant`` level; returns what is now in effect."""
        document = config.to_json() if isinstance(config, AnalysisConfig) else dict(config)
        response = self.request(
            "PUT",
            CONFIG_PATH,
            params={"scope": scope},
            content=json.dumps(document, allow_nan=False).encode(),
            subtenant_required=True,
        )
        return ConfigView.model_validate(_data(response))

    def submit_calls(self, items: Iterable[CallItem | Mapping[str, Any]], **options: Any) -> bulk.SubmitReport:
        """Submit any number of calls; see ``AsyncClient.submit_calls`` for the options. Runs the
        asyncio engine in a private thread, so it also works where an event loop is running
        (``on_result`` is called from that thread)."""
        result: list[bulk.SubmitReport] = []
        errors: list[BaseException] = []
        running: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        ready = threading.Event()

        async def run() -> None:
            stop = options.pop("stop", None) or asyncio.Event()
            running.append((asyncio.get_running_loop(), stop))
            ready.set()
            async with AsyncClient(self.config, on_retry=self.on_retry) as client:
                result.append(await bulk.submit_calls(client, items, stop=stop, **options))

        def target() -> None:
            try:
                asyncio.run(run())
            except BaseException as exc:  # handed to the caller's thread
                errors.append(exc)
            finally:
                ready.set()

        thread = threading.Thread(target=target, name="callpipe-submit")
        thread.start()
        try:
            thread.join()
        except KeyboardInterrupt:
            # Ctrl-C: stop gracefully (requests in flight are answered and recorded), then re-raise.
            ready.wait()
            if running:
                loop, stop = running[0]
                loop.call_soon_threadsafe(stop.set)
            thread.join()
            raise
        if errors:
            raise errors[0]
        return result[0]

    def scoped(self, *, tenant_id: str | None = None, subtenant_id: str | None = None) -> Client:
        """A client for another tenant or subtenant, sharing this one's connections."""
        config = self.config.with_overrides(tenant_id=tenant_id, subtenant_id=subtenant_id)
        clone = Client(config, http_client=self._http)
        clone.on_retry = self.on_retry
        return clone


class AsyncClient(_Base):
    """asyncio client with the same methods as ``Client`` (awaitable)."""

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        on_retry: RetryHook | None = None,
        http_client: httpx.AsyncClient | None = None,
        **settings: Any,
    ) -> None:
        super().__init__((config or ClientConfig.from_env()).with_overrides(**settings), on_retry)
        self._own_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            base_url=self.config.base_url,
            timeout=self._timeout(),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )

    @classmethod
    def from_env(cls, **settings: Any) -> AsyncClient:
        return cls(ClientConfig.from_env(**settings))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        subtenant_required: bool = False,
        retry_ambiguous: bool = True,
        abandon: asyncio.Event | None = None,
    ) -> httpx.Response:
        """One API request with retries; the 2xx response, or the typed error.

        ``abandon``: once set, the request gives up instead of starting a try (raising
        ``Abandoned``); a try already under way is never cut off."""
        headers = self._headers(subtenant_required=subtenant_required, json_body=content is not None)
        attempt, rate_waited = 0, 0.0
        while True:
            attempt += 1
            if (gate := self._gate_until - time.monotonic()) > 0:
                # Another request hit the rate limit: every request waits, not only that one.
                await _pause(gate, abandon)
            if abandon is not None and abandon.is_set():
                raise Abandoned("stopped before sending")
            outcome: httpx.Response | Exception
            try:
                outcome = await self._http.request(method, path, params=params, content=content, headers=headers)
            except httpx.TransportError as exc:
                outcome = exc
            else:
                self._note(outcome)
                if outcome.status_code < 400:
                    return outcome
            decision = self._decide(attempt, rate_waited, outcome, retry_ambiguous)
            if isinstance(decision, Exception):
                raise decision
            wait, event = decision
            if event.reason == "rate_limited":
                rate_waited += wait
                attempt -= 1
            self._emit(event)
            await _pause(wait, abandon)

    async def ingest_batch(self, items: Sequence[CallItem | Mapping[str, Any]]) -> list[CallOutcome]:
        """As ``Client.ingest_batch``."""
        response = await self.request("POST", INGEST_PATH, content=_batch(items), subtenant_required=True)
        return _outcomes(response)

    async def ingest_encoded(
        self, body: bytes, *, retry_ambiguous: bool, abandon: asyncio.Event | None = None
    ) -> list[CallOutcome]:
        """``POST`` an already encoded batch body (``submit_calls`` uses it)."""
        response = await self.request(
            "POST",
            INGEST_PATH,
            content=body,
            subtenant_required=True,
            retry_ambiguous=retry_ambiguous,
            abandon=abandon,
        )
        return _outcomes(response)

    async def get_call(self, call_id: str) -> CallStatus:
        return CallStatus.model_validate(_data(await self.request("GET", call_path(call_id))))

    async def list_calls(self, **filters: Any) -> CallPage:
        response = await self.request("GET", CALLS_PATH, params=list_params(**filters))
        return CallPage.model_validate(_data(response))

    async def iter_calls(self, *, max_items: int | None = None, **filters: Any) -> AsyncIterator[CallSummary]:
        seen = 0
        cursor = filters.pop("cursor", None)
        while True:
            page = await self.list_calls(cursor=cursor, **filters)
            for call in page.calls:
                if max_items is not None and seen >= max_items:
                    return
                seen += 1
                yield call
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def redeliver_callback(self, call_id: str) -> Redelivery:
        response = await self.request("POST", call_path(call_id, "/callback/redeliver"))
        return Redelivery.model_validate(_data(response))

    async def erase_call(self, call_id: str) -> ErasureAccepted:
        """Erase the call everywhere (``NotFound`` outside the tenant, and subtenant when set);
        erasing it again returns the same erasure."""
        return ErasureAccepted.model_validate(_top(await self.request("DELETE", call_path(call_id))))

    async def erase_customer(
        self, *, customer_id: str | None = None, contact_number: str | None = None
    ) -> ErasureAccepted:
        """Erase every call of the customer whose id OR contact number matches, in the tenant
        (only the client's subtenant when one is set)."""
        response = await self.request("POST", ERASURES_PATH, content=_erasure_body(customer_id, contact_number))
        return ErasureAccepted.model_validate(_top(response))

    async def get_erasure(self, erasure_id: str) -> Erasure:
        """The erasure's status and each service's confirmations."""
        return Erasure.model_validate(_top(await self.request("GET", erasure_path(erasure_id)), "erasure"))

    async def get_analysis_config(self) -> ConfigView:
        return ConfigView.model_validate(_data(await self.request("GET", CONFIG_PATH, subtenant_required=True)))

    async def get_dashboard_token(self, *, agent_id: str | None = None, read_only: bool = False) -> DashboardToken:
        response = await self.request(
            "GET", DASHBOARD_TOKEN_PATH, params=_dashboard_params(agent_id, read_only), subtenant_required=True
        )
        return DashboardToken.model_validate(_data(response))

    async def revoke_dashboard_sessions(self) -> DashboardSessionsRevoked:
        response = await self.request("POST", DASHBOARD_REVOKE_PATH)
        return DashboardSessionsRevoked.model_validate(_data(response))

    async def set_analysis_config(self, config: AnalysisConfig | Mapping[str, Any], *, scope: str) -> ConfigView:
        document = config.to_json() if isinstance(config, AnalysisConfig) else dict(config)
        response = await self.request(
            "PUT",
            CONFIG_PATH,
            params={"scope": scope},
            content=json.dumps(document, allow_nan=False).encode(),
            subtenant_required=True,
        )
        return ConfigView.model_validate(_data(response))

    async def submit_calls(self, items: Iterable[CallItem | Mapping[str, Any]], **options: Any) -> bulk.SubmitReport:
        """Submit any number of calls: validated locally, split into batches of at most 50 calls
        and 5 MB, sent ``concurrency`` at a time, throttled by the API's rate limit. Returns a
        ``SubmitReport`` with each call's outcome (accepted, duplicate, rejected with its field
        errors). With ``journal=`` a run can be interrupted and resumed without sending any call
        twice. See ``callpipe_client.bulk.submit_calls`` for every option."""
        return await bulk.submit_calls(self, items, **options)

    def scoped(self, *, tenant_id: str | None = None, subtenant_id: str | None = None) -> AsyncClient:
        clone = AsyncClient(
            self.config.with_overrides(tenant_id=tenant_id, subtenant_id=subtenant_id), http_client=self._http
        )
        clone.on_retry = self.on_retry
        return clone


__all__ = ["AsyncClient", "Client", "RetryEvent", "call_path", "list_params"]
