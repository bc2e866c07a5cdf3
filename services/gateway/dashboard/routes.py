"""HTTP transport of the dashboard: the partner's token API, the embedding entry point, the app
shell and its assets, and the JSON data of each page. Thin: every decision is in ``handlers``.

Every dashboard response carries its security headers: a CSP with no inline script and the
partner's allowed origins as ``frame-ancestors``, ``nosniff``, ``no-store``.
"""

from __future__ import annotations

import contextlib
import csv
import html
import io
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.background import BackgroundTask

from services.common.blobs import BlobError
from services.common.errors import ConfigurationError
from services.gateway import handlers as gateway_handlers
from services.gateway.api import error_response, json_response
from services.gateway.dashboard import handlers
from services.gateway.dashboard.errors import RecordingNotFound, SessionMissing
from services.gateway.dashboard.repository import Grant, Session
from services.gateway.dashboard.runtime import DashboardContext
from services.gateway.deps import AdmittedPartner, WriterTenancy
from services.gateway.errors import GatewayError, ValidationFailed
from services.gateway.models import ErrorResponse

log = logging.getLogger("services.gateway.dashboard")

TOKEN_PATH = "/api/v1/partner/dashboard/auth/token"  # noqa: S105 - a path
REVOKE_PATH = "/api/v1/partner/dashboard/sessions/revoke"
COOKIE = "callpipe_dashboard"
STATIC_DIR = Path(__file__).parent / "static"
_STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
_API_CSP = "default-src 'none'; frame-ancestors 'none'"
_BASE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
}

router = APIRouter()


def _dash(request: Request) -> DashboardContext:
    ctx: DashboardContext = request.app.state.dashboard
    return ctx


def _own_origin(request: Request, ctx: DashboardContext) -> str:
    base = ctx.settings.dashboard_public_url or str(request.base_url)
    return handlers.normalize_origin(handlers._origin_of(base)) or ""


def _embedding(request: Request, ctx: DashboardContext) -> handlers.Embedding:
    how = handlers.embedding(request.headers.get("sec-fetch-dest"), request.headers.get("referer"))
    if how.parent_origin is not None and how.parent_origin == _own_origin(request, ctx):
        # The dashboard's own page as referrer says nothing about who frames it.
        return handlers.Embedding(how.framed, None)
    return how


def _headers(csp: str = _API_CSP, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {**_BASE_HEADERS, "Content-Security-Policy": csp, **(extra or {})}


def _error(exc: GatewayError) -> Response:
    response = error_response(exc)
    response.headers.update(_headers())
    return response


def _cookie(session_id: str, expires_at: datetime, now: datetime) -> str:
    """The session cookie: sent in the partner's iframe (a third-party context) only because it is
    ``SameSite=None``, which browsers accept only with ``Secure``; ``Partitioned`` keys it to the
    embedding site (CHIPS), so it works where third-party cookies are blocked and cannot be used
    by another embedder. ``HttpOnly``: no script reads it. It ends with the token's lifetime."""
    max_age = max(int((expires_at - now).total_seconds()), 0)
    return f"{COOKIE}={session_id}; Path=/dashboard; Max-Age={max_age}; HttpOnly; Secure; SameSite=None; Partitioned"


def message_page(title: str, text: str, status: int, frame_origins: list[str]) -> Response:
    """A plain page explaining why there is no dashboard here (our own fixed strings)."""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{html.escape(title)}</title><link rel="icon" href="data:,">'
        '<link rel="stylesheet" href="/dashboard/static/style.css"></head>'
        f'<body class="message"><main><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></main></body></html>'
    )
    ancestors = handlers.frame_ancestors(frame_origins)
    csp = f"default-src 'none'; style-src 'self'; img-src data:; base-uri 'none'; frame-ancestors {ancestors}"
    return Response(body, status_code=status, media_type="text/html", headers=_headers(csp))


def _expired_page(frame_origins: list[str]) -> Response:
    return message_page(
        "This dashboard link is no longer valid",
        "Dashboard links work once and only for a few minutes, and a session ends after 24 hours. "
        "Reload the page in your application to open the dashboard again.",
        401,
        frame_origins,
    )


