"""The gateway's business logic as plain async functions.

They take their dependencies (the repository, settings values, the clock) as arguments, know
nothing of HTTP or Kafka, and raise the typed errors of ``services.gateway.errors``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import orjson
from pydantic import ValidationError

from schemas.analysis import DEFAULT_CONFIG, INTENTS, AnalysisConfig, ConfigSnapshot
from schemas.events import (
    ERASURE_SERVICES,
    CallbackRedeliverRequested,
    CallbackRedeliverRequestedPayload,
    CallErased,
    CallErasedPayload,
    CallFailed,
    CallFailedPayload,
    CallIngested,
    CallIngestedPayload,
    dump_event,
    encode_call_ingested,
    follow_up,
    new_event_ids,
    salvage_event,
)
from services.common import tracing
from services.common.cache import TtlCache
from services.common.kafka import MAX_CALL_EVENT_BYTES
from services.gateway.errors import (
    CallNotFound,
    Conflict,
    ErasureNotFound,
    Forbidden,
    MalformedBody,
    RateLimited,
    SubtenantMissing,
    TenantMissing,
    ValidationFailed,
)
from services.gateway.models import (
    BATCH,
    CONFIG,
    DEPTH_PREDICATE,
    ERASURE,
    ITEM_FIELDS,
    ITEM_PART_FIELDS,
    MAX_TEXT,
    NUL_PREDICATE,
    AnalysisConfigIn,
    CallItemIn,
    ErasureIn,
    field_errors,
    first_too_deep,
    may_be_unportable,
    may_hold_non_json_numbers,
    number_shapes,
    too_deep,
    unportable,
)
from services.gateway.repository import (
    STATUS_RANK,
    ConfigLevel,
    Credential,
    ErasureCall,
    ErasureRequest,
    ListFilters,
    NewCall,
)
from services.gateway.security import secret_matches

SOURCE = "gateway"
NUL = "\x00"


class CredentialLookup(Protocol):
    async def find_credential(self, api_key: str) -> Credential | None: ...


class Repository(CredentialLookup, Protocol):
    async def take_rate_token(self, partner_id: str, limit_per_minute: int) -> tuple[bool, int]: ...
    async def record_calls(
        self,
        partner_id: str,
        *,
        tenant_id: str,
        subtenant_id: str,
        received_at: datetime,
        calls: list[NewCall],
        topic: str,
    ) -> set[str]: ...


@dataclass(frozen=True)
class Partner:
    partner_id: str
    rate_limit_per_minute: int | None


@dataclass(frozen=True)
class Tenancy:
    tenant_id: str
    subtenant_id: str


class CredentialCache:
    """Remembers what a key lookup found for ``ttl_s`` seconds, so a partner's steady traffic
    costs no database round trip for authentication. Revoking or rotating a key therefore takes
    effect on every replica within ``ttl_s`` (so does a new key). The secret is still checked on
    every request.

    Unknown keys are remembered the same way, in a cache of their own: a key that exists and
    one that does not take the same path and the same time (a database round trip the first
    time, none within ``ttl_s``), so timing tells nothing about which keys exist; and random
    keys can only crowd out other random keys, never a partner's."""

    def __init__(self, lookup: CredentialLookup, ttl_s: float, max_entries: int = 10_000) -> None:
        self._lookup = lookup
        self._found: TtlCache[str, Credential] = TtlCache(ttl_s, max_entries)
        self._unknown: TtlCache[str, bool] = TtlCache(ttl_s, max_entries)

    async def find_credential(self, api_key: str) -> Credential | None:
        found = self._found.peek(api_key)
        if found is not None or self._unknown.peek(api_key):
            return found
        credential = await self._lookup.find_credential(api_key)
        if credential is None:
            self._unknown.put(api_key, True)
        else:
            self._found.put(api_key, credential)
        return credential


async def authenticate(credentials: CredentialLookup, api_key: str | None, api_secret: str | None) -> Partner:
    """The partner owning this key and secret; unknown key and wrong secret fail identically."""
    if not api_key or not api_secret or len(api_key) > 200 or len(api_secret) > 200:
        raise Forbidden()
    credential = await credentials.find_credential(api_key)
    matched = secret_matches(api_secret, credential.secret_sha256 if credential else None)
    if credential is None or not matched:
        raise Forbidden()
    return Partner(credential.partner_id, credential.rate_limit_per_minute)


async def enforce_rate_limit(repo: Repository, partner: Partner, default_per_minute: int) -> None:
    limit = partner.rate_limit_per_minute or default_per_minute
    allowed, retry_after = await repo.take_rate_token(partner.partner_id, limit)
    if not allowed:
        raise RateLimited(retry_after)


def header_text(value: str | None) -> str | None:
    """A header's value as the client meant it: HTTP carries bytes, which the server hands over
    as Latin-1 text; tenancy ids are read as UTF-8, the encoding every HTTP client sends text
    in, so ``ténant-ü`` is the same id in the headers, the events, the API and the dashboard.
    ValueError when the bytes are not UTF-8 or hold control characters."""
    if value is None or value.isascii():
        text = value
    else:
        try:
            text = value.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            raise ValueError("not UTF-8") from None
    if text is not None and not text.isprintable() and any(unicodedata.category(c) == "Cc" for c in text):
        raise ValueError("control characters")
    return text


