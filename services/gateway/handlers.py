"""The gateway's business logic as plain async functions.

They take their dependencies (the repository, settings values, the clock) as arguments, know
nothing of HTTP or Kafka, and raise the typed errors of ``services.gateway.errors``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pydantic import ValidationError

from schemas.events import CallIngested, CallIngestedPayload
from services.gateway.errors import (
    Forbidden,
    MalformedBody,
    RateLimited,
    SubtenantMissing,
    TenantMissing,
    ValidationFailed,
)
from services.gateway.models import MAX_TEXT, BatchIn, CallItemIn, field_errors
from services.gateway.repository import Credential, NewCall
from services.gateway.security import secret_matches

SOURCE = "gateway"


class Repository(Protocol):
    async def find_credential(self, api_key: str) -> Credential | None: ...
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


async def authenticate(repo: Repository, api_key: str | None, api_secret: str | None) -> Partner:
    """The partner owning this key and secret; unknown key and wrong secret fail identically."""
    if not api_key or not api_secret or len(api_key) > 200 or len(api_secret) > 200:
        raise Forbidden()
    credential = await repo.find_credential(api_key)
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


def parse_batch(body: bytes) -> BatchIn:
    """Parse and validate the JSON body, reporting every error of the request at once."""
    try:
        return BatchIn.model_validate_json(body)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise MalformedBody() from None
        raise ValidationFailed(field_errors(exc)) from None


def build_event(item: CallItemIn, partner: Partner, tenancy: Tenancy, received_at: datetime) -> CallIngested:
    """The ``calls.ingested.v1`` event carrying everything later stages need."""
    call = item.call.model_dump(exclude_none=True)
    payload = CallIngestedPayload.model_validate(
        {
            "call": call,
            "agent": item.agent.model_dump(exclude_none=True),
            "customer": item.customer.model_dump(exclude_none=True),
            "callback_url": item.callback_url,
            "metadata": item.metadata or {},
            "custom_fields": [f.model_dump() for f in item.custom_fields or ()],
            "extra": item.model_extra or {},
            "received_at": received_at,
        }
    )
    return CallIngested(
        event_id=uuid.uuid4(),
        occurred_at=received_at,
        partner_id=partner.partner_id,
        tenant_id=tenancy.tenant_id,
        subtenant_id=tenancy.subtenant_id,
        call_id=item.call.id,
        source=SOURCE,
        payload=payload,
    )


async def ingest_batch(
    repo: Repository,
    partner: Partner,
    tenancy: Tenancy,
    batch: BatchIn,
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
    for item in batch.data:
        first.setdefault(item.call.id, item)
    new_calls = []
    for call_id, item in first.items():
        event = build_event(item, partner, tenancy, received_at)
        new_calls.append(NewCall(call_id, event.event_id, event.model_dump_json()))
    accepted = await repo.record_calls(
        partner.partner_id,
        tenant_id=tenancy.tenant_id,
        subtenant_id=tenancy.subtenant_id,
        received_at=received_at,
        calls=new_calls,
        topic=topic,
    )
    outcomes = []
    for item in batch.data:
        call_id = item.call.id
        status = "accepted" if call_id in accepted else "duplicate"
        accepted.discard(call_id)  # a later repeat of the same id in this batch is a duplicate
        outcomes.append({"id": call_id, "status": status})
    return outcomes