def _refused_page(parent: str) -> Response:
    return message_page(
        "The dashboard cannot be shown here",
        f"This site ({parent}) is not allowed to embed this dashboard. "
        "Ask your account manager to add it to the dashboard's allowed origins.",
        403,
        [parent],
    )


async def _session(request: Request, ctx: DashboardContext) -> Session | None:
    return await handlers.current_session(ctx.repo, request.cookies.get(COOKIE))


async def _require(request: Request, ctx: DashboardContext) -> Session:
    session = await _session(request, ctx)
    if session is None:
        raise SessionMissing()
    request.state.partner_id = session.grant.partner_id
    return session


# -------------------------------------------------------------------------------------------
# The partner's API
# -------------------------------------------------------------------------------------------

_TOKEN_EXAMPLE = {
    "success": True,
    "data": {
        "token": "dt_4m3Vd1Xb2...",
        "url": "https://callpipe.example.com/dashboard?token=dt_4m3Vd1Xb2...",
        "redeem_by": "2026-11-23T10:05:00Z",
        "expires_at": "2026-11-24T10:00:00Z",
        "tenant_id": "tenant1",
        "subtenant_id": "subtenant1",
        "agent_id": None,
        "read_only": False,
    },
}


@router.get(
    TOKEN_PATH,
    summary="A dashboard token for this tenant and subtenant",
    description=(
        "A single-use token scoped to the tenant and subtenant in the headers (and to one agent with "
        "`agent_id`; without the redeliver button with `read_only=true`). Put `url` in an iframe on one of "
        "your allowed origins within `redeem_by` (5 minutes): the dashboard exchanges the token for a "
        "session that lasts until `expires_at` (24 hours) and the token stops working. Same headers, rate "
        "limit and errors as ingestion."
    ),
    tags=["dashboard"],
    response_class=Response,
    responses={
        200: {
            "description": "The token and the URL to embed.",
            "content": {"application/json": {"example": _TOKEN_EXAMPLE}},
        },
        400: {"model": ErrorResponse, "description": "Missing tenant or subtenant header."},
        403: {"model": ErrorResponse, "description": "Unknown API key or wrong secret."},
        422: {"model": ErrorResponse, "description": "Invalid agent_id or read_only."},
        429: {"model": ErrorResponse, "description": "Partner's rate limit exceeded; see Retry-After."},
        500: {"model": ErrorResponse, "description": "Unexpected failure."},
    },
)
async def dashboard_token(
    request: Request,
    partner: AdmittedPartner,
    tenancy: WriterTenancy,
    agent_id: Annotated[str | None, Query(description="Show only this agent's calls (agent.id)")] = None,
    read_only: Annotated[str | None, Query(description="true: no state-changing actions (redeliver)")] = None,
) -> Response:
    ctx = _dash(request)
    agent, flag = handlers.parse_token_options(agent_id, read_only)
    grant = Grant(partner.partner_id, tenancy.tenant_id, tenancy.subtenant_id, agent, flag)
    data = await handlers.issue_token(
        ctx.repo,
        grant,
        now=datetime.now(UTC),
        redeem_s=ctx.settings.dashboard_token_redeem_s,
        session_ttl_s=ctx.settings.dashboard_session_ttl_s,
        base_url=ctx.settings.dashboard_public_url or str(request.base_url),
    )
    return json_response({"success": True, "data": data}, headers={"Cache-Control": "no-store"})


@router.post(
    REVOKE_PATH,
    summary="End every dashboard session of your account",
    description="Signs out every open dashboard and voids every token not exchanged yet (all tenants).",
    tags=["dashboard"],
    response_class=Response,
)
async def revoke_sessions(request: Request, partner: AdmittedPartner) -> Response:
    sessions, tokens = await _dash(request).repo.revoke_sessions(partner.partner_id)
    return json_response({"success": True, "data": {"sessions_ended": sessions, "tokens_voided": tokens}})


# -------------------------------------------------------------------------------------------
# Entry point, app shell, assets
# -------------------------------------------------------------------------------------------