_TENANT_TEXT = "Tenant ID must be UTF-8 text without control characters"
_SUBTENANT_TEXT = "Subtenant ID must be UTF-8 text without control characters"


def _tenancy_headers(tenant_id: str | None, subtenant_id: str | None) -> tuple[str, str]:
    try:
        tenant = (header_text(tenant_id) or "").strip()
    except ValueError:
        raise TenantMissing(_TENANT_TEXT) from None
    try:
        subtenant = (header_text(subtenant_id) or "").strip()
    except ValueError:
        raise SubtenantMissing(_SUBTENANT_TEXT) from None
    return tenant, subtenant


def require_tenancy(tenant_id: str | None, subtenant_id: str | None) -> Tenancy:
    tenant, subtenant = _tenancy_headers(tenant_id, subtenant_id)
    if not tenant:
        raise TenantMissing()
    if len(tenant) > MAX_TEXT:
        raise TenantMissing(f"Tenant ID must be at most {MAX_TEXT} characters")
    if not subtenant:
        raise SubtenantMissing()
    if len(subtenant) > MAX_TEXT:
        raise SubtenantMissing(f"Subtenant ID must be at most {MAX_TEXT} characters")
    return Tenancy(tenant, subtenant)


def _strict_json(body: bytes) -> Any:
    """``body`` parsed by a strict RFC 8259 parser (no NaN, no Infinity, no number beyond a
    double); MalformedBody if it is not such JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedBody() from None


def parse_batch(body: bytes) -> list[CallItemIn]:
    """Parse and validate the JSON body, reporting every error of the request at once.

    Beyond the contract's rules, refuses what a later stage could not carry: NaN, Infinity and
    numbers no double holds (400, they are not JSON), nesting deeper than ``MAX_JSON_DEPTH``, NUL
    characters and integers beyond 64 bits (422 naming the field). The rarer checks run only when
    a cheap scan of the raw bytes says they could matter, to keep the hot path lean."""
    shapes = number_shapes(body)
    if may_hold_non_json_numbers(body, shapes):
        _strict_json(body)
    try:
        items = BATCH.validate_json(body)["data"]
    except ValidationError as exc:
        problems = exc.errors()
        if any(e["type"] == "json_invalid" and "recursion limit" in e["msg"] for e in problems):
            # Deeper than pydantic's own parser goes: valid JSON, refused for its depth.
            at = first_too_deep(_strict_json(body)) or "body"
            raise ValidationFailed([{"field": at, "message": f"{at.rsplit('.', 1)[-1]} {DEPTH_PREDICATE}"}]) from None
        if any(e["type"] == "json_invalid" for e in problems):
            raise MalformedBody() from None
        raise ValidationFailed(field_errors(exc)) from None
    errors = too_deep(items)
    if may_be_unportable(body, shapes):
        errors += unportable(items, "data")
    if errors:
        raise ValidationFailed(errors)
    return items


def encode_event(
    item: CallItemIn,
    partner: Partner,
    tenancy: Tenancy,
    *,
    received_at: datetime,
    event_id: str,
    analysis_config: dict[str, Any] | None = None,
) -> bytes:
    """The ``calls.ingested.v1`` event carrying everything later stages need."""
    return encode_call_ingested(
        event_id=event_id,
        occurred_at=received_at,
        partner_id=partner.partner_id,
        tenant_id=tenancy.tenant_id,
        subtenant_id=tenancy.subtenant_id,
        source=SOURCE,
        call=item["call"],
        agent=item["agent"],
        customer=item["customer"],
        callback_url=item.get("callback_url"),
        metadata=item.get("metadata"),
        custom_fields=item.get("custom_fields"),  # type: ignore[arg-type]
        extra={k: v for k, v in item.items() if k not in ITEM_FIELDS},
        analysis_config=analysis_config,
    )


SubjectKind = Literal["customer", "contact"]


def subject_value(kind: SubjectKind, value: str) -> str:
    """The form of a data subject's identifier that is hashed: a customer id as sent (trimmed), a
    contact number as its digits only (``+1 (234) 567-890`` and ``+1234567890`` are one number)."""
    if kind == "contact":
        return "".join(c for c in value if c.isascii() and c.isdigit())
    return value.strip()


def subject_key(partner_id: str, tenant_id: str, kind: SubjectKind, value: str) -> bytes | None:
    """The salted hash under which the ledger finds a customer's calls for an erasure, without
    keeping the customer id or contact number in clear: SHA-256 over a domain label, the partner,
    the tenant, the kind and the normalised value (so equal values of different tenants never
    share a key, and no precomputed table of phone numbers matches). None for an empty value."""
    normalised = subject_value(kind, value)
    if not normalised:
        return None
    material = "\x00".join(("callpipe.erasure.v1", partner_id, tenant_id, kind, normalised))
    return hashlib.sha256(material.encode()).digest()


def oversized_call(index: int, item: CallItemIn, size: int) -> dict[str, str]:
    """The field error of a call whose event would exceed ``MAX_CALL_EVENT_BYTES``: named by its
    largest unknown field (what a partner can leave out), else by the call item itself."""
    raw: dict[str, Any] = item  # type: ignore[assignment]
    unknown: list[tuple[int, str]] = [
        (len(orjson.dumps(raw[key])), f"data[{index}].{key}") for key in raw.keys() - ITEM_FIELDS
    ]
    for part in ("call", "agent", "customer"):
        known = ITEM_PART_FIELDS[part]
        unknown += [
            (len(orjson.dumps(value)), f"data[{index}].{part}.{key}")
            for key, value in raw[part].items()
            if key not in known
        ]
    field = max(unknown)[1] if unknown else f"data[{index}]"
    name = field.rsplit(".", 1)[-1]
    return {
        "field": field,
        "message": f"{name} makes the call {size} bytes once encoded; a call may take at most "
        f"{MAX_CALL_EVENT_BYTES} bytes",
    }


async def ingest_batch(
    repo: Repository,
    partner: Partner,
    tenancy: Tenancy,
    items: list[CallItemIn],
    *,
    topic: str,
    received_at: datetime,
    analysis_config: dict[str, Any] | None = None,
) -> list[dict[str, str]]:
    """Record every new call of the batch with its event, durably, in one transaction.

    Returns one outcome per item, in request order: ``accepted`` for a call recorded now,
    ``duplicate`` for an id already known (earlier request, concurrent request, or earlier in
    this batch), which is not processed again.

    With tracing on, each call starts a trace of its own (``call.ingest``, linked to the request's
    span) whose context is stored with its event: the rest of the pipeline continues that trace.
    """
    first: dict[str, tuple[int, CallItemIn]] = {}
    for index, item in enumerate(items):
        first.setdefault(item["call"]["id"], (index, item))
    event_ids = new_event_ids(len(first))
    new_calls = []
    too_large: list[dict[str, str]] = []
    spans: dict[str, tracing.Span | None] = {}
    for (call_id, (index, item)), event_id in zip(first.items(), event_ids, strict=True):
        event = encode_event(
            item, partner, tenancy, received_at=received_at, event_id=event_id, analysis_config=analysis_config
        )
        if len(event) > MAX_CALL_EVENT_BYTES:
            too_large.append(oversized_call(index, item, len(event)))
        spans[call_id], context = tracing.call_trace(
            "call.ingest", {"callpipe.call_id": call_id, "callpipe.partner_id": partner.partner_id}
        )
        new_calls.append(
            NewCall(
                call_id,
                event,
                context,
                customer_key=subject_key(partner.partner_id, tenancy.tenant_id, "customer", item["customer"]["id"]),
                contact_key=subject_key(
                    partner.partner_id, tenancy.tenant_id, "contact", item["call"]["contact_number"]
                ),
            )
        )
    if too_large:
        for started in spans.values():
            tracing.end(started, error="validation_failed")
        raise ValidationFailed(too_large)
    try:
        accepted = await repo.record_calls(
            partner.partner_id,
            tenant_id=tenancy.tenant_id,
            subtenant_id=tenancy.subtenant_id,
            received_at=received_at,
            calls=new_calls,
            topic=topic,
        )
    except BaseException:
        for started in spans.values():
            tracing.end(started, error="not_recorded")
        raise
    for call_id, started in spans.items():
        tracing.end(started, attributes={"callpipe.ingest.outcome": "accepted" if call_id in accepted else "duplicate"})
    outcomes = []
    for item in items:
        call_id = item["call"]["id"]
        status = "accepted" if call_id in accepted else "duplicate"
        accepted.discard(call_id)  # a later repeat of the same id in this batch is a duplicate
        outcomes.append({"id": call_id, "status": status})
    return outcomes


# ---------------------------------------------------------------------------------------------
# Analysis configuration
# ---------------------------------------------------------------------------------------------


class ConfigRepository(Protocol):
    async def config_levels(self, partner_id: str, tenant_id: str, subtenant_id: str) -> dict[str, ConfigLevel]: ...
    async def save_config(self, partner_id: str, tenant_id: str, subtenant_id: str, config: dict[str, Any]) -> int: ...


_FIELDS = ("labels", "rubric", "channels")


def effective_snapshot(levels: dict[str, ConfigLevel]) -> ConfigSnapshot:
    """Each field from the most specific level that sets it: subtenant, tenant, defaults.

    ``data_protection`` is merged one key deeper (each retention period, each redaction setting
    on its own), so a subtenant can shorten one period without restating the tenant's others."""
    merged: dict[str, Any] = DEFAULT_CONFIG.model_dump(mode="json")
    source = "default"
    for level in ("tenant", "subtenant"):
        document = levels[level].config if level in levels else {}
        for name in _FIELDS:
            if document.get(name) is not None:
                merged[name] = document[name]
                source = level
        for section, values in (document.get("data_protection") or {}).items():
            if isinstance(values, dict) and section in merged["data_protection"]:
                merged["data_protection"][section].update(values)
                source = level
    config = AnalysisConfig.model_validate(merged)
    return ConfigSnapshot(config_id=config.config_id(), config=config, source=source)


