"""The HTTP edge every service shares: uvicorn's httptools protocol with limits, a header-read
timeout, and its own answers in the API's error shape.

uvicorn answers what never reaches the application itself: a malformed request gets
``400 Invalid HTTP request received.`` and an application that fails before responding gets
``500 Internal Server Error``, both ``text/plain``. It also has no limit on the request line or
the headers, and no deadline for them. :class:`EdgeHttpProtocol` keeps uvicorn's protocol and
overrides only those edges:

- a URL over ``max_url_bytes`` is answered ``414``, a header section over ``max_header_bytes``
  or with more than ``max_headers`` fields ``431``;
- a request whose line and headers have not all arrived ``header_timeout_s`` after its first
  byte is answered ``408``; a connection that sends nothing for that long is closed;
- a malformed request is answered ``400``, the fallback ``500`` is the API's ``500``;

every one of them as ``{"success": false, "message": ...}`` with ``Content-Type:
application/json``, after any response still owed on the connection (pipelining), then the
connection is closed. The happy path adds a few attribute updates per request; a timer is
armed only for a head that does not arrive in one read.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

try:
    import httptools
except ImportError as exc:  # pragma: no cover - the dependency is pinned
    raise ImportError(
        "callpipe's HTTP server needs httptools (a dependency of uvicorn[standard]); "
        "install the project's dependencies instead of falling back to another parser"
    ) from exc

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

log = logging.getLogger("services.common.http_server")

#: After an error answer the server stops sending and keeps reading (and discarding) for this
#: long, so a client still sending its oversized request receives the answer instead of a reset;
#: and for at most this many bytes (above the largest body a route accepts).
LINGER_S = 2.0
LINGER_MAX_BYTES = 8 * 1024 * 1024
#: The request line around the URL: method, two spaces, ``HTTP/1.1``, CRLF, and the blank line
#: that ends the head (generous: llhttp's longest method is 15 bytes).
_REQUEST_LINE_BYTES = 64
#: Per header field beyond its name and value: ``": "`` and CRLF.
_FIELD_OVERHEAD = 4
_INTERNAL_ERROR = orjson.dumps({"success": False, "message": "Internal server error"})
_MALFORMED = "Malformed HTTP request"


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What a request head may be, and how long it may take to arrive."""

    max_url_bytes: int = 8192
    max_header_bytes: int = 32768
    max_headers: int = 100
    header_timeout_s: float = 10.0

    @property
    def max_head_bytes(self) -> int:
        """The longest head (request line and headers, as sent) the limits above allow."""
        return self.max_url_bytes + self.max_header_bytes + _REQUEST_LINE_BYTES


class _Rejected(Exception):
    """Raised from a parser callback to stop parsing and answer ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _JsonErrorCycle(RequestResponseCycle):
    """uvicorn's request cycle whose fallback 500 (the application raised or returned without
    responding) is the API's 500 rather than ``text/plain``."""

    async def send_500_response(self) -> None:
        await self.send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_INTERNAL_ERROR)).encode("ascii")),
                    (b"connection", b"close"),
                ],
            }
        )
        await self.send({"type": "http.response.body", "body": _INTERNAL_ERROR, "more_body": False})


def _building(cycle_class: type[RequestResponseCycle]) -> Callable[[HttpToolsProtocol], None]:
    """uvicorn's ``on_headers_complete``, unchanged except that the request cycle it builds is a
    ``cycle_class``.

    The cycle is built inside that method from the module's ``RequestResponseCycle``; a copy of
    the function that reads our class under that name gives every request its cycle with no
    work per request. (Changing an instance's class afterwards costs CPython its compact
    attribute layout: every access to the cycle became about twice as slow.)
    """
    original = HttpToolsProtocol.on_headers_complete
    code = original.__code__
    if "RequestResponseCycle" not in code.co_names or code.co_freevars:
        raise ImportError(
            "uvicorn's HttpToolsProtocol.on_headers_complete no longer builds its cycle as before: "
            "review services/common/http_server.py for this uvicorn version"
        )
    namespace = {**original.__globals__, "RequestResponseCycle": cycle_class}
    built: Callable[[HttpToolsProtocol], None] = types.FunctionType(
        code, namespace, code.co_name, original.__defaults__
    )
    return built


