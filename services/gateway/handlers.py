"""The gateway's business logic as plain async functions.

They take their dependencies (the repository, settings values, the clock) as arguments, know
nothing of HTTP or Kafka, and raise the typed errors of ``services.gateway.errors``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from schemas.analysis import DEFAULT_CONFIG, AnalysisConfig, ConfigSnapshot
from schemas.events import encode_call_ingested, new_event_ids
from services.common.cache import TtlCache
from services.gateway.errors import (
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
    ITEM_FIELDS,
    MAX_TEXT,
    AnalysisConfigIn,
    CallItemIn,
    field_errors,
)
from services.gateway.repository import ConfigLevel, Credential, NewCall
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

    def __init__(self, lookup: CredentialLookup, ttl_s: float) -> None:
        self._lookup = lookup
        self._cache: TtlCache[str, Credential] = TtlCache(ttl_s)

    async def find_credential(self, api_key: str) -> Credential | None:
        return await self._cache.get(api_key, lambda: self._lookup.find_credential(api_key))


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
    """
    first: dict[str, CallItemIn] = {}
    for item in items:
        first.setdefault(item["call"]["id"], item)
    event_ids = new_event_ids(len(first))
    new_calls = [
        NewCall(
            call_id,
            encode_event(
                item, partner, tenancy, received_at=received_at, event_id=event_id, analysis_config=analysis_config
            ),
        )
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


# ---------------------------------------------------------------------------------------------
# Analysis configuration
# ---------------------------------------------------------------------------------------------


class ConfigRepository(Protocol):
    async def config_levels(self, partner_id: str, tenant_id: str, subtenant_id: str) -> dict[str, ConfigLevel]: ...
    async def save_config(self, partner_id: str, tenant_id: str, subtenant_id: str, config: dict[str, Any]) -> int: ...


_FIELDS = ("labels", "rubric", "channels")


def effective_snapshot(levels: dict[str, ConfigLevel]) -> ConfigSnapshot:
    """Each field from the most specific level that sets it: subtenant, tenant, defaults."""
    merged: dict[str, Any] = DEFAULT_CONFIG.model_dump(mode="json")
    source = "default"
    for level in ("tenant", "subtenant"):
        document = levels[level].config if level in levels else {}
        for name in _FIELDS:
            if document.get(name) is not None:
                merged[name] = document[name]
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
        return CONFIG.validate_json(body)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise MalformedBody() from None
        raise ValidationFailed(field_errors(exc)) from None


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
    await repo.save_config(
        partner.partner_id, tenancy.tenant_id, subtenant, document.model_dump(mode="json", exclude_none=True)
    )
    snapshots.invalidate(partner, tenancy)
    return await describe_config(repo, partner, tenancy)
