"""HTTP transport of the public API: headers and body in, handler calls, the spec's JSON out.

Also the single place where errors become responses (``error_response``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response

from services.common import metrics
from services.gateway import handlers
from services.gateway.deps import (
    AdmittedPartner,
    ApiKeyUsed,
    ConfigBody,
    Context,
    ErasureBody,
    IngestBody,
    ReaderTenancy,
    WriterTenancy,
)
from services.gateway.errors import GatewayError, ValidationFailed
from services.gateway.models import ErrorResponse, SuccessResponse, ValidationErrorResponse

INGEST_PATH = "/api/v1/partner/ingest/batch-call"
CONFIG_PATH = "/api/v1/partner/analysis-config"
CALLS_PATH = "/api/v1/partner/calls"
ERASURES_PATH = "/api/v1/partner/erasures"


def json_response(body: dict[str, Any], status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


def error_response(exc: GatewayError) -> Response:
    """The spec's error shape for every expected failure (the app's exception handler)."""
    body: dict[str, Any] = {"success": False, "message": exc.message}
    if isinstance(exc, ValidationFailed):
        body["errors"] = exc.errors
    return json_response(body, exc.status, exc.headers)


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
    408: {
        "model": ErrorResponse,
        "description": "The body stopped arriving (10 s without a byte, or 60 s in all); the connection is closed.",
        "content": _example("Request body not received in time"),
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
    ctx: Context, partner: AdmittedPartner, tenancy: WriterTenancy, body: IngestBody
) -> Response:
    outcomes = await handlers.ingest_batch(
        ctx.repo,
        partner,
        tenancy,
        handlers.parse_batch(body),
        topic=ctx.ingest_topic,
        received_at=datetime.now(UTC),
        analysis_config=await ctx.snapshots.get(partner, tenancy),
    )
    accepted = sum(o["status"] == "accepted" for o in outcomes)
    metrics.INGEST_CALLS.labels("accepted").inc(accepted)
    metrics.INGEST_CALLS.labels("duplicate").inc(len(outcomes) - accepted)
    if accepted:
        ctx.relay.wake()
    return json_response({"success": True, "data": {"calls": outcomes}})


_CONFIG_EXAMPLE = {
    "success": True,
    "data": {
        "config_id": "cfg_3f9a0c1d2e4b5a67",
        "source": "tenant",
        "effective": {
            "labels": ["Needs", "Objection", "Objection Handling", "Budget"],
            "rubric": [
                {
                    "parameter_name": "Setting Context",
                    "description": "State the purpose and agenda of the call.",
                    "max_score": 10,
                    "is_fatal": False,
                },
                {
                    "parameter_name": "Compliance Disclosure",
                    "description": "Say that the call is recorded.",
                    "max_score": 10,
                    "is_fatal": True,
                },
            ],
            "channels": {"left": "agent", "right": "customer"},
        },
        "tenant": {"version": 3, "updated_at": "2026-11-23T10:00:00Z", "config": {"labels": ["..."]}},
        "subtenant": None,
    },
}
_CONFIG_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The effective configuration for this tenant and subtenant, and the levels it comes from.",
        "content": {"application/json": {"example": _CONFIG_EXAMPLE}},
    },
    **{code: _RESPONSES[code] for code in (400, 403, 408, 415, 422, 429, 500)},
    413: {
        "model": ErrorResponse,
        "description": "Body larger than 256 KB.",
        "content": _example("Request payload exceeds the 256KB limit"),
    },
}


@router.get(
    CONFIG_PATH,
    summary="The analysis configuration in effect",
    description=(
        "Qualification labels, quality rubric and stereo channel map applied to this tenant's and "
        "subtenant's calls: each field comes from the subtenant level if it sets it, else from the "
        "tenant level, else from the defaults. Every call's events carry the configuration it was "
        "analysed with."
    ),
    tags=["analysis configuration"],
    responses=_CONFIG_RESPONSES,
    response_class=Response,
)
async def get_analysis_config(ctx: Context, partner: AdmittedPartner, tenancy: WriterTenancy) -> Response:
    view = await handlers.describe_config(ctx.repo, partner, tenancy)
    return json_response({"success": True, "data": view})


@router.put(
    CONFIG_PATH,
    summary="Set the analysis configuration of the tenant or the subtenant",
    description=(
        "Stores a new version of one level: `scope=tenant` (every subtenant of the tenant in the "
        "headers) or `scope=subtenant` (the subtenant in the headers only). Fields left out or null "
        "are inherited; `{}` clears the level. Applies to calls ingested from then on."
    ),
    tags=["analysis configuration"],
    responses=_CONFIG_RESPONSES,
    response_class=Response,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AnalysisConfigIn"}}},
        }
    },
)
async def put_analysis_config(
    ctx: Context,
    partner: AdmittedPartner,
    tenancy: WriterTenancy,
    body: ConfigBody,
    scope: Annotated[str | None, Query(description="tenant or subtenant")] = None,
) -> Response:
    level = handlers.parse_scope(scope)
    document = handlers.parse_config(body)
    view = await handlers.save_config(ctx.repo, ctx.snapshots, partner, tenancy, scope=level, document=document)
    return json_response({"success": True, "data": view})


# ---------------------------------------------------------------------------------------------
# Status and results
# ---------------------------------------------------------------------------------------------


_TIMESTAMPS_EXAMPLE = {
    "received": "2026-11-23T10:00:00.120Z",
    "fetching": "2026-11-23T10:00:00.410Z",
    "fetched": "2026-11-23T10:00:01.950Z",
    "analyzing": "2026-11-23T10:00:02.010Z",
    "completed": "2026-11-23T10:00:19.300Z",
    "failed": None,
}
_CALL_EXAMPLE = {
    "success": True,
    "data": {
        "call_id": "call123",
        "status": "completed",
        "tenant_id": "tenant1",
        "subtenant_id": "subtenant1",
        "agent_id": "agent123",
        "timestamps": _TIMESTAMPS_EXAMPLE,
        "result": {
            "call_id": "call123",
            "intent": "INTERESTED",
            "intent_justification": "The customer asked for a demo next week (00:41).",
            "quality_score": 72.5,
            "summary": [{"chapter_name": "Introduction", "chapter_summary": "The agent set the agenda."}],
            "bant": {
                "needs": "- Webhook integration for call data.",
                "objection": "- Price per seat.",
                "concern_categories": "Pricing",
                "objection_handling": "- Offered an annual discount.",
            },
            "qualification": [{"label": "Needs", "answer": "Webhook integration for call data."}],
            "quality": [
                {
                    "justification": "The agent stated the purpose of the call.",
                    "suggestion": "Keep opening with the agenda.",
                    "parameter_name": "Setting Context",
                    "inference_score": 9,
                    "parameter_score": 10,
                    "is_fatal": False,
                }
            ],
            "transcript": [{"speaker": "agent", "start": 0.4, "end": 3.1, "text": "hello this is john"}],
            "engines": {
                "asr_engine": "pocketsphinx",
                "asr_model": "en-us",
                "asr_version": "5.0.4",
                "analysis_engine": "builtin",
                "analysis_model": "builtin",
                "analysis_version": "1",
            },
            "config_id": "cfg_3f9a0c1d2e4b5a67",
        },
        "error": None,
        "callback": {
            "url": "https://partner.example.com/callback",
            "delivery_id": "msg_2f1c9e0b7a4d4c1e",
            "kind": "result",
            "state": "delivered",
            "next_attempt_at": None,
            "attempts": [
                {
                    "delivery_id": "msg_2f1c9e0b7a4d4c1e",
                    "kind": "result",
                    "number": 1,
                    "started_at": "2026-11-23T10:00:19.500Z",
                    "status_code": 503,
                    "latency_ms": 84.2,
                    "error": "HTTP 503",
                },
                {
                    "delivery_id": "msg_2f1c9e0b7a4d4c1e",
                    "kind": "result",
                    "number": 2,
                    "started_at": "2026-11-23T10:00:21.600Z",
                    "status_code": 200,
                    "latency_ms": 35.0,
                    "error": None,
                },
            ],
        },
    },
}
_LIST_EXAMPLE = {
    "success": True,
    "data": {
        "calls": [
            {
                "call_id": "call124",
                "status": "failed",
                "tenant_id": "tenant1",
                "subtenant_id": "subtenant1",
                "agent_id": "agent123",
                "timestamps": {
                    **_TIMESTAMPS_EXAMPLE,
                    "analyzing": None,
                    "completed": None,
                    "fetched": None,
                    "failed": "2026-11-23T10:00:01.100Z",
                },
                "intent": None,
                "quality_score": None,
                "error": {"stage": "fetch", "code": "http_status", "message": "the recording host answered HTTP 404"},
                "callback_state": "delivered",
            },
            {
                "call_id": "call123",
                "status": "completed",
                "tenant_id": "tenant1",
                "subtenant_id": "subtenant1",
                "agent_id": "agent123",
                "timestamps": _TIMESTAMPS_EXAMPLE,
                "intent": "INTERESTED",
                "quality_score": 72.5,
                "error": None,
                "callback_state": "delivered",
            },
        ],
        "next_cursor": "WyIyMDI2LTExLTIzVDEwOjAwOjAwLjEyMDAwMCswMDowMCIsImNhbGwxMjMiXQ",
    },
}
_NOT_FOUND = {
    "model": ErrorResponse,
    "description": "No such call for your partner account, tenant and subtenant.",
    "content": _example("Call not found"),
}
_STATUS_400 = {
    "model": ErrorResponse,
    "description": "Missing x-tenant-id header (x-sub-tenant-id is optional here).",
    "content": _example("Tenant ID is required"),
}
_CALL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The call's status, stage timestamps, result (once completed), error (once failed) and "
        "callback deliveries with every attempt.",
        "content": {"application/json": {"example": _CALL_EXAMPLE}},
    },
    400: _STATUS_400,
    403: _RESPONSES[403],
    404: _NOT_FOUND,
    429: _RESPONSES[429],
    500: _RESPONSES[500],
}
_LIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "One page of calls, newest first, and the cursor of the next page (null on the last).",
        "content": {"application/json": {"example": _LIST_EXAMPLE}},
    },
    400: _STATUS_400,
    403: _RESPONSES[403],
    422: {
        "model": ValidationErrorResponse,
        "description": "Every invalid query parameter.",
        "content": _example(
            "Validation failed", errors=[{"field": "limit", "message": "limit must be between 1 and 200"}]
        ),
    },
    429: _RESPONSES[429],
    500: _RESPONSES[500],
}
_REDELIVER_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "The redelivery is requested; the notifier delivers the callback again (new attempts "
        "appear on the call).",
        "content": {
            "application/json": {
                "example": {
                    "success": True,
                    "data": {
                        "call_id": "call123",
                        "delivery_id": "msg_2f1c9e0b7a4d4c1e",
                        "requested_at": "2026-11-23T11:00:00Z",
                        "command_id": "6c0f8e52-3f0e-4a8e-9d0c-1f6b8f7f2a10",
                    },
                }
            }
        },
    },
    400: _STATUS_400,
    403: _RESPONSES[403],
    404: _NOT_FOUND,
    409: {
        "model": ErrorResponse,
        "description": "The call has no callback_url, or its callback is not delivered or failed yet.",
        "content": {
            "application/json": {
                "examples": {
                    "no_callback_url": {"value": {"success": False, "message": "Call has no callback_url"}},
                    "not_final": {
                        "value": {
                            "success": False,
                            "message": "Callback can be redelivered only once its delivery is delivered or failed",
                        }
                    },
                }
            }
        },
    },
    429: _RESPONSES[429],
    500: _RESPONSES[500],
}


@router.get(
    CALLS_PATH,
    summary="List calls",
    description=(
        "Your calls in the tenant of `x-tenant-id` (and only the subtenant of `x-sub-tenant-id` when sent), "
        "newest first by received time, then call id. Filters: `status` (one or a comma-separated list of "
        "received, fetching, fetched, analyzing, completed, failed), `subtenant`, `agent` (agent id), `from` "
        "(inclusive) and `to` (exclusive) on the received time (ISO 8601 UTC), `intent`. Pages of `limit` "
        "calls (default 50, at most 200); pass `next_cursor` as `cursor` for the next page. The list is built "
        "from the pipeline's events: a call just accepted appears within moments (GET by id answers at once)."
    ),
    tags=["status"],
    responses=_LIST_RESPONSES,
    response_class=Response,
)
async def list_calls(
    ctx: Context,
    partner: AdmittedPartner,
    scope: ReaderTenancy,
    *,
    status: Annotated[
        str | None, Query(description="received, fetching, fetched, analyzing, completed, failed")
    ] = None,
    subtenant: Annotated[str | None, Query(description="Only this subtenant's calls")] = None,
    agent: Annotated[str | None, Query(description="Only this agent's calls (agent.id)")] = None,
    received_from: Annotated[str | None, Query(alias="from", description="Received at or after (ISO 8601 UTC)")] = None,
    received_to: Annotated[str | None, Query(alias="to", description="Received before (ISO 8601 UTC)")] = None,
    intent: Annotated[str | None, Query(description="INTERESTED, NOT_INTERESTED, FOLLOW_UP, ...")] = None,
    limit: Annotated[str | None, Query(description="Page size, 1 to 200 (default 50)")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> Response:
    filters, size = handlers.parse_list_query(
        scope,
        status=status,
        subtenant=subtenant,
        agent=agent,
        received_from=received_from,
        received_to=received_to,
        intent=intent,
        limit=limit,
        cursor=cursor,
    )
    page = await handlers.list_calls(ctx.repo, partner, filters, size)
    return json_response({"success": True, "data": page})


@router.get(
    CALLS_PATH + "/{call_id:path}",
    summary="A call's status and results",
    description=(
        "Status (received, fetching, fetched, analyzing, completed, failed), the time each stage was reached, "
        "the result once completed (the callback's analysis fields plus `transcript`, `engines` and "
        "`config_id`), the error `{stage, code, message}` once failed, and the callback: its latest delivery's "
        "state and every attempt. A call of another partner, tenant or subtenant answers 404 like an unknown id."
    ),
    tags=["status"],
    responses=_CALL_RESPONSES,
    response_class=Response,
)
async def get_call(ctx: Context, partner: AdmittedPartner, scope: ReaderTenancy, call_id: str) -> Response:
    view = await handlers.describe_call(ctx.repo, partner, scope, call_id)
    return json_response({"success": True, "data": view})


@router.post(
    CALLS_PATH + "/{call_id:path}/callback/redeliver",
    summary="Deliver a call's callback again",
    description=(
        "Once the call's callback is delivered or has failed, asks the notifier to deliver it again to the "
        "call's callback_url (recorded durably before answering 202). 409 while a delivery is still pending "
        "or retrying, and for a call without callback_url."
    ),
    tags=["status"],
    status_code=202,
    responses=_REDELIVER_RESPONSES,
    response_class=Response,
)
async def redeliver_callback(
    ctx: Context, partner: AdmittedPartner, scope: ReaderTenancy, api_key: ApiKeyUsed, call_id: str
) -> Response:
    requested = await handlers.request_redelivery(
        ctx.repo,
        partner,
        scope,
        call_id,
        topic=ctx.commands_topic,
        requested_by=handlers.requester(partner, api_key),
        now=datetime.now(UTC),
        guard_s=ctx.settings.redelivery_guard_s,
    )
    ctx.relay.wake()
    return json_response({"success": True, "data": requested}, 202)


# ---------------------------------------------------------------------------------------------
# Erasure (data protection)
# ---------------------------------------------------------------------------------------------

_ACCEPTED_EXAMPLE = {
    "success": True,
    "erasure_id": "5b8e2f0a-6c1d-4e7f-9a3b-2d4c6e8f0a1b",
    "status": "pending",
    "calls": 1,
}
_ERASURE_NOT_FOUND = {
    "model": ErrorResponse,
    "description": "No such erasure for your partner account, tenant (and subtenant, when sent).",
    "content": _example("Erasure not found"),
}
_ERASE_CALL_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "The call is erased from the status API, the list and the dashboard at once; every "
        "service removes what it holds of it (see GET /api/v1/partner/erasures/{erasure_id}). Erasing an "
        "erased call answers the erasure that erased it.",
        "content": {"application/json": {"example": _ACCEPTED_EXAMPLE}},
    },
    400: _STATUS_400,
    403: _RESPONSES[403],
    404: _NOT_FOUND,
    429: _RESPONSES[429],
    500: _RESPONSES[500],
}
_ERASE_CUSTOMER_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Every call of the customer is erased (`calls` of them; with 0 the erasure is "
        "`completed` at once).",
        "content": {"application/json": {"example": {**_ACCEPTED_EXAMPLE, "calls": 3}}},
    },
    400: {
        "model": ErrorResponse,
        "description": "Missing x-tenant-id header, or malformed JSON.",
        "content": _example("Tenant ID is required"),
    },
    403: _RESPONSES[403],
    413: _CONFIG_RESPONSES[413],
    415: _RESPONSES[415],
    422: {
        "model": ValidationErrorResponse,
        "description": "Neither customer_id nor contact_number, or an invalid one.",
        "content": _example(
            "Validation failed",
            errors=[
                {"field": "customer_id", "message": "customer_id should not be empty (or give contact_number)"},
                {"field": "contact_number", "message": "contact_number should not be empty (or give customer_id)"},
            ],
        ),
    },
    429: _RESPONSES[429],
    500: _RESPONSES[500],
}
_ERASURE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The erasure: its scope, status, the calls it covers and how many of them each service "
        "has confirmed removing. `completed` once every service confirmed every call.",
        "content": {
            "application/json": {
                "example": {
                    "success": True,
                    "erasure": {
                        "erasure_id": "5b8e2f0a-6c1d-4e7f-9a3b-2d4c6e8f0a1b",
                        "scope": "customer",
                        "status": "pending",
                        "requested_at": "2026-11-23T11:00:00Z",
                        "completed_at": None,
                        "calls": 3,
                        "services": {
                            "gateway": {"confirmed": 3, "of": 3},
                            "fetcher": {"confirmed": 3, "of": 3},
                            "analyzer": {"confirmed": 2, "of": 3},
                            "notifier": {"confirmed": 3, "of": 3},
                        },
                    },
                }
            }
        },
    },
    400: _STATUS_400,
    403: _RESPONSES[403],
    404: _ERASURE_NOT_FOUND,
    429: _RESPONSES[429],
    500: _RESPONSES[500],
}


@router.delete(
    CALLS_PATH + "/{call_id:path}",
    summary="Erase a call",
    description=(
        "Erases the call and everything every service holds of it: recording, transcript, results, callback "
        "bodies and delivery log, dashboard row. From the answer on, the call is gone from the status API "
        "(404), the list and the dashboard; the other services confirm asynchronously (follow the erasure). "
        "The call id stays taken: submitting it again answers `duplicate`. Same headers as GET; a call "
        "outside your tenant (and subtenant, when sent) answers 404. Idempotent."
    ),
    tags=["data protection"],
    status_code=202,
    responses=_ERASE_CALL_RESPONSES,
    response_class=Response,
)
async def erase_call(
    ctx: Context, partner: AdmittedPartner, scope: ReaderTenancy, api_key: ApiKeyUsed, call_id: str
) -> Response:
    row = await handlers.erase_call(
        ctx.repo,
        partner,
        scope,
        call_id,
        topic=ctx.erased_topic,
        requested_by=handlers.requester(partner, api_key),
        now=datetime.now(UTC),
    )
    ctx.relay.wake()
    return json_response(handlers.erasure_accepted(row), 202)


@router.post(
    ERASURES_PATH,
    summary="Erase a customer's calls",
    description=(
        "A data subject's erasure: every call in the tenant of `x-tenant-id` (only the subtenant of "
        "`x-sub-tenant-id` when sent) whose `customer.id` equals `customer_id` OR whose `call.contact_number` "
        "has the digits of `contact_number` is erased, as DELETE erases one call. Give at least one; with both, "
        "calls matching either are erased, so none of the person's calls is missed. Calls are found by salted "
        "hashes kept at ingestion: the audit record holds no customer id or number in clear. Calls ingested "
        "after the request are not covered."
    ),
    tags=["data protection"],
    status_code=202,
    responses=_ERASE_CUSTOMER_RESPONSES,
    response_class=Response,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErasureIn"}}},
        }
    },
)
async def erase_customer(
    ctx: Context, partner: AdmittedPartner, scope: ReaderTenancy, api_key: ApiKeyUsed, body: ErasureBody
) -> Response:
    row = await handlers.erase_customer(
        ctx.repo,
        partner,
        scope,
        handlers.parse_erasure(body),
        topic=ctx.erased_topic,
        requested_by=handlers.requester(partner, api_key),
        now=datetime.now(UTC),
    )
    ctx.relay.wake()
    return json_response(handlers.erasure_accepted(row), 202)


@router.get(
    ERASURES_PATH + "/{erasure_id}",
    summary="An erasure's progress",
    description=(
        "Whether every service has confirmed removing every call of the erasure (`completed`) or not yet "
        "(`pending`), with each service's count."
    ),
    tags=["data protection"],
    responses=_ERASURE_RESPONSES,
    response_class=Response,
)
async def get_erasure(ctx: Context, partner: AdmittedPartner, scope: ReaderTenancy, erasure_id: str) -> Response:
    view = await handlers.describe_erasure(ctx.repo, partner, scope, erasure_id)
    return json_response({"success": True, "erasure": view})
