"""An OTLP/HTTP endpoint that accepts trace exports and counts them (the benchmark's collector):
``python -m bench.otlp_sink PORT``."""

from __future__ import annotations

import sys

from aiohttp import web

received = {"requests": 0, "bytes": 0}


async def traces(request: web.Request) -> web.Response:
    body = await request.read()
    received["requests"] += 1
    received["bytes"] += len(body)
    return web.Response(body=b"", content_type="application/x-protobuf")


async def stats(_: web.Request) -> web.Response:
    return web.json_response(received)


def main() -> None:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", traces)
    app.router.add_get("/stats", stats)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