class ConfigSnapshots:
    """The effective configuration for (partner, tenant, subtenant), as the JSON put in every
    ingested event, cached for ``ttl_s`` so ingestion costs no extra query. A change applies to
    new calls on every replica within ``ttl_s`` (at once on the replica that saved it)."""

    def __init__(self, repo: ConfigRepository, ttl_s: float) -> None:
        self._repo = repo
        self._cache: TtlCache[tuple[str, str, str], dict[str, Any]] = TtlCache(ttl_s)

    async def get(self, partner: Partner, tenancy: Tenancy) -> dict[str, Any]:
        key = (partner.partner_id, tenancy.tenant_id, tenancy.subtenant_id)

        async def load() -> dict[str, Any]:
            levels = await self._repo.config_levels(*key)
            return effective_snapshot(levels).model_dump(mode="json")

        snapshot = await self._cache.get(key, load)
        return snapshot if snapshot is not None else await load()

    def invalidate(self, partner: Partner, tenancy: Tenancy) -> None:
        """Forget every cached subtenant of this tenant: a tenant-level change affects them all."""
        self._cache.invalidate_where(lambda k: k[0] == partner.partner_id and k[1] == tenancy.tenant_id)


def parse_config(body: bytes) -> AnalysisConfigIn:
    try:
        config = CONFIG.validate_json(body)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise MalformedBody() from None
        raise ValidationFailed(field_errors(exc)) from None
    if errors := [{**e, "field": e["field"].removeprefix("body.")} for e in unportable(config.model_dump(), "body")]:
        raise ValidationFailed(errors)
    return config


