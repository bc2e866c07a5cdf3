"""HTTP/1.1 over a raw socket: what a hostile (or just broken) client sends, byte for byte, and
the answers read back exactly as the server wrote them."""

from __future__ import annotations

import contextlib
import json
import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawConnection:
    """One TCP connection: write bytes, read whole responses, see whether the server closed it."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._file: BinaryIO = self.sock.makefile("rb")

    def send(self, data: bytes) -> bool:
        """Send ``data``; False if the server stopped reading and reset the connection first."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def response(self) -> RawResponse:
        """The next response on the connection (``Content-Length`` or chunked body)."""
        status_line = self._file.readline()
        assert status_line, "the server closed the connection without an answer"
        version, status, _ = status_line.decode("latin-1").split(" ", 2)
        assert version == "HTTP/1.1", status_line
        headers: dict[str, str] = {}
        while (line := self._file.readline()) not in (b"\r\n", b""):
            name, value = line.decode("latin-1").split(":", 1)
            assert name.lower() not in headers, f"duplicate header {name}"
            headers[name.lower()] = value.strip()
        if "content-length" in headers:
            body = self._file.read(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self._file.readline().strip(), 16):
                body += self._file.read(size)
                self._file.readline()
            self._file.readline()
        else:
            body = b""
        return RawResponse(int(status), headers, body)

    def closed_by_server(self, within: float = 5.0) -> bool:
        """True once the server has closed the connection (EOF or reset) within ``within`` s."""
        self.sock.settimeout(within)
        try:
            return self._file.read(1) == b""
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True

    def quiet(self, within: float) -> bool:
        """True if the server neither writes nor closes for ``within`` s (nothing buffered here)."""
        readable, _, _ = select.select([self.sock], [], [], within)
        return not readable

    def close(self) -> None:
        self._file.close()
        self.sock.close()


@contextlib.contextmanager
def raw_connection(port: int, timeout: float = 10.0) -> Iterator[RawConnection]:
    conn = RawConnection(port, timeout)
    try:
        yield conn
    finally:
        conn.close()


def request(method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """A well-formed request (``Host`` included) as bytes."""
    lines = [f"{method} {target} HTTP/1.1", "Host: edge.test"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
