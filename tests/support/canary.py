"""Canaries for SSRF tests: proof that a refused address was never contacted.

Two independent witnesses:

- ``canaries``: real TCP listeners on loopback addresses (127.0.0.1, 127.0.0.2, ::1 where the
  machine has IPv6), all on one port, counting every connection the kernel completes. Linux routes
  all of 127.0.0.0/8 to ``lo`` and sends 0.0.0.0 and :: to the local host, so every loopback and
  unspecified spelling of the URL's host lands on one of them if the guard lets it through.
- ``ConnectSpy``: every ``connect()`` this process makes (the interpreter's ``socket.connect``
  audit event, raised before the system call, from any thread), for addresses no listener can
  stand on (10.0.0.1, 169.254.169.254, fc00::1...): a blocked address must never reach
  ``connect()`` at all. The SSRF guard refuses before creating the socket, so this sees nothing
  when the guard holds and the exact address when it does not.

No sleeps: ``Canaries.settle()`` is a barrier. It connects to each listener itself and waits until
that connection is accepted; a listening socket accepts in arrival order, so by then every earlier
connection has been counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import socket
import sys
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any

DEFAULT_HOSTS = ("127.0.0.1", "127.0.0.2", "::1")
# Set while ``settle`` makes its own connections, so the spy does not report them.
_OWN_CONNECT: contextvars.ContextVar[bool] = contextvars.ContextVar("canary_own_connect", default=False)


@dataclass
class Intrusion:
    listener: str
    peer: tuple[Any, ...]


@dataclass
class Canaries:
    """Listeners on one port of several loopback addresses (``hosts`` are those that could bind)."""

    port: int = 0
    hosts: list[str] = field(default_factory=list)
    intrusions: list[Intrusion] = field(default_factory=list)
    _sentinels: dict[tuple[str, int], asyncio.Future[None]] = field(default_factory=dict)
    _servers: list[asyncio.Server] = field(default_factory=list)

    @property
    def accepts(self) -> int:
        return len(self.intrusions)

    def has(self, host: str) -> bool:
        return host in self.hosts

    def _protocol(self, listener: str) -> asyncio.Protocol:
        canaries = self

        class Counted(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                peer = transport.get_extra_info("peername")
                sentinel = canaries._sentinels.get((listener, peer[1]))
                if sentinel is not None and not sentinel.done():
                    sentinel.set_result(None)
                else:
                    canaries.intrusions.append(Intrusion(listener, tuple(peer)))
                transport.close()

        return Counted()

    async def settle(self) -> None:
        """Return once every connection made before this call has been counted."""
        loop = asyncio.get_running_loop()
        for host in self.hosts:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.bind((host, 0))
                accepted: asyncio.Future[None] = loop.create_future()
                self._sentinels[(host, sock.getsockname()[1])] = accepted
                sock.setblocking(False)
                token = _OWN_CONNECT.set(True)
                try:
                    await loop.sock_connect(sock, (host, self.port))
                finally:
                    _OWN_CONNECT.reset(token)
                await asyncio.wait_for(accepted, 10)
            finally:
                sock.close()


async def _bind_all(canaries: Canaries, hosts: Iterable[str]) -> bool:
    loop = asyncio.get_running_loop()
    for index, host in enumerate(hosts):
        try:
            server = await loop.create_server(
                lambda h=host: canaries._protocol(h), host, canaries.port, reuse_address=False
            )
        except OSError as exc:
            if index == 0:
                raise
            if exc.errno == errno.EADDRINUSE:
                return False  # the port is taken on this address: try another port
            if host == "::1":
                continue  # no IPv6 loopback on this machine
            raise
        if index == 0:
            canaries.port = server.sockets[0].getsockname()[1]
        canaries._servers.append(server)
        canaries.hosts.append(host)
    return True


@contextlib.asynccontextmanager
async def canaries(hosts: Iterable[str] = DEFAULT_HOSTS) -> AsyncIterator[Canaries]:
    """Listeners on one free port of every host (the first is required; ``::1`` is optional)."""
    hosts = tuple(hosts)
    for _ in range(20):
        found = Canaries()
        if await _bind_all(found, hosts):
            break
        for server in found._servers:
            server.close()
    else:
        raise RuntimeError(f"no common free port on {hosts}")
    try:
        yield found
    finally:
        for server in found._servers:
            server.close()
            await server.wait_closed()


# ------------------------------------------------------------------------------- connect spy

_ACTIVE: list[ConnectSpy] = []
_LOCK = threading.Lock()
_INSTALLED: list[bool] = []  # the audit hook, once per process


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect" or not _ACTIVE or _OWN_CONNECT.get():
        return
    address = args[1]
    if not isinstance(address, tuple) or len(address) < 2:
        return  # AF_UNIX and friends
    with _LOCK:
        for spy in _ACTIVE:
            spy.connects.append((str(address[0]), int(address[1])))


@dataclass
class ConnectSpy:
    """Every TCP/UDP ``connect()`` of this process while active, as (host, port)."""

    connects: list[tuple[str, int]] = field(default_factory=list)

    def towards(self, *, ports: Iterable[int] = (), hosts: Iterable[str] = ()) -> list[tuple[str, int]]:
        """The connects to any of ``ports`` or any of ``hosts`` (compared as IP addresses, so
        ``::ffff:10.0.0.1`` matches ``10.0.0.1``)."""
        port_set = set(ports)
        wanted = {_canonical(h) for h in hosts}
        return [(h, p) for h, p in self.connects if p in port_set or _canonical(h) in wanted]


def _canonical(host: str) -> str:
    try:
        ip = ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)


@contextlib.contextmanager
def connect_spy() -> Iterator[ConnectSpy]:
    with _LOCK:
        if not _INSTALLED:
            sys.addaudithook(_audit)  # cannot be removed; inert while no spy is active
            _INSTALLED.append(True)
    spy = ConnectSpy()
    with _LOCK:
        _ACTIVE.append(spy)
    try:
        yield spy
    finally:
        with _LOCK:
            _ACTIVE.remove(spy)