def parse_scope(scope: str | None) -> str:
    if not scope:
        raise ValidationFailed([{"field": "scope", "message": "scope should not be empty"}])
    if scope not in ("tenant", "subtenant"):
        raise ValidationFailed([{"field": "scope", "message": "scope must be one of: tenant, subtenant"}])
    return scope


def _level_view(level: ConfigLevel | None) -> dict[str, Any] | None:
    if level is None:
        return None
    updated = level.updated_at.isoformat().replace("+00:00", "Z")
    return {"version": level.version, "updated_at": updated, "config": level.config}


def config_view(levels: dict[str, ConfigLevel]) -> dict[str, Any]:
    """What GET and PUT answer: the effective configuration and the levels it comes from."""
    snapshot = effective_snapshot(levels)
    return {
        "config_id": snapshot.config_id,
        "source": snapshot.source,
        "effective": snapshot.config.model_dump(mode="json"),
        "tenant": _level_view(levels.get("tenant")),
        "subtenant": _level_view(levels.get("subtenant")),
    }


async def describe_config(repo: ConfigRepository, partner: Partner, tenancy: Tenancy) -> dict[str, Any]:
    return config_view(await repo.config_levels(partner.partner_id, tenancy.tenant_id, tenancy.subtenant_id))


async def save_config(
    repo: ConfigRepository,
    snapshots: ConfigSnapshots,
    partner: Partner,
    tenancy: Tenancy,
    *,
    scope: str,
    document: AnalysisConfigIn,
) -> dict[str, Any]:
    """Store ``document`` as the next version of the tenant or subtenant level."""
    subtenant = tenancy.subtenant_id if scope == "subtenant" else ""
    await repo.save_config(partner.partner_id, tenancy.tenant_id, subtenant, document.stored())
    snapshots.invalidate(partner, tenancy)
    return await describe_config(repo, partner, tenancy)


# ---------------------------------------------------------------------------------------------
# Status and results (the read model)
# ---------------------------------------------------------------------------------------------

DEFAULT_PAGE = 50
MAX_PAGE = 200
STATUSES = tuple(STATUS_RANK)
FINAL_DELIVERY_STATES = ("delivered", "failed")
#: After this long without the notifier's answer, a redelivery request stops blocking the next
#: one (its command was lost, say); the notifier answers in well under a second normally.
REDELIVERY_GUARD_S = 300.0
# ISO 8601 in UTC, as the ingestion API takes timestamps (Z or +00:00, up to microseconds).
_UTC_TIMESTAMP = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|\+00:00)$")
_UTC_MESSAGE = "must be an ISO 8601 date-time in UTC (YYYY-MM-DDThh:mm:ssZ)"
# An integer as ASCII digits, short enough that int() is cheap (longer is out of range anyway).
_LIMIT = re.compile(r"^[0-9]{1,9}$")


