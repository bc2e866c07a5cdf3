"""Liveness and readiness endpoints, the same for every service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

Check = Callable[[], Awaitable[bool]]
CHECK_TIMEOUT_S = 3.0


def health_router() -> APIRouter:
    """``/healthz``: the process answers. ``/readyz``: every dependency answers.

    The checks are the ``{name: async () -> bool}`` mapping the app's lifespan stores in
    ``app.state.readiness_checks`` once its clients exist.
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
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": status},
            status_code=200 if ready else 503,
        )

    return router
