"""The HTTP server's own edge, on a real gateway process over raw sockets: what never reaches the
application (malformed requests, oversized URLs and headers, heads that never finish) is
answered in the API's error shape and the connection closed; keep-alive and pipelined
connections get every answer in order; and the server serves normally afterwards."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import INGEST, create_partner
from tests.support.infra import Infra, free_port
from tests.support.processes import service_process
from tests.support.raw_http import RawResponse, raw_connection, request

HEADER_TIMEOUT_S = 1.5


@pytest.fixture(scope="module")
def gateway_port(infra: Infra, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """One gateway process for the module, with a short header timeout and default limits."""
    port = free_port()
    env = {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}.",
        "KAFKA_TOPIC_PARTITIONS": "1",
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_READ_MODEL_ENABLED": "false",
        "HTTP_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "LOG_LEVEL": "INFO",
    }
    log = tmp_path_factory.mktemp("http-edge") / "gateway.log"
    with service_process("gateway", env, port, log):
        yield port


def assert_error(response: RawResponse, status: int, message: str) -> None:
    """The API's error shape, exactly, with the connection announced closed."""
    assert response.status == status, response
    assert response.headers["content-type"] == "application/json"
    assert response.headers["connection"] == "close"
    assert response.json() == {"success": False, "message": message}


def assert_serves(port: int) -> None:
    """A fresh connection is served normally."""
    with raw_connection(port) as conn:
        conn.send(request("GET", "/healthz"))
        response = conn.response()
    assert response.status == 200
    assert response.json() == {"status": "ok"}