class StatusRepository(Protocol):
    async def find_call(
        self, partner_id: str, call_id: str, tenant_id: str, subtenant_id: str | None
    ) -> dict[str, Any] | None: ...
    async def find_ledger_call(
        self, partner_id: str, call_id: str, tenant_id: str, subtenant_id: str | None
    ) -> dict[str, Any] | None: ...
    async def callback_attempts(self, partner_id: str, call_id: str) -> list[dict[str, Any]]: ...
    async def list_calls(self, partner_id: str, filters: ListFilters, limit: int) -> list[dict[str, Any]]: ...
    async def enqueue_event(self, topic: str, key: str, payload: bytes) -> None: ...
    async def request_redelivery(
        self,
        partner_id: str,
        call_id: str,
        tenant_id: str,
        subtenant_id: str | None,
        *,
        command_id: uuid.UUID,
        guard_s: float,
        topic: str,
        command: Callable[[dict[str, Any]], bytes],
    ) -> tuple[str, dict[str, Any] | None]: ...


@dataclass(frozen=True)
class ReadScope:
    """What a reader may see: one tenant, and one subtenant when ``x-sub-tenant-id`` is sent."""

    tenant_id: str
    subtenant_id: str | None


def reader_scope(tenant_id: str | None, subtenant_id: str | None) -> ReadScope:
    """``x-tenant-id`` is required (400, as for ingestion); ``x-sub-tenant-id`` narrows the view to
    one subtenant when present and not blank, else the whole tenant is visible."""
    tenant, subtenant = _tenancy_headers(tenant_id, subtenant_id)
    if not tenant:
        raise TenantMissing()
    if len(tenant) > MAX_TEXT:
        raise TenantMissing(f"Tenant ID must be at most {MAX_TEXT} characters")
    if len(subtenant) > MAX_TEXT:
        raise SubtenantMissing(f"Subtenant ID must be at most {MAX_TEXT} characters")
    return ReadScope(tenant, subtenant or None)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _timestamps(row: dict[str, Any]) -> dict[str, str | None]:
    return {
        "received": _iso(row["received_at"]),
        "fetching": _iso(row.get("fetching_at")),
        "fetched": _iso(row.get("fetched_at")),
        "analyzing": _iso(row.get("analyzing_at")),
        "completed": _iso(row.get("completed_at")),
        "failed": _iso(row.get("failed_at")),
    }


def _attempt_view(a: dict[str, Any]) -> dict[str, Any]:
    return {
        "delivery_id": a["delivery_id"],
        "kind": a["kind"],
        "number": a["number"],
        "started_at": _iso(a["started_at"]),
        "status_code": a["status_code"],
        "latency_ms": a["latency_ms"],
        "error": a["error"],
    }


def call_view(row: dict[str, Any], attempts: list[dict[str, Any]] | None) -> dict[str, Any]:
    """One call as the API shows it. ``attempts`` None: the list's summary (no result, no attempts)."""
    status = row["status"]
    url = row.get("delivery_url") or row.get("callback_url")
    view: dict[str, Any] = {
        "call_id": row["call_id"],
        "status": status,
        "tenant_id": row["tenant_id"],
        "subtenant_id": row["subtenant_id"],
        "agent_id": row.get("agent_id"),
        "timestamps": _timestamps(row),
    }
    # A terminal status is final, so only its own outcome is shown (an error recorded by a late,
    # losing failure event never sits beside a completed call's result, and vice versa).
    error = row.get("error") if status == "failed" else None
    if attempts is None:
        view.update(
            intent=row.get("intent") if status == "completed" else None,
            quality_score=row.get("quality_score") if status == "completed" else None,
            error=error,
            callback_state="pending" if row.get("redelivery_command_id") else row.get("delivery_state"),
        )
        return view
    view["result"] = row.get("result") if status == "completed" else None
    view["error"] = error
    view["data_protection"] = retention_view(row)
    view["callback"] = (
        {
            "url": url,
            "delivery_id": row.get("delivery_id"),
            "kind": row.get("delivery_kind"),
            "state": "pending" if row.get("redelivery_command_id") else row.get("delivery_state"),
            "next_attempt_at": _iso(row.get("delivery_next_attempt_at")),
            "redelivery_requested_at": _iso(row.get("redelivery_requested_at")),
            "error": row.get("delivery_error"),
            "attempts": [_attempt_view(a) for a in attempts],
        }
        if url or row.get("delivery_id")
        else None
    )
    return view


async def describe_call(repo: StatusRepository, partner: Partner, scope: ReadScope, call_id: str) -> dict[str, Any]:
    """The call's status, stage timestamps, result or error, and callback deliveries.

    A call the read model has not seen yet (accepted, its ingested event not consumed) answers
    ``received`` from the ingestion ledger. Anything outside the caller's partner, tenant and
    subtenant answers 404, exactly like an unknown id."""
    if NUL in call_id:
        raise CallNotFound()  # no call id can hold it (ingestion refuses it)
    row = await repo.find_call(partner.partner_id, call_id, scope.tenant_id, scope.subtenant_id)
    if row is not None:
        return call_view(row, await repo.callback_attempts(partner.partner_id, call_id))
    ledger = await repo.find_ledger_call(partner.partner_id, call_id, scope.tenant_id, scope.subtenant_id)
    if ledger is None:
        raise CallNotFound()
    return call_view({**ledger, "status": "received"}, [])