@router.get("/dashboard", include_in_schema=False)
async def enter(request: Request, token: str | None = None) -> Response:
    """Exchange the token for a session (once) and go to the app, whose URL holds no token."""
    ctx = _dash(request)
    how = _embedding(request, ctx)
    parent = [how.parent_origin] if how.parent_origin else []
    if token:
        partner_id = await ctx.repo.token_partner(handlers.digest(token))
        origins = await ctx.repo.allowed_origins(partner_id) if partner_id else []
        if partner_id and handlers.embedding_refused(how, origins):
            return _refused_page(how.parent_origin or "")
        exchanged = await handlers.redeem(ctx.repo, token, how=how, current_session=request.cookies.get(COOKIE))
        if exchanged is None:
            return _expired_page(origins or parent)
        redeemed, session_id = exchanged
        headers = _headers(handlers.content_security_policy(origins), {"Referrer-Policy": "no-referrer"})
        response = RedirectResponse("/dashboard/app#/overview", status_code=303, headers=headers)
        if session_id is not None:
            response.headers.append("set-cookie", _cookie(session_id, redeemed.expires_at, datetime.now(UTC)))
        return response
    session = await _session(request, ctx)
    if session is None:
        return _expired_page(parent)
    origins = await ctx.repo.allowed_origins(session.grant.partner_id)
    return RedirectResponse(
        "/dashboard/app#/overview", status_code=303, headers=_headers(handlers.content_security_policy(origins))
    )


@router.get("/dashboard/app", include_in_schema=False)
async def app_shell(request: Request) -> Response:
    ctx = _dash(request)
    how = _embedding(request, ctx)
    session = await _session(request, ctx)
    if session is None:
        return _expired_page([how.parent_origin] if how.parent_origin else [])
    origins = await ctx.repo.allowed_origins(session.grant.partner_id)
    if handlers.embedding_refused(how, origins):
        return _refused_page(how.parent_origin or "")
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers=_headers(handlers.content_security_policy(origins)),
    )


@router.get("/dashboard/static/{name}", include_in_schema=False)
async def static_file(request: Request, name: str) -> Response:
    ctx = _dash(request)
    if name in _STATIC:
        path, media = STATIC_DIR / name, _STATIC[name]
    elif name == "chart.js" and ctx.chart_js is not None:
        path, media = ctx.chart_js, "text/javascript; charset=utf-8"
    else:
        return Response(status_code=404, headers=_headers())
    return FileResponse(path, media_type=media, headers={**_headers(), "Cache-Control": "no-cache"})


# -------------------------------------------------------------------------------------------
# Page data
# -------------------------------------------------------------------------------------------


def _query(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items()}


@router.get("/dashboard/api/session", include_in_schema=False)
async def session_info(request: Request) -> Response:
    ctx = _dash(request)
    try:
        session = await _require(request, ctx)
        data = await handlers.session_view(ctx.repo, session)
    except GatewayError as exc:
        return _error(exc)
    return json_response({"success": True, "data": data}, headers=_headers())


@router.get("/dashboard/api/overview", include_in_schema=False)
async def overview(request: Request) -> Response:
    ctx = _dash(request)
    try:
        session = await _require(request, ctx)
        filters = handlers.parse_filters(_query(request), handlers.today_utc())
        data = await handlers.overview(ctx.repo, handlers.scope_of(session.grant), filters)
    except GatewayError as exc:
        return _error(exc)
    return json_response({"success": True, "data": data}, headers=_headers())


@router.get("/dashboard/api/agents", include_in_schema=False)
async def agents(request: Request) -> Response:
    ctx = _dash(request)
    try:
        session = await _require(request, ctx)
        filters = handlers.parse_filters(_query(request), handlers.today_utc())
        data = await handlers.agents(ctx.repo, handlers.scope_of(session.grant), filters)
    except GatewayError as exc:
        return _error(exc)
    return json_response({"success": True, "data": data}, headers=_headers())


def _list_query(request: Request) -> tuple[Any, dict[str, Any]]:
    query = _query(request)
    errors: list[dict[str, str]] = []
    filters = handlers.parse_filters(query, handlers.today_utc(), errors)
    options = handlers.parse_list_options(query, errors)
    if errors:
        raise ValidationFailed(errors)
    return filters, options