def rejected(port: int, raw: bytes) -> RawResponse:
    with raw_connection(port) as conn:
        conn.send(raw)
        response = conn.response()
        assert conn.closed_by_server()
    return response


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"HELLO WORLD\r\n\r\n", id="garbage request line"),
        pytest.param(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nthis is not a header\r\n\r\n", id="header without colon"),
        pytest.param(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX Bad: 1\r\n\r\n", id="space in header name"),
        pytest.param(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Nul: a\x00b\r\n\r\n", id="NUL in header value"),
        pytest.param(b"GET /heal\x7fthz HTTP/1.1\r\nHost: gw\r\n\r\n", id="control byte in URL"),
        pytest.param(b"GET /healthz HTTP/9.9\r\nHost: gw\r\n\r\n", id="unknown HTTP version"),
        pytest.param(
            b"POST /healthz HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            id="two Content-Lengths",
        ),
    ],
)
def test_malformed_requests_get_400_in_the_error_shape(gateway_port: int, raw: bytes) -> None:
    assert_error(rejected(gateway_port, raw), 400, "Malformed HTTP request")
    assert_serves(gateway_port)


async def test_malformed_body_of_a_request_in_progress(gateway_port: int, database_url: str) -> None:
    """The route is already reading the body when its chunked framing turns out broken: the
    answer is still the error shape, and the route (which never got a body) records nothing."""
    partner = await create_partner(database_url)
    head = request(
        "POST",
        INGEST,
        {**partner.headers(), "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
    )

    def exchange() -> RawResponse:
        with raw_connection(gateway_port) as conn:
            conn.send(head + b"5\r\n[{}, \r\n")
            time.sleep(0.3)  # the route is waiting for the rest of the body
            conn.send(b"zz\r\nnot a chunk\r\n")
            response = conn.response()
            assert conn.closed_by_server()
        return response

    assert_error(await asyncio.to_thread(exchange), 400, "Malformed HTTP request")
    assert_serves(gateway_port)


async def test_chunked_trailers_are_held_to_the_header_limits(gateway_port: int, database_url: str) -> None:
    """Trailer fields after a chunked body are buffered by the parser like header fields: a
    trailer that never ends is refused (it used to grow the process's memory for as long as the
    client kept sending), while a body with a small trailer is read as usual."""
    partner = await create_partner(database_url)
    head = request(
        "POST",
        INGEST,
        {**partner.headers(), "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
    )

    def exchange(rest: bytes) -> RawResponse:
        with raw_connection(gateway_port) as conn:
            conn.send(head + b'c\r\n{"data": []}\r\n0\r\n')
            time.sleep(0.2)
            conn.send(rest)
            response = conn.response()
            if response.status != 422:
                assert conn.closed_by_server()
        return response

    small = await asyncio.to_thread(exchange, b"X-Checksum: abc\r\n\r\n")
    assert small.status == 422  # the body was read: 1 to 50 calls
    assert small.json()["message"] == "Validation failed"
    endless = await asyncio.to_thread(exchange, b"X-Trailer: " + b"a" * 1_000_000)
    assert_error(endless, 431, "Request headers larger than 32768 bytes")
    assert_serves(gateway_port)


def test_a_body_broken_after_its_answer_gets_no_second_answer(gateway_port: int) -> None:
    """The route answered before reading the body (405 here); when the body's framing then
    breaks, the connection is closed: one request, one answer."""
    with raw_connection(gateway_port) as conn:
        conn.send(b"POST /healthz HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n")
        response = conn.response()
        assert response.status == 405
        assert response.json()["success"] is False
        conn.send(b"zz\r\nnot a chunk\r\n")
        assert conn.closed_by_server()  # EOF, not a second status line
    assert_serves(gateway_port)


def test_oversized_url_gets_414(gateway_port: int) -> None:
    # At the limit the request is served (the path is unknown: the API's own 404).
    with raw_connection(gateway_port) as conn:
        conn.send(request("GET", "/" + "a" * 8191))
        assert conn.response().status == 404
    response = rejected(gateway_port, request("GET", "/" + "a" * 8192))
    assert_error(response, 414, "Request URL longer than 8192 bytes")
    # In the query string, and arriving in pieces, too.
    with raw_connection(gateway_port) as conn:
        conn.send(b"GET /healthz?q=" + b"b" * 5000)
        time.sleep(0.2)
        conn.send(b"b" * 5000)
        assert_error(conn.response(), 414, "Request URL longer than 8192 bytes")
        assert conn.closed_by_server()
    assert_serves(gateway_port)


def test_one_megabyte_header_gets_431(gateway_port: int) -> None:
    # 30 KB of headers is within the limit.
    with raw_connection(gateway_port) as conn:
        conn.send(request("GET", "/healthz", {"X-Big": "a" * 30_000}))
        assert conn.response().status == 200
    message = "Request headers larger than 32768 bytes"
    # Sent at once: the server answers while the client is still sending, and keeps reading
    # long enough for the client to see the answer rather than a reset.
    with raw_connection(gateway_port) as conn:
        started = time.monotonic()
        conn.send(request("GET", "/healthz", {"X-Big": "a" * 1_000_000}))
        assert_error(conn.response(), 431, message)
        assert conn.closed_by_server()
        assert time.monotonic() - started < HEADER_TIMEOUT_S  # rejected on size, not on time
    # Many fields that add up.
    many = {f"X-Field-{i}": "v" * 1000 for i in range(40)}
    assert_error(rejected(gateway_port, request("GET", "/healthz", many)), 431, message)
    assert_serves(gateway_port)


def test_too_many_headers_get_431(gateway_port: int) -> None:
    with raw_connection(gateway_port) as conn:  # Host plus 99: the limit
        conn.send(request("GET", "/healthz", {f"X-H{i}": "1" for i in range(99)}))
        assert conn.response().status == 200
    response = rejected(gateway_port, request("GET", "/healthz", {f"X-H{i}": "1" for i in range(100)}))
    assert_error(response, 431, "More than 100 request headers")
    assert_serves(gateway_port)


def test_slow_headers_get_408_and_the_connection_closed(gateway_port: int) -> None:
    with raw_connection(gateway_port) as conn:
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Half: ")
        started = time.monotonic()
        response = conn.response()
        waited = time.monotonic() - started
        assert_error(response, 408, f"Request headers not received within {HEADER_TIMEOUT_S:g} seconds")
        assert conn.closed_by_server()
    assert HEADER_TIMEOUT_S * 0.8 < waited < HEADER_TIMEOUT_S + 3
    assert_serves(gateway_port)


def test_header_timer_runs_per_request_from_its_first_byte(gateway_port: int) -> None:
    """Slow but on time, twice on one connection (longer than one timeout in total); then a
    head that stops half way is answered 408 on the same connection."""
    pause = HEADER_TIMEOUT_S * 0.6
    with raw_connection(gateway_port) as conn:
        for _ in range(2):
            conn.send(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n")
            time.sleep(pause)
            conn.send(b"X-Late: 1\r\n\r\n")
            response = conn.response()
            assert response.status == 200
            assert "connection" not in response.headers  # still keep-alive
        time.sleep(pause)  # idle between requests is not head time
        conn.send(b"GET /healthz HTTP/1.1\r\n")
        assert_error(conn.response(), 408, f"Request headers not received within {HEADER_TIMEOUT_S:g} seconds")
        assert conn.closed_by_server()


def test_a_connection_that_sends_nothing_is_closed(gateway_port: int) -> None:
    with raw_connection(gateway_port) as conn:
        started = time.monotonic()
        assert conn.closed_by_server(within=HEADER_TIMEOUT_S + 3)
        # closed_by_server read EOF first: no answer, as there was no request to answer
        assert time.monotonic() - started > HEADER_TIMEOUT_S * 0.8


def test_keep_alive_two_good_requests_then_a_bad_one(gateway_port: int) -> None:
    with raw_connection(gateway_port) as conn:
        for _ in range(2):
            conn.send(request("GET", "/healthz"))
            response = conn.response()
            assert response.status == 200
            assert "connection" not in response.headers
        assert conn.quiet(within=0.3)  # kept open
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nBroken\r\n\r\n")
        assert_error(conn.response(), 400, "Malformed HTTP request")
        assert conn.closed_by_server()
    assert_serves(gateway_port)


def test_pipelined_answers_come_in_request_order(gateway_port: int) -> None:
    """Two good requests and a bad one in one write: the two answers, then the 400, then close
    (not the 400 ahead of answers still owed). Then good requests and a head that stops."""
    with raw_connection(gateway_port) as conn:
        conn.send(request("GET", "/healthz") + request("GET", "/nowhere") + b"BAD REQUEST\r\n\r\n")
        assert conn.response().status == 200
        second = conn.response()
        assert second.status == 404
        assert second.json()["success"] is False
        assert_error(conn.response(), 400, "Malformed HTTP request")
        assert conn.closed_by_server()
    # The last request's own body is broken while it waits behind the first: it never runs.
    with raw_connection(gateway_port) as conn:
        broken = b"POST /healthz HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
        conn.send(request("GET", "/healthz") + broken)
        assert conn.response().status == 200
        assert_error(conn.response(), 400, "Malformed HTTP request")
        assert conn.closed_by_server()
    with raw_connection(gateway_port) as conn:
        conn.send(request("GET", "/healthz") + request("GET", "/healthz") + b"GET /healthz HTTP/1.1\r\nHo")
        assert [conn.response().status for _ in range(2)] == [200, 200]
        assert_error(conn.response(), 408, f"Request headers not received within {HEADER_TIMEOUT_S:g} seconds")
        assert conn.closed_by_server()
    assert_serves(gateway_port)


def test_upgrade_requests_are_served_as_plain_http(gateway_port: int) -> None:
    """No service speaks WebSocket: an upgrade is answered by the API, not by a 403 text/plain,
    and one that carries a body (which the parser would pass on unread) is refused."""
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    with raw_connection(gateway_port) as conn:
        conn.send(request("GET", "/healthz", upgrade))
        response = conn.response()
        assert response.status == 200
        assert response.json() == {"status": "ok"}
        assert response.headers["connection"] == "close"
        assert conn.closed_by_server()
    response = rejected(gateway_port, request("POST", "/healthz", {**upgrade, "Upgrade": "h2c"}, b"{}"))
    assert_error(response, 400, "Upgrade requests with a body are not supported")
    assert_serves(gateway_port)


@pytest.fixture
def fetcher_port(infra: Infra, database_url: str, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    env = {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}.",
        "KAFKA_TOPIC_PARTITIONS": "1",
        "BLOB_ROOT": str(tmp_path / "blobs"),
        "FETCHER_PORT": str(port),
        "FETCHER_PROBE_WORKERS": "1",
        "LOG_LEVEL": "INFO",
    }
    with service_process("fetcher", env, port, tmp_path / "fetcher.log"):
        yield port


def test_worker_health_port_has_the_same_edge(fetcher_port: int) -> None:
    assert_error(rejected(fetcher_port, b"HELLO WORLD\r\n\r\n"), 400, "Malformed HTTP request")
    response = rejected(fetcher_port, request("GET", "/healthz", {"X-Big": "a" * 1_000_000}))
    assert_error(response, 431, "Request headers larger than 32768 bytes")
    assert_error(rejected(fetcher_port, request("GET", "/" + "a" * 9000)), 414, "Request URL longer than 8192 bytes")
    assert_serves(fetcher_port)


def test_worker_health_port_answers_unknown_routes_in_the_error_shape(fetcher_port: int) -> None:
    with raw_connection(fetcher_port) as conn:
        conn.send(request("GET", "/no-such-route"))
        response = conn.response()
    assert response.status == 404
    assert response.json() == {"success": False, "message": "Not Found"}
    with raw_connection(fetcher_port) as conn:
        conn.send(request("DELETE", "/healthz"))
        response = conn.response()
    assert response.status == 405 and response.json() == {"success": False, "message": "Method Not Allowed"}