def encode_cursor(received_at: datetime, call_id: str) -> str:
    """Opaque position after a row: base64url of ``[received_at, call_id]`` (not a secret: it can
    only point inside the caller's own, already scoped, query)."""
    raw = orjson.dumps([received_at.isoformat(), call_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


#: Longest cursor ``encode_cursor`` can make (a 255-character id, escaped), with margin.
_MAX_CURSOR = 2048
#: Received times PostgreSQL and Python both hold, with a day's margin for time zones.
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a ``next_cursor`` encodes; 422 ``cursor is invalid`` for anything else
    (including what no call can have: a time beyond the calendar, an id with U+0000)."""
    try:
        if len(cursor) > _MAX_CURSOR or not cursor.isascii():
            raise ValueError(cursor)
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, call_id = orjson.loads(raw)
        when = datetime.fromisoformat(at)
        if when.tzinfo is None or not isinstance(call_id, str) or not _EARLIEST <= when <= _LATEST:
            raise ValueError(cursor)
        if not call_id or NUL in call_id or len(call_id) > MAX_TEXT:
            raise ValueError(cursor)
    except (binascii.Error, ValueError, TypeError, OverflowError):
        raise ValidationFailed([{"field": "cursor", "message": "cursor is invalid"}]) from None
    return when.astimezone(UTC), call_id


def _timestamp(name: str, value: str | None, errors: list[dict[str, str]]) -> datetime | None:
    if value is None:
        return None
    if not _UTC_TIMESTAMP.match(value):
        errors.append({"field": name, "message": f"{name} {_UTC_MESSAGE}"})
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        errors.append({"field": name, "message": f"{name} {_UTC_MESSAGE}"})
        return None


def _text(name: str, value: str | None, errors: list[dict[str, str]]) -> str | None:
    if value is None:
        return None
    if not value.strip():
        errors.append({"field": name, "message": f"{name} should not be empty"})
    elif NUL in value:
        errors.append({"field": name, "message": f"{name} {NUL_PREDICATE}"})
    elif len(value) > MAX_TEXT:
        errors.append({"field": name, "message": f"{name} must be shorter than or equal to {MAX_TEXT} characters"})
    return value


def parse_list_query(
    scope: ReadScope,
    *,
    status: str | None = None,
    subtenant: str | None = None,
    agent: str | None = None,
    received_from: str | None = None,
    received_to: str | None = None,
    intent: str | None = None,
    limit: str | None = None,
    cursor: str | None = None,
) -> tuple[ListFilters, int]:
    """The list's filters and page size, every error of the query reported at once (422)."""
    errors: list[dict[str, str]] = []
    statuses: tuple[str, ...] = ()
    if status is not None:
        statuses = tuple(s.strip() for s in status.split(","))
        if not all(s in STATUSES for s in statuses):
            errors.append({"field": "status", "message": f"status must be one of: {', '.join(STATUSES)}"})
    if intent is not None and intent not in INTENTS:
        errors.append({"field": "intent", "message": f"intent must be one of: {', '.join(INTENTS)}"})
    subtenant = _text("subtenant", subtenant, errors)
    agent = _text("agent", agent, errors)
    start = _timestamp("from", received_from, errors)
    end = _timestamp("to", received_to, errors)
    if start is not None and end is not None and start >= end:
        errors.append({"field": "to", "message": "to must be after from"})
    size = DEFAULT_PAGE
    if limit is not None:
        # ASCII digits only: str.isdigit() also accepts "²" and other digits int() refuses.
        if not _LIMIT.match(limit):
            errors.append({"field": "limit", "message": "limit must be an integer"})
        elif not 1 <= int(limit) <= MAX_PAGE:
            errors.append({"field": "limit", "message": f"limit must be between 1 and {MAX_PAGE}"})
        else:
            size = int(limit)
    after = None
    if cursor is not None:
        try:
            after = decode_cursor(cursor)
        except ValidationFailed as exc:
            errors.extend(exc.errors)
    if errors:
        raise ValidationFailed(errors)
    filters = ListFilters(
        tenant_id=scope.tenant_id,
        subtenant_id=scope.subtenant_id,
        subtenant=subtenant,
        statuses=statuses,
        agent_id=agent,
        intent=intent,
        received_from=start,
        received_to=end,
        after=after,
    )
    return filters, size


async def list_calls(repo: StatusRepository, partner: Partner, filters: ListFilters, limit: int) -> dict[str, Any]:
    """One page, newest first by received time then call id, and the cursor of the next page
    (None on the last). Keyset pagination: a page never repeats or skips a call, whatever was
    received meanwhile."""
    rows = await repo.list_calls(partner.partner_id, filters, limit + 1)
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1]["received_at"], page[-1]["call_id"]) if len(rows) > limit else None
    return {"calls": [call_view(r, None) for r in page], "next_cursor": next_cursor}


def requester(partner: Partner, api_key: str) -> str:
    """``requested_by`` of a partner's command: the partner and a prefix of the key used (enough
    to tell the partner's keys apart in an audit, never the whole credential)."""
    return f"partner:{partner.partner_id} key:{api_key[:10]}"