_on_headers_complete = _building(_JsonErrorCycle)


class EdgeHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :class:`HttpLimits` and JSON error answers.

    Give it to uvicorn through :func:`protocol_factory`, which binds the limits. The overrides
    that run on every request call uvicorn's methods directly rather than through ``super()``,
    which costs a little more on Python 3.11.
    """

    # Slots keep uvicorn's own attributes in the instance's compact layout (CPython shares at most
    # 30 attribute names per class; uvicorn uses 28) and make ours cheap to reach.
    __slots__ = (
        "_deferred",
        "_field_bytes_left",
        "_fields_left",
        "_got_body",
        "_head_seen",
        "_head_timer",
        "_idle_timer",
        "_ignore_input",
        "_ignored",
        "_in_head",
        "_in_message",
        "_limits",
        "_linger_timer",
        "_owed",
        "_tail_seen",
    )

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: HttpLimits | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._limits = limits or HttpLimits()
        # Per request: between its first byte and its end, and reading its head.
        self._in_message = False
        self._in_head = False
        # Bytes of the head in reads that began inside it; -1 until the first read of the head ends.
        self._head_seen = -1
        # Header fields (trailers included) and their bytes the request may still send.
        self._fields_left = 0
        self._field_bytes_left = 0
        # Body phase: whether this read delivered body bytes, and the bytes of the reads since the
        # last that did (chunk framing and trailers, which the parser buffers).
        self._got_body = False
        self._tail_seen = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        # Set once nothing more is parsed: after a rejection, or after an upgrade we do not honour;
        # what arrives after is counted and dropped.
        self._ignore_input = False
        self._ignored = 0
        # Requests whose response is not complete yet (more than one when pipelined), and a
        # rejection waiting for them.
        self._owed = 0
        self._deferred: _Rejected | None = None

    # Connection

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        self._idle_timer = self.loop.call_later(self._limits.header_timeout_s, self._idle_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._head_timer, self._idle_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._idle_timer = self._linger_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._ignore_input:
            self._ignored += len(data)
            if self._ignored > LINGER_MAX_BYTES and not self.transport.is_closing():
                self.transport.close()
            return
        self._unset_keepalive_if_required()
        self._got_body = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                # llhttp parses nothing after an upgrade request's head; the request itself is
                # served as plain HTTP and the connection closes after it (on_headers_complete).
                self._ignore_input = True
            return
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            self._reject(cause if isinstance(cause, _Rejected) else _Rejected(400, _MALFORMED))
            return
        if self._in_head:
            # The head did not end in this read. Its first read may also hold the end of the
            # previous request, so only reads that began inside the head are counted: a lower
            # bound of its size, which catches a field still being received (the parser buffers
            # it whole before it reaches on_header).
            if self._head_seen < 0:
                self._head_seen = 0
                self._head_timer = self.loop.call_later(self._limits.header_timeout_s, self._head_expired)
            else:
                self._head_seen += len(data)
            if len(self.url) > self._limits.max_url_bytes:
                self._reject(self._url_too_long())
            elif self._head_seen > self._limits.max_head_bytes:
                self._reject(self._headers_too_large())
        elif self._in_message:
            # The body did not end in this read. Reads without body bytes are chunk framing or
            # trailer fields (buffered whole by the parser like header fields): bounded the same.
            if self._got_body:
                self._tail_seen = 0
            else:
                self._tail_seen += len(data)
                if self._tail_seen > self._limits.max_head_bytes:
                    self._reject(self._headers_too_large())

    # Parser callbacks

    def on_message_begin(self) -> None:
        HttpToolsProtocol.on_message_begin(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._in_message = self._in_head = True
        self._head_seen = -1
        self._tail_seen = 0
        self._fields_left = self._limits.max_headers
        self._field_bytes_left = self._limits.max_header_bytes

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields_left -= 1
        self._field_bytes_left -= len(name) + len(value) + _FIELD_OVERHEAD
        if self._fields_left < 0:
            raise _Rejected(431, f"More than {self._limits.max_headers} request headers")
        if self._field_bytes_left < 0:
            raise self._headers_too_large()
        HttpToolsProtocol.on_header(self, name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if len(self.url) > self._limits.max_url_bytes:
            raise self._url_too_long()
        unhonoured_upgrade = self.parser.should_upgrade() and not self._should_upgrade()
        if unhonoured_upgrade and self._declares_body():
            # llhttp would hand the body over as the upgraded protocol's bytes: the application
            # would see an empty body.
            raise _Rejected(400, "Upgrade requests with a body are not supported")
        previous = self.cycle
        _on_headers_complete(self)  # builds a _JsonErrorCycle
        cycle = self.cycle
        if cycle is not previous:
            self._owed += 1
            if unhonoured_upgrade:
                cycle.keep_alive = False

    def on_body(self, body: bytes) -> None:
        self._got_body = True
        HttpToolsProtocol.on_body(self, body)

    def on_message_complete(self) -> None:
        HttpToolsProtocol.on_message_complete(self)
        self._in_message = False

    def on_response_complete(self) -> None:
        self._owed -= 1
        HttpToolsProtocol.on_response_complete(self)
        if self._deferred is not None and self._owed == 0 and not self.transport.is_closing():
            rejection, self._deferred = self._deferred, None
            self._answer(rejection)

    # Rejections

    def _url_too_long(self) -> _Rejected:
        return _Rejected(414, f"Request URL longer than {self._limits.max_url_bytes} bytes")

    def _headers_too_large(self) -> _Rejected:
        return _Rejected(431, f"Request headers larger than {self._limits.max_header_bytes} bytes")

    def _declares_body(self) -> bool:
        for name, value in self.headers:
            if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0")):
                return True
        return False

    def _reject(self, rejection: _Rejected) -> None:
        """Answer ``rejection`` in its turn on the connection, then close it."""
        in_body = self._in_message and not self._in_head
        self._ignore_input = True
        self._in_head = False
        for timer in (self._head_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._idle_timer = None
        log.info("request rejected", extra={"status": rejection.status, "reason": rejection.message})
        cycle = self.cycle
        if in_body and cycle is not None:
            # The body of the newest request (the one with a cycle) is at fault.
            if cycle.response_started:
                self.transport.close()  # it has (begun) its answer: no other status can follow
                return
            if self.pipeline and self.pipeline[0][0] is cycle:
                self.pipeline.popleft()  # queued behind earlier requests: it never runs
                self._owed -= 1
            else:
                cycle.disconnected = True  # the application stops receiving and sending
                cycle.message_event.set()
                self._answer(rejection)
                return
        elif self._owed == 0:
            self._answer(rejection)  # a new request, and nothing owed before it
            return
        # Responses to earlier requests are still being written: this answer goes after them.
        self._deferred = rejection
        self.flow.pause_reading()

    def _answer(self, rejection: _Rejected) -> None:
        body = orjson.dumps({"success": False, "message": rejection.message})
        content = [STATUS_LINE[rejection.status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self._unset_keepalive_if_required()
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.flow.resume_reading()
            self._linger_timer = self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()

    # Timers

    def _idle_expired(self) -> None:
        """Nothing arrived since the connection opened: there is no request to answer."""
        self._idle_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _head_expired(self) -> None:
        self._head_timer = None
        if not self._in_head or self._ignore_input or self.transport.is_closing():
            return
        if self.flow.read_paused:
            # We stopped reading (requests queued ahead of this one): the client is not late.
            self._head_timer = self.loop.call_later(self._limits.header_timeout_s, self._head_expired)
            return
        timeout = f"{self._limits.header_timeout_s:g}"
        self._reject(_Rejected(408, f"Request headers not received within {timeout} seconds"))


def protocol_factory(limits: HttpLimits) -> Callable[..., asyncio.Protocol]:
    """What ``uvicorn.run(http=...)`` takes: builds :class:`EdgeHttpProtocol` with ``limits``.

    A ``functools.partial`` of an importable class, so it pickles into ``workers > 1`` processes.
    """
    return functools.partial(EdgeHttpProtocol, limits=limits)
