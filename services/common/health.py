"""Liveness and readiness endpoints, the same for every service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter
from fastapi.responses import JSONResponse

Check = Callable[[], Awaitable[bool]]


def health_router(checks: Mapping[str, Check], timeout: float = 3.0) -> APIRouter:
    """``/healthz``: the process answers. ``/readyz``: every dependency in ``checks`` answers."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: Kafka and PostgreSQL reachable")
    async def readyz() -> JSONResponse:
        names = list(checks)

        async def run(name: str) -> bool:
            try:
                return await asyncio.wait_for(checks[name](), timeout)
            except Exception:  # noqa: BLE001 - a failing check means "not ready", nothing more
                return False

        results = await asyncio.gather(*(run(n) for n in names))
        status = {n: ("ok" if ok else "unavailable") for n, ok in zip(names, results, strict=True)}
        ready = all(results)
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": status},
            status_code=200 if ready else 503,
        )

    return router