async def request_redelivery(
    repo: StatusRepository,
    partner: Partner,
    scope: ReadScope,
    call_id: str,
    *,
    topic: str,
    requested_by: str,
    now: datetime,
    guard_s: float = REDELIVERY_GUARD_S,
) -> dict[str, Any]:
    """Queue a ``callbacks.commands.v1`` redelivery command through the outbox, at most one at a
    time per call.

    404 like ``describe_call``; 409 when the call has no callback_url, or when its callback is not
    in a final state (delivered or failed) yet: while the notifier is still delivering or
    retrying, a redelivery would race its own schedule. A request is outstanding (and further ones
    409) from the moment it is accepted until the notifier reports it acted on the command: the
    check and the write are one atomic statement, so concurrent requests get one 202."""
    if NUL in call_id:
        raise CallNotFound()
    command_id = uuid.uuid4()

    def command(row: dict[str, Any]) -> bytes:
        return dump_event(
            CallbackRedeliverRequested(
                event_id=command_id,
                occurred_at=now,
                partner_id=partner.partner_id,
                tenant_id=row["tenant_id"],
                subtenant_id=row["subtenant_id"],
                call_id=call_id,
                source=SOURCE,
                payload=CallbackRedeliverRequestedPayload(requested_by=requested_by),
            )
        )

    outcome, row = await repo.request_redelivery(
        partner.partner_id,
        call_id,
        scope.tenant_id,
        scope.subtenant_id,
        command_id=command_id,
        guard_s=guard_s,
        topic=topic,
        command=command,
    )
    if outcome == "not_found":
        raise CallNotFound()
    if outcome == "no_callback":
        raise Conflict("Call has no callback_url")
    if outcome == "purged":
        raise Conflict("Callback cannot be redelivered: the call's results or transcript were purged by retention")
    if outcome != "requested" or row is None:
        raise Conflict("Callback can be redelivered only once its delivery is delivered or failed")
    return {
        "call_id": call_id,
        "delivery_id": row.get("delivery_id"),
        "requested_at": _iso(now),
        "command_id": str(command_id),
    }


# ---------------------------------------------------------------------------------------------
# Erasure
# ---------------------------------------------------------------------------------------------


class ErasureRepository(Protocol):
    async def erase_call(
        self, request: ErasureRequest, call_id: str, event: Callable[[ErasureCall], bytes]
    ) -> tuple[str, dict[str, Any] | None]: ...
    async def erase_customer(
        self,
        request: ErasureRequest,
        customer_key: bytes | None,
        contact_key: bytes | None,
        event: Callable[[ErasureCall], bytes],
    ) -> dict[str, Any]: ...
    async def find_erasure(
        self, partner_id: str, erasure_id: uuid.UUID, tenant_id: str, subtenant_id: str | None
    ) -> dict[str, Any] | None: ...


def parse_erasure(body: bytes) -> ErasureIn:
    """The erasure request; an empty body counts as ``{}``. 422 naming both fields when neither
    is given, and the contact number when it holds no digit."""
    try:
        request = ERASURE.validate_json(body or b"{}")
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise MalformedBody() from None
        raise ValidationFailed(field_errors(exc)) from None
    if errors := unportable(request.model_dump(), "body"):
        raise ValidationFailed([{**e, "field": e["field"].removeprefix("body.")} for e in errors])
    if request.customer_id is None and request.contact_number is None:
        raise ValidationFailed(
            [
                {"field": "customer_id", "message": "customer_id should not be empty (or give contact_number)"},
                {"field": "contact_number", "message": "contact_number should not be empty (or give customer_id)"},
            ]
        )
    if request.contact_number is not None and not subject_value("contact", request.contact_number):
        raise ValidationFailed([{"field": "contact_number", "message": "contact_number must hold a phone number"}])
    return request


def _erasure_event(partner: Partner, erasure_id: uuid.UUID, requested_at: datetime) -> Callable[[ErasureCall], bytes]:
    def event(call: ErasureCall) -> bytes:
        return dump_event(
            CallErased(
                event_id=uuid.uuid4(),
                occurred_at=requested_at,
                partner_id=partner.partner_id,
                tenant_id=call.tenant_id,
                subtenant_id=call.subtenant_id,
                call_id=call.call_id,
                source=SOURCE,
                payload=CallErasedPayload(erasure_id=erasure_id, requested_at=requested_at),
            )
        )

    return event


def erasure_status(row: dict[str, Any]) -> str:
    return "completed" if row["completed_at"] is not None else "pending"


def erasure_accepted(row: dict[str, Any]) -> dict[str, Any]:
    """What DELETE /calls/{id} and POST /erasures answer (202)."""
    return {"success": True, "erasure_id": str(row["erasure_id"]), "status": erasure_status(row), "calls": row["calls"]}


