"""What every partner request needs, as typed ``Depends`` aliases: a route names what it takes
(``AdmittedPartner``, ``WriterTenancy``, ``ReaderTenancy``, a JSON body) and cannot forget a check.

The checks run in the contract's order because each alias depends on the one before it:
credentials (403), then the partner's rate limit (429), then tenancy (400), then the body's
content type (415), size (413) and arrival within the body timeouts (408). Failures are the
gateway's typed errors, answered by the app's one exception handler.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request, Security
from fastapi.security import APIKeyHeader

from services.common.outbox import OutboxRelay
from services.gateway import handlers
from services.gateway.config import GatewaySettings
from services.gateway.errors import PayloadTooLarge, RequestTimeout, UnsupportedMediaType
from services.gateway.repository import GatewayRepository


@dataclass
class GatewayContext:
    """Everything a request needs; built by the app's lifespan, stored on ``app.state``."""

    settings: GatewaySettings
    repo: GatewayRepository
    credentials: handlers.CredentialCache
    snapshots: handlers.ConfigSnapshots
    relay: OutboxRelay
    ingest_topic: str
    commands_topic: str = ""
    erased_topic: str = ""


def gateway_context(request: Request) -> GatewayContext:
    context: GatewayContext = request.app.state.gateway
    return context


Context = Annotated[GatewayContext, Depends(gateway_context)]

_api_key = APIKeyHeader(name="x-api-key", auto_error=False, scheme_name="ApiKey")
_api_secret = APIKeyHeader(name="x-api-secret", auto_error=False, scheme_name="ApiSecret")


async def admitted_partner(
    request: Request,
    ctx: Context,
    api_key: Annotated[str | None, Security(_api_key)] = None,
    api_secret: Annotated[str | None, Security(_api_secret)] = None,
) -> handlers.Partner:
    """The partner the credentials name (403 otherwise), within its rate limit (429 otherwise)."""
    partner = await handlers.authenticate(ctx.credentials, api_key, api_secret)
    request.state.partner_id = partner.partner_id
    await handlers.enforce_rate_limit(ctx.repo, partner, ctx.settings.default_rate_limit_per_minute)
    return partner


AdmittedPartner = Annotated[handlers.Partner, Depends(admitted_partner)]


def api_key_used(api_key: Annotated[str | None, Security(_api_key)] = None) -> str:
    """The key the request was made with (for audit records; never the secret)."""
    return api_key or ""


ApiKeyUsed = Annotated[str, Depends(api_key_used)]


def writer_tenancy(
    partner: AdmittedPartner,
    x_tenant_id: Annotated[str | None, Header(description="Your customer's tenant id.")] = None,
    x_sub_tenant_id: Annotated[str | None, Header(description="Your customer's subtenant id.")] = None,
) -> handlers.Tenancy:
    """Both tenancy headers required (400): what ingestion and configuration changes act on."""
    return handlers.require_tenancy(x_tenant_id, x_sub_tenant_id)


WriterTenancy = Annotated[handlers.Tenancy, Depends(writer_tenancy)]


def reader_tenancy(
    partner: AdmittedPartner,
    x_tenant_id: Annotated[str | None, Header(description="Your customer's tenant id.")] = None,
    x_sub_tenant_id: Annotated[
        str | None, Header(description="Optional: only this subtenant's calls are visible.")
    ] = None,
) -> handlers.ReadScope:
    """``x-tenant-id`` required (400), ``x-sub-tenant-id`` optional: what a read may see."""
    return handlers.reader_scope(x_tenant_id, x_sub_tenant_id)


ReaderTenancy = Annotated[handlers.ReadScope, Depends(reader_tenancy)]


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def read_body(request: Request, limit: int, *, idle_timeout_s: float, total_timeout_s: float) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes (from
    Content-Length before reading anything, else by counting the streamed chunks) and with 408
    when the client stops sending for ``idle_timeout_s`` or takes longer than ``total_timeout_s``
    in all (a client that declares more than it sends, say)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + total_timeout_s
    stream: AsyncIterator[bytes] = request.stream().__aiter__()
    while True:
        remaining = deadline - time.monotonic()
        try:
            chunk = await asyncio.wait_for(anext(stream), min(idle_timeout_s, max(remaining, 0.0)))
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise RequestTimeout() from None
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def json_body(
    limit: Callable[[GatewaySettings], int], tenancy: Callable[..., object]
) -> Callable[..., Awaitable[bytes]]:
    """A dependency reading a JSON body of at most ``limit(settings)`` bytes, after ``tenancy``
    (so a request without tenancy headers is told that first, as the contract orders it)."""

    # The tenancy dependency as a default value: an annotation naming the closure's variable
    # would be a string this module's globals cannot resolve (postponed annotations).
    async def body(request: Request, ctx: Context, _: object = Depends(tenancy)) -> bytes:
        if not _is_json(request.headers.get("content-type")):
            raise UnsupportedMediaType()
        settings = ctx.settings
        return await read_body(
            request,
            limit(settings),
            idle_timeout_s=settings.body_idle_timeout_s,
            total_timeout_s=settings.body_timeout_s,
        )

    return body


IngestBody = Annotated[bytes, Depends(json_body(lambda s: s.max_body_bytes, writer_tenancy))]
ConfigBody = Annotated[bytes, Depends(json_body(lambda s: s.max_config_bytes, writer_tenancy))]
ErasureBody = Annotated[bytes, Depends(json_body(lambda s: s.max_config_bytes, reader_tenancy))]
