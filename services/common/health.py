"""Liveness and readiness endpoints, the same for every service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

Check = Callable[[], Awaitable[bool]]
#: Something worth seeing that does not decide readiness (e.g. records the outbox set aside).
Detail = Callable[[], Awaitable[dict[str, Any]]]
CHECK_TIMEOUT_S = 3.0


async def _detail(describe: Detail) -> dict[str, Any] | None:
    try:
        return await asyncio.wait_for(describe(), CHECK_TIMEOUT_S)
    except Exception:
        return None


def health_router() -> APIRouter:
    """``/healthz``: the process answers. ``/readyz``: every dependency answers.

    The checks are the ``{name: async () -> bool}`` mapping the app's lifespan stores in
    ``app.state.readiness_checks`` once its clients exist; ``app.state.readiness_details``
    (``{name: async () -> dict}``) adds what an operator should see without deciding readiness.
    """
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: Kafka and PostgreSQL reachable")
    async def readyz(request: Request) -> JSONResponse:
        checks: Mapping[str, Check] = getattr(request.app.state, "readiness_checks", {})
        names = list(checks)

        async def run(name: str) -> bool:
            try:
                return await asyncio.wait_for(checks[name](), CHECK_TIMEOUT_S)
            except Exception:
                return False

        results = await asyncio.gather(*(run(n) for n in names))
        status = {n: ("ok" if ok else "unavailable") for n, ok in zip(names, results, strict=True)}
        ready = all(results)
        body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": status}
        details: Mapping[str, Detail] = getattr(request.app.state, "readiness_details", {})
        if details:
            body["details"] = {name: await _detail(describe) for name, describe in details.items()}
        return JSONResponse(body, status_code=200 if ready else 503)

    return router
