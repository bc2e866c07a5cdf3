"""Baseline for the gateway benchmark: a FastAPI endpoint on the same path that only reads and
JSON-parses the body, served by uvicorn with the same settings as the gateway."""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

INGEST = "/api/v1/partner/ingest/batch-call"
_OK = b'{"success":true}'


def create_app() -> FastAPI:
    app = FastAPI()

    @app.post(INGEST)
    async def noop(request: Request) -> Response:
        orjson.loads(await request.body())
        return Response(_OK, media_type="application/json")

    return app
