"""What the HTTP edge (services/common/http_server.py) costs on the happy path: uvicorn's own
httptools protocol against ours, side by side in one run, in rounds that alternate.

Each round opens one keep-alive connection on an in-memory transport and serves ``--requests``
requests through the protocol and an application, on uvloop as the services run, and takes the
CPU time of the thread (what other processes on a shared machine do to the clock stays out).
With no sockets and a minimal application the protocol's own work is as large a share of the
time as it can be: those rows are an upper bound of the overhead. Rows:

- ``get``: ``GET /healthz`` with 7 headers, in one read, raw ASGI application (reads the body,
  answers a 16-byte JSON);
- ``ingest``: the gateway benchmark's request (``POST`` of a 34 KB body, 9 headers), in one
  read, same application;
- ``split``: the ``get`` request with its head arriving in two reads (our header timer is armed);
- ``ingest, FastAPI no-op``: the ``ingest`` request to ``bench/noop_app.py``, the gateway
  benchmark's baseline (FastAPI, JSON-parses the body).

Usage: python -m bench.http_edge_bench [--rounds 15] [--requests 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import uvloop
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from bench.noop_app import create_app
from services.common.http_server import HttpLimits, protocol_factory

_OK = b'{"success":true}'


async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"16")],
        }
    )
    await send({"type": "http.response.body", "body": _OK})


class MemoryTransport(asyncio.Transport):
    """What the protocol writes is counted; nothing leaves the process."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.responses = 0
        self.answered = asyncio.Event()
        self._closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)
        if bytes(data[-16:]) == _OK:
            self.responses += 1
            self.answered.set()

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


def requests() -> dict[str, tuple[list[bytes], Any]]:
    get = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: bench\r\nAccept: */*\r\n"
    get += b"Accept-Encoding: gzip\r\nConnection: keep-alive\r\nX-Request-Id: 0123456789abcdef\r\n\r\n"
    body = json.dumps({"data": [{"call": {"id": f"call-{i}", "pad": "x" * 640}} for i in range(50)]}).encode()
    ingest = (
        b"POST /api/v1/partner/ingest/batch-call HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: Go-http-client/1.1\r\n"
        b"Content-Type: application/json\r\nX-Api-Key: ck_0123456789abcdef0123456789abcdef\r\n"
        b"X-Api-Secret: cs_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n"
        b"X-Tenant-Id: tenant1\r\nX-Sub-Tenant-Id: subtenant1\r\nAccept-Encoding: gzip\r\n"
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )
    half = get.index(b"Accept:")
    return {
        "get": ([get], app),
        "ingest": ([ingest], app),
        "split": ([get[:half], get[half:]], app),
        "ingest, FastAPI no-op": ([ingest], create_app()),
    }


async def serve(make: Callable[..., asyncio.Protocol], reads: list[bytes], application: Any, n: int) -> float:
    """CPU seconds per request over ``n`` requests on one connection."""
    config = Config(application, lifespan="off", log_config=None, access_log=False, proxy_headers=False, ws="none")
    config.load()
    protocol: Any = make(config=config, server_state=ServerState(), app_state={})
    transport = MemoryTransport()
    protocol.connection_made(transport)
    started = time.thread_time()
    for _ in range(n):
        for chunk in reads:
            protocol.data_received(chunk)
        await transport.answered.wait()
        transport.answered.clear()
    elapsed = time.thread_time() - started
    if transport.responses != n:
        raise RuntimeError(f"{transport.responses} responses to {n} requests")
    protocol.connection_lost(None)
    return elapsed / n


async def main_async(rounds: int, n: int) -> dict[str, dict[str, float]]:
    kinds: dict[str, Callable[..., asyncio.Protocol]] = {
        "uvicorn": HttpToolsProtocol,
        "edge": protocol_factory(HttpLimits()),
    }
    shapes = requests()
    samples: dict[str, dict[str, list[float]]] = {s: {k: [] for k in kinds} for s in shapes}
    for shape, (reads, application) in shapes.items():
        for make in kinds.values():  # warm-up
            await serve(make, reads, application, n // 5)
        for r in range(rounds):
            order = list(kinds) if r % 2 == 0 else list(reversed(kinds))
            for kind in order:
                samples[shape][kind].append(await serve(kinds[kind], reads, application, n))
    result: dict[str, dict[str, float]] = {}
    for shape, by_kind in samples.items():
        uv = statistics.median(by_kind["uvicorn"]) * 1e6
        edge = statistics.median(by_kind["edge"]) * 1e6
        # Round by round (the two measured one after the other): how steady the difference is.
        added = statistics.quantiles([(e - u) * 1e6 for u, e in zip(by_kind["uvicorn"], by_kind["edge"], strict=True)])
        result[shape] = {
            "uvicorn_us": uv,
            "edge_us": edge,
            "added_us": edge - uv,
            "ratio": edge / uv,
            "added_p25": added[0],
            "added_p75": added[2],
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=5000, help="requests per round and protocol")
    args = parser.parse_args()
    result = uvloop.run(main_async(args.rounds, args.requests))
    print(f"medians of {args.rounds} alternating rounds of {args.requests} requests, CPU µs per request")
    print("| request | uvicorn's protocol | ours | added | ratio | added per round, p25 to p75 |")
    print("|---|---|---|---|---|---|")
    for shape, r in result.items():
        print(
            f"| {shape} | {r['uvicorn_us']:.2f} | {r['edge_us']:.2f} | {r['added_us']:+.2f} | {r['ratio']:.3f} "
            f"| {r['added_p25']:+.2f} to {r['added_p75']:+.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
