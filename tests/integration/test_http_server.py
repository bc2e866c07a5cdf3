"""The shared HTTP server protocol under uvicorn, over real sockets, with applications that fail
the way only a broken application can: the server's own fallback answer is the API's 500."""

from __future__ import annotations

import asyncio
import contextlib
import pickle
from collections.abc import AsyncIterator

import uvicorn
from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope

from services.common.http_server import EdgeHttpProtocol, HttpLimits, protocol_factory
from tests.support.infra import free_port
from tests.support.raw_http import RawResponse, raw_connection, request

INTERNAL_ERROR = {"success": False, "message": "Internal server error"}


async def raises_before_responding(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    raise RuntimeError("boom")


async def returns_without_responding(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    return None


@contextlib.asynccontextmanager
async def serving(app: object) -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        http=protocol_factory(HttpLimits()),  # type: ignore[arg-type]
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


def get(port: int) -> tuple[RawResponse, bool]:
    with raw_connection(port) as conn:
        conn.send(request("GET", "/anything"))
        response = conn.response()
        return response, conn.closed_by_server()


async def test_the_fallback_500_is_the_apis_500() -> None:
    for app in (raises_before_responding, returns_without_responding):
        async with serving(app) as port:
            response, closed = await asyncio.to_thread(get, port)
        assert response.status == 500
        assert response.headers["content-type"] == "application/json"
        assert response.json() == INTERNAL_ERROR
        assert closed


def test_the_protocol_factory_travels_to_worker_processes() -> None:
    """uvicorn pickles its config into ``workers > 1`` processes (spawn): the factory and its
    limits must survive that."""
    limits = HttpLimits(max_url_bytes=1000, max_header_bytes=2000, max_headers=20, header_timeout_s=3.5)
    factory = pickle.loads(pickle.dumps(protocol_factory(limits)))  # noqa: S301 - our own bytes
    assert factory.func is EdgeHttpProtocol
    assert factory.keywords == {"limits": limits}
