"""The gateway's business logic as plain async functions.

They take their dependencies (the repository, settings values, the clock) as arguments, know
nothing of HTTP or Kafka, and raise the typed errors of ``services.gateway.errors``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pydantic import ValidationError

from schemas.events import encode_call_ingested, new_event_ids
from services.gateway.errors import (
    Forbidden,
    MalformedBody,
    RateLimited,
    SubtenantMissing,
    TenantMissing,
    ValidationFailed,
)
from services.gateway.models import BATCH, ITEM_FIELDS, MAX_TEXT, CallItemIn, field_errors
from services.gateway.repository import Credential, NewCall
from services.gateway.security import secret_matches

SOURCE = "gateway"


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
    """Remembers found credentials for ``ttl_s`` seconds, so a partner's steady traffic costs no
    database round trip for authentication. Revoking or rotating a key therefore takes effect
    on every replica within ``ttl_s``. Unknown keys are never cached (random keys cannot fill
    the cache) and the secret is still checked on every request."""

    def __init__(self, lookup: CredentialLookup, ttl_s: float, max_entries: int = 10_000) -> None:
        self._lookup = lookup
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: dict[str, tuple[float, Credential]] = {}

    async def find_credential(self, api_key: str) -> Credential | None:
        now = time.monotonic()
        cached = self._entries.get(api_key)
        if cached is not None and cached[0] > now:
            return cached[1]
        credential = await self._lookup.find_credential(api_key)
        if credential is None or self._ttl_s <= 0:
            self._entries.pop(api_key, None)
            return credential
        if len(self._entries) >= self._max_entries:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= self._max_entries:
                self._entries.pop(next(iter(self._entries)))
        self._entries[api_key] = (now + self._ttl_s, credential)
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


def require_tenancy(tenant_id: str | None, subtenant_id: str | None) -> Tenancy:
    tenant = (tenant_id or "").strip()
    subtenant = (subtenant_id or "").strip()
    if not tenant:
        raise TenantMissing()
    if len(tenant) > MAX_TEXT:
        raise TenantMissing(f"Tenant ID must be at most {MAX_TEXT} characters")
    if not subtenant:
        raise SubtenantMissing()
    if len(subtenant) > MAX_TEXT:
        raise SubtenantMissing(f"Subtenant ID must be at most {MAX_TEXT} characters")
    return Tenancy(tenant, subtenant)


def parse_batch(body: bytes) -> list[CallItemIn]:
    """Parse and validate the JSON body, reporting every error of the request at once."""
    try:
        return BATCH.validate_json(body)["data"]
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise MalformedBody() from None
        raise ValidationFailed(field_errors(exc)) from None


def encode_event(item: CallItemIn, partner: Partner, tenancy: Tenancy, received_at: datetime, event_id: str) -> bytes:
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
    )


async def ingest_batch(
    repo: Repository,
    partner: Partner,
    tenancy: Tenancy,
    items: list[CallItemIn],
    *,
    topic: str,
    received_at: datetime,
) -> list[dict[str, str]]:
    """Record every new call of the batch with its event, durably, in one transaction.

    Returns one outcome per item, in request order: ``accepted`` for a call recorded now,
    ``duplicate`` for an id already known (earlier request, concurrent request, or earlier in
    this batch), which is not processed again.
    """
    first: dict[str, CallItemIn] = {}
    for item in items:
        first.setdefault(item["call"]["id"], item)
    event_ids = new_event_ids(len(first))
    new_calls = [
        NewCall(call_id, encode_event(item, partner, tenancy, received_at, event_id))
        for (call_id, item), event_id in zip(first.items(), event_ids, strict=True)
    ]
    accepted = await repo.record_calls(
        partner.partner_id,
        tenant_id=tenancy.tenant_id,
        subtenant_id=tenancy.subtenant_id,
        received_at=received_at,
        calls=new_calls,
        topic=topic,
    )
    outcomes = []
    for item in items:
        call_id = item["call"]["id"]
        status = "accepted" if call_id in accepted else "duplicate"
        accepted.discard(call_id)  # a later repeat of the same id in this batch is a duplicate
        outcomes.append({"id": call_id, "status": status})
    return outcomes