async def erase_call(
    repo: ErasureRepository,
    partner: Partner,
    scope: ReadScope,
    call_id: str,
    *,
    topic: str,
    requested_by: str,
    now: datetime,
) -> dict[str, Any]:
    """Erase one call of the caller's scope (404 like ``describe_call`` otherwise). Erasing it
    again answers the erasure that erased it (idempotent)."""
    if NUL in call_id:
        raise CallNotFound()
    erasure_id = uuid.uuid4()
    request = ErasureRequest(
        erasure_id=erasure_id,
        partner_id=partner.partner_id,
        tenant_id=scope.tenant_id,
        subtenant_id=scope.subtenant_id,
        scope="call",
        selector={"call_id": call_id},
        requested_by=requested_by,
        requested_at=now,
        topic=topic,
    )
    outcome, row = await repo.erase_call(request, call_id, _erasure_event(partner, erasure_id, now))
    if outcome == "not_found" or row is None:
        raise CallNotFound()
    return row


async def erase_customer(
    repo: ErasureRepository,
    partner: Partner,
    scope: ReadScope,
    body: ErasureIn,
    *,
    topic: str,
    requested_by: str,
    now: datetime,
) -> dict[str, Any]:
    """Erase every call of the customer in the caller's tenant (and subtenant, when the header is
    sent): calls whose customer id OR contact number matches, so a data subject's request misses
    none. The audit keeps the salted hashes, never the values."""
    tenant = scope.tenant_id
    customer_key = (
        subject_key(partner.partner_id, tenant, "customer", body.customer_id) if body.customer_id is not None else None
    )
    contact_key = (
        subject_key(partner.partner_id, tenant, "contact", body.contact_number)
        if body.contact_number is not None
        else None
    )
    selector = {name: key.hex() for name, key in (("customer_key", customer_key), ("contact_key", contact_key)) if key}
    erasure_id = uuid.uuid4()
    request = ErasureRequest(
        erasure_id=erasure_id,
        partner_id=partner.partner_id,
        tenant_id=tenant,
        subtenant_id=scope.subtenant_id,
        scope="customer",
        selector=selector,
        requested_by=requested_by,
        requested_at=now,
        topic=topic,
    )
    return await repo.erase_customer(request, customer_key, contact_key, _erasure_event(partner, erasure_id, now))


async def describe_erasure(
    repo: ErasureRepository, partner: Partner, scope: ReadScope, erasure_id: str
) -> dict[str, Any]:
    """The erasure's scope, status and each service's confirmations (404 outside the caller's
    partner and tenant, and subtenant when the header is sent)."""
    try:
        key = uuid.UUID(erasure_id)
    except ValueError:
        raise ErasureNotFound() from None
    row = await repo.find_erasure(partner.partner_id, key, scope.tenant_id, scope.subtenant_id)
    if row is None:
        raise ErasureNotFound()
    calls = row["calls"]
    return {
        "erasure_id": str(row["erasure_id"]),
        "scope": row["scope"],
        "status": erasure_status(row),
        "requested_at": _iso(row["requested_at"]),
        "completed_at": _iso(row["completed_at"]),
        "calls": calls,
        "services": {s: {"confirmed": row["confirmed"].get(s, 0), "of": calls} for s in ERASURE_SERVICES},
    }


def retention_view(row: dict[str, Any]) -> dict[str, Any]:
    """The call's ``data_protection`` block: when each part expires and when it was purged."""
    return {
        "retention": {
            part: {"expires_at": _iso(row.get(f"{part}_expires_at")), "purged_at": _iso(row.get(f"{part}_purged_at"))}
            for part in ("recording", "transcript", "results")
        }
    }


# ---------------------------------------------------------------------------------------------
# The outbox's last resort
# ---------------------------------------------------------------------------------------------

_FAILURE_NAMESPACE = uuid.UUID("a3f1e6c2-7d4b-4e0a-9c5f-2b8d1e6f4a90")


def unpublishable(record: tuple[str, str, bytes], *, failed_topic: str) -> list[tuple[str, str, bytes]]:
    """What replaces a record Kafka refuses for good (the outbox relay's ``on_unpublishable``).

    For a call's ``calls.ingested.v1`` event: the call's ``calls.failed.v1`` (stage ``ingest``,
    code ``event_too_large``), carrying the call as ingested without the partner's unknown fields
    (the usual cause) so the failure callback can still be sent; the status API shows the call
    failed. Ingestion refuses such calls up front; this is the defence behind that check. Other
    records (commands) are only set aside."""
    _, key, payload = record
    event = salvage_event(payload)
    if not isinstance(event, CallIngested):
        return []
    ingested: CallIngestedPayload | None = event.payload
    for candidate in (ingested, None):
        failed = CallFailed(
            **follow_up(event, event_id=uuid.uuid5(_FAILURE_NAMESPACE, f"{key}/{event.event_id}"), source=SOURCE),
            payload=CallFailedPayload(
                stage="ingest",
                code="event_too_large",
                message="The call's data is too large to be processed.",
                retryable=False,
                ingested=candidate,
            ),
        )
        encoded = dump_event(failed)
        if len(encoded) <= MAX_CALL_EVENT_BYTES:
            return [(failed_topic, key, encoded)]
    return []
