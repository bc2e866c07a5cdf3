"""HTTP transport of the public API: headers and body in, handler calls, the spec's JSON out.

Also the single place where errors become responses (``error_response``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Header, Request, Security
from fastapi.responses import Response
from fastapi.security import APIKeyHeader

from services.common.outbox import OutboxRelay
from services.gateway import handlers
from services.gateway.config import GatewaySettings
from services.gateway.errors import GatewayError, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from services.gateway.models import ErrorResponse, SuccessResponse, ValidationErrorResponse
from services.gateway.repository import GatewayRepository

INGEST_PATH = "/api/v1/partner/ingest/batch-call"


@dataclass
class GatewayContext:
    """Everything a request needs; built by the app's lifespan, stored on ``app.state``."""

    settings: GatewaySettings
    repo: GatewayRepository
    credentials: handlers.CredentialCache
    relay: OutboxRelay
    ingest_topic: str


def json_response(body: dict[str, Any], status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


def error_response(exc: GatewayError) -> Response:
    """The spec's error shape for every expected failure."""
    body: dict[str, Any] = {"success": False, "message": exc.message}
    if isinstance(exc, ValidationFailed):
        body["errors"] = exc.errors
    return json_response(body, exc.status, exc.headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes:
    from Content-Length before reading anything, else by counting the streamed chunks."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _example(message: str, **extra: Any) -> dict[str, Any]:
    return {"application/json": {"example": {"success": False, "message": message, **extra}}}


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": SuccessResponse,
        "description": "Every call is durably recorded and will be processed.",
        "content": {
            "application/json": {
                "example": {
                    "success": True,
                    "data": {
                        "calls": [{"id": "call123", "status": "accepted"}, {"id": "call122", "status": "duplicate"}]
                    },
                }
            }
        },
    },
    400: {
        "model": ErrorResponse,
        "description": "Missing tenant or subtenant header, or malformed JSON.",
        "content": _example("Tenant ID is required"),
    },
    403: {"model": ErrorResponse, "description": "Unknown API key or wrong secret.", "content": _example("Forbidden")},
    413: {
        "model": ErrorResponse,
        "description": "Body larger than 5 MB.",
        "content": _example("Request payload exceeds the 5MB limit"),
    },
    415: {
        "model": ErrorResponse,
        "description": "Body is not application/json.",
        "content": _example("Content-Type must be application/json"),
    },
    422: {
        "model": ValidationErrorResponse,
        "description": "Every validation error of the request.",
        "content": _example(
            "Validation failed", errors=[{"field": "data[0].call.id", "message": "id should not be empty"}]
        ),
    },
    429: {
        "model": ErrorResponse,
        "description": "Partner's rate limit exceeded; see Retry-After.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
        "content": _example("Rate limit exceeded. Try again in 60 seconds."),
    },
    500: {"model": ErrorResponse, "description": "Unexpected failure.", "content": _example("Internal server error")},
}

router = APIRouter()
_api_key = APIKeyHeader(name="x-api-key", auto_error=False, scheme_name="ApiKey")
_api_secret = APIKeyHeader(name="x-api-secret", auto_error=False, scheme_name="ApiSecret")


@router.post(
    INGEST_PATH,
    summary="Ingest a batch of call recordings",
    description=(
        "Accepts 1 to 50 calls. Every call is recorded durably before `success: true` is "
        "returned, then fetched, transcribed and analysed asynchronously. Idempotent: a call id "
        "already received for your partner account answers `duplicate` and is not processed again."
    ),
    tags=["ingestion"],
    responses=_RESPONSES,
    response_class=Response,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchIn"}}},
        }
    },
)
async def ingest_batch_call(
    request: Request,
    x_api_key: str | None = Security(_api_key),
    x_api_secret: str | None = Security(_api_secret),
    x_tenant_id: str | None = Header(None, description="Your customer's tenant id."),
    x_sub_tenant_id: str | None = Header(None, description="Your customer's subtenant id."),
) -> Response:
    ctx: GatewayContext = request.app.state.gateway
    settings = ctx.settings
    try:
        partner = await handlers.authenticate(ctx.credentials, x_api_key, x_api_secret)
        request.state.partner_id = partner.partner_id
        await handlers.enforce_rate_limit(ctx.repo, partner, settings.default_rate_limit_per_minute)
        tenancy = handlers.require_tenancy(x_tenant_id, x_sub_tenant_id)
        if not _is_json(request.headers.get("content-type")):
            raise UnsupportedMediaType()
        items = handlers.parse_batch(await read_body(request, settings.max_body_bytes))
        outcomes = await handlers.ingest_batch(
            ctx.repo,
            partner,
            tenancy,
            items,
            topic=ctx.ingest_topic,
            received_at=datetime.now(UTC),
        )
    except GatewayError as exc:
        return error_response(exc)
    if any(o["status"] == "accepted" for o in outcomes):
        ctx.relay.wake()
    return json_response({"success": True, "data": {"calls": outcomes}})