@router.get("/dashboard/api/calls", include_in_schema=False)
async def calls(request: Request) -> Response:
    ctx = _dash(request)
    try:
        session = await _require(request, ctx)
        filters, options = _list_query(request)
        data = await handlers.calls(ctx.repo, handlers.scope_of(session.grant), filters, options)
    except GatewayError as exc:
        return _error(exc)
    return json_response({"success": True, "data": data}, headers=_headers())


@router.get("/dashboard/api/export.csv", include_in_schema=False)
async def export_csv(request: Request) -> Response:
    """The filtered rows of the Calls table as CSV (newest first, at most the configured cap)."""
    ctx = _dash(request)
    try:
        session = await _require(request, ctx)
        filters, options = _list_query(request)
    except GatewayError as exc:
        return _error(exc)
    scope = handlers.scope_of(session.grant)
    # A download is a navigation of the dashboard's frame: the embedding origins must be allowed.
    origins = await ctx.repo.allowed_origins(session.grant.partner_id)

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(handlers.CSV_COLUMNS)
        async for chunk in ctx.repo.export_calls(
            scope, filters, search=options["search"], limit=ctx.settings.dashboard_export_max_rows
        ):
            for record in chunk:
                view = handlers._call_row(record)
                writer.writerow([handlers.csv_cell(view[c]) for c in handlers.CSV_COLUMNS])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    name = f"calls-{filters.date_from.isoformat()}-{filters.date_to.isoformat()}.csv"
    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers=_headers(
            f"default-src 'none'; frame-ancestors {handlers.frame_ancestors(origins)}",
            {"Content-Disposition": f'attachment; filename="{name}"'},
        ),
    )


@router.get("/dashboard/api/calls/{call_id:path}/audio", include_in_schema=False)
async def audio(request: Request, call_id: str) -> Response:
    """The original recording, through the session, with HTTP range requests (seeking)."""
    ctx = _dash(request)
    try:
        session = await _require(request, ctx)
        found = await ctx.repo.recording(handlers.scope_of(session.grant), call_id)
        if found is None:
            raise RecordingNotFound()
        uri, media_type = found
        stack = contextlib.AsyncExitStack()
        try:
            path = await stack.enter_async_context((await ctx.blobs()).open_local(uri))
        except (BlobError, OSError, ConfigurationError, ValidationError):
            # A missing blob, or a store this process cannot open: logged, answered 404.
            log.exception("recording not readable", extra={"partner_id": session.grant.partner_id})
            await stack.aclose()
            raise RecordingNotFound() from None
    except GatewayError as exc:
        return _error(exc)
    headers = _headers(extra={"Cache-Control": "private, no-store"})
    return FileResponse(path, media_type=media_type, headers=headers, background=BackgroundTask(stack.aclose))


@router.post("/dashboard/api/calls/{call_id:path}/redeliver", include_in_schema=False)
async def redeliver(request: Request, call_id: str) -> Response:
    """Redeliver the call's callback through the gateway's redelivery handler and outbox."""
    ctx = _dash(request)
    gateway = request.app.state.gateway
    try:
        session = await _require(request, ctx)
        handlers.check_state_change(
            session,
            csrf_header=request.headers.get("x-csrf-token"),
            origin=request.headers.get("origin"),
            own_origin=_own_origin(request, ctx),
        )
        grant = session.grant
        await handlers.call_detail(ctx.repo, handlers.scope_of(grant), call_id)  # 404 outside an agent scope
        requested = await gateway_handlers.request_redelivery(
            gateway.repo,
            gateway_handlers.Partner(grant.partner_id, None),
            gateway_handlers.ReadScope(grant.tenant_id, grant.subtenant_id),
            call_id,
            topic=gateway.commands_topic,
            requested_by=f"partner:{grant.partner_id} dashboard",
            now=datetime.now(UTC),
        )
    except GatewayError as exc:
        return _error(exc)
    gateway.relay.wake()
    return json_response({"success": True, "data": requested}, 202, headers=_headers())


@router.get("/dashboard/api/calls/{call_id:path}", include_in_schema=False)
async def call(request: Request, call_id: str) -> Response:
    ctx = _dash(request)
    try:
        session = await _require(request, ctx)
        data = await handlers.call_detail(ctx.repo, handlers.scope_of(session.grant), call_id)
    except GatewayError as exc:
        return _error(exc)
    return json_response({"success": True, "data": data}, headers=_headers())
