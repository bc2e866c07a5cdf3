"""SSRF guard for every partner-supplied URL (recording downloads, callbacks).

A URL is refused when its host is, or resolves to, an address that is not globally routable
unicast: loopback, private, link-local (cloud metadata at 169.254.169.254), shared address space
(100.64.0.0/10), multicast, reserved, unspecified, documentation, benchmarking, IPv6 ULA and
link-local, and the IPv6 forms that carry such an IPv4 address (IPv4-mapped, NAT64, 6to4).
Only ``http``/``https`` are spoken, redirects are followed here (never by aiohttp) and every hop is
checked again. ``SsrfPolicy.allow_networks`` (``SSRF_ALLOW_NETWORKS``, empty by default) lets
chosen networks through, for local development and tests only.

Where each check happens, and why there are three:

1. ``check_url`` (before any I/O): scheme, host syntax, and IP literals in every spelling a
   resolver or browser accepts (``127.1``, ``2130706433``, ``0x7f.0.0.1``, ``0177.0.0.1``,
   ``[::ffff:127.0.0.1]``...). aiohttp never hands an IP-literal host to the resolver, so
   literals must be judged here. A literal that is allowed but not in canonical form is refused
   as ``invalid_url`` (aiohttp itself refuses most of those forms).
2. ``GuardedResolver`` (the connector's resolver): every address a hostname resolves to is
   checked and the blocked ones are dropped; with none left the request fails with
   ``BlockedAddress``. aiohttp connects only to the addresses the resolver returned (its DNS
   cache holds the filtered list), so there is no window between check and connect for DNS
   rebinding: the address checked is the address used.
3. The connector's socket factory (``aiohttp.TCPConnector(socket_factory=...)``, called by
   aiohappyeyeballs with the exact ``sockaddr`` it is about to ``connect()`` to) checks that
   address once more and refuses to create the socket. This is the check on "the address
   actually connected to", and it runs before the TCP handshake, so nothing (not even a SYN)
   reaches a blocked address, whatever path the address came by (literal host, resolver, pool).

A post-connect check of ``transport.get_extra_info("peername")`` was considered and not used:
aiohttp offers no hook between connect and sending the request (``on_connection_create_end``
carries no connection; the response is only available after the request bytes were sent), so it
could only detect a problem after the fact, and for TCP the peer is by construction the
``sockaddr`` the factory already checked. Kernel-level rewriting (NAT, transparent proxies) is
outside what any client can see. Proxies are not supported: with a proxy the resolved and
connected address is the proxy's, not the target's, so ``guarded_request`` refuses ``proxy``
and the session never reads proxy settings from the environment.

Usage::

    session = make_session(policy, timeout=aiohttp.ClientTimeout(total=30))
    async with await guarded_request(session, "GET", url, follow_redirects=True) as response:
        ...
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any, Final

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDict
from yarl import URL

from services.common.errors import CommonError, ConfigurationError

__all__ = [
    "ALLOW_NETWORKS_ENV",
    "BlockedAddress",
    "GuardedConnector",
    "GuardedResolver",
    "InvalidUrl",
    "IpAddress",
    "IpNetwork",
    "SsrfError",
    "SsrfPolicy",
    "TooManyRedirects",
    "UnsupportedScheme",
    "check_url",
    "guarded_request",
    "make_session",
    "parse_literal_host",
    "parse_networks",
]

IpAddress = IPv4Address | IPv6Address
IpNetwork = IPv4Network | IPv6Network

# Environment variable the services read the allowlist from (comma-separated networks).
ALLOW_NETWORKS_ENV: Final = "SSRF_ALLOW_NETWORKS"

REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})


# --------------------------------------------------------------------------------------- errors


class SsrfError(CommonError):
    """A URL refused by the SSRF guard. ``code`` is stable; the message names at most the host."""

    code = "ssrf_refused"

    def __init__(self, message: str, *, host: str | None = None) -> None:
        super().__init__(f"{message}: {host}" if host else message)
        self.host = host


class InvalidUrl(SsrfError):
    code = "invalid_url"


class UnsupportedScheme(SsrfError):
    code = "unsupported_scheme"


class BlockedAddress(SsrfError):
    code = "blocked_address"


class TooManyRedirects(SsrfError):
    code = "too_many_redirects"


class _BlockedConnect(OSError):
    """Raised by the socket factory. An ``OSError`` so aiohappyeyeballs and aiohttp treat it as a
    failed connection attempt (next address, then ``ClientConnectorError``); one fixed message so
    several blocked attempts collapse into this same exception, which ``guarded_request`` maps to
    ``BlockedAddress``."""

    def __init__(self) -> None:
        super().__init__(errno.EACCES, "connection refused by the SSRF policy")


# ------------------------------------------------------------------------------------ blocklist

# Everything that is not globally routable unicast, written out so the verdict does not depend on
# the Python patch release (``is_global``/``is_private`` changed within 3.11 and 3.12, and
# multicast counts as ``is_global``).
_BLOCKED_V4: Final = tuple(
    IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network", includes 0.0.0.0
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # TEST-NET-1
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, includes 255.255.255.255
    )
)

# IPv6 must be global unicast (2000::/3), which already excludes ::, ::1, IPv4-compatible,
# 64:ff9b:1::/48, 100::/64, fc00::/7 (ULA), fe80::/10, fec0::/10 and ff00::/8. The forms that
# carry an IPv4 address (mapped ::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4 2002::/16) are judged by
# that address. These are the non-routable ranges inside 2000::/3:
_GLOBAL_UNICAST_V6: Final = IPv6Network("2000::/3")
_NAT64_V6: Final = IPv6Network("64:ff9b::/96")
_BLOCKED_V6: Final = tuple(
    IPv6Network(net)
    for net in (
        "2001::/23",  # IETF protocol assignments: Teredo, benchmarking, ORCHID...
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
    )
)


def _public_v4(ip: IPv4Address) -> bool:
    return ip.is_global and not any(ip in net for net in _BLOCKED_V4)


def _public_v6(ip: IPv6Address) -> bool:
    if ip.ipv4_mapped is not None:
        return _public_v4(ip.ipv4_mapped)
    if ip in _NAT64_V6:
        return _public_v4(IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None and not _public_v4(ip.sixtofour):
        return False
    return (
        ip in _GLOBAL_UNICAST_V6 and ip.is_global and not ip.is_multicast and not any(ip in net for net in _BLOCKED_V6)
    )


def _without_scope(ip: IpAddress) -> IpAddress:
    return IPv6Address(int(ip)) if isinstance(ip, IPv6Address) and ip.scope_id else ip


@dataclass(frozen=True)
class SsrfPolicy:
    """What outbound requests may reach.

    ``allow_networks`` override the blocklist (an IPv4-mapped IPv6 address counts as its IPv4
    address); empty by default and meant for local development and tests only.
    """

    allow_networks: tuple[IpNetwork, ...] = ()
    schemes: frozenset[str] = field(default_factory=lambda: frozenset({"http", "https"}))
    max_redirects: int = 5

    def __post_init__(self) -> None:
        if not self.schemes or not self.schemes <= {"http", "https"}:
            raise ValueError("schemes must be a non-empty subset of {'http', 'https'}")
        if self.max_redirects < 0:
            raise ValueError("max_redirects must be >= 0")

    def is_allowed_ip(self, ip: IpAddress) -> bool:
        ip = _without_scope(ip)
        if self.allow_networks:
            candidates: list[IpAddress] = [ip]
            if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
                candidates.append(ip.ipv4_mapped)
            if any(candidate in net for candidate in candidates for net in self.allow_networks):
                return True
        return _public_v4(ip) if isinstance(ip, IPv4Address) else _public_v6(ip)


def parse_networks(value: str) -> tuple[IpNetwork, ...]:
    """Networks from ``"127.0.0.0/8, ::1/128"`` (a bare address is a /32 or /128); "" is none.

    Raises ``ConfigurationError`` naming the bad item; ``/0`` is refused (it would switch the
    guard off).
    """
    networks: list[IpNetwork] = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        try:
            network = ip_network(item, strict=True)
        except ValueError as exc:
            raise ConfigurationError(
                f"{ALLOW_NETWORKS_ENV}: {item!r} is not a network (expected e.g. 127.0.0.0/8 or ::1/128): {exc}"
            ) from None
        if network.prefixlen == 0:
            raise ConfigurationError(f"{ALLOW_NETWORKS_ENV}: {item!r} would allow every address")
        networks.append(network)
    return tuple(networks)


# ------------------------------------------------------------------------------- URL and hosts

_DEC: Final = frozenset("0123456789")
_OCT: Final = frozenset("01234567")
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_HOSTNAME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")


def _v4_number(part: str) -> int | None:
    """One dotted part as inet_aton/WHATWG read it: 0x hex, leading-0 octal, else decimal."""
    if part[:2] in ("0x", "0X"):
        digits = part[2:]
        if not set(digits) <= _HEX:
            return None
        return int(digits, 16) if digits else 0
    if len(part) > 1 and part[0] == "0":
        return int(part[1:], 8) if set(part[1:]) <= _OCT else None
    return int(part) if part and set(part) <= _DEC else None


def parse_literal_host(host: str) -> IpAddress | None:
    """The IP address ``host`` denotes when it is an IP literal in any accepted spelling, else None.

    IPv4 follows the WHATWG URL host parser (which matches ``inet_aton``): a host whose last label
    is a number is an IPv4 address of 1 to 4 decimal, octal (leading 0) or hex (0x) parts, the last
    part filling the remaining bytes (``127.1``, ``2130706433``, ``0x7f.0.0.1``). A host whose
    last label is not a number (``1.2.3.4.example.com``) is a hostname: None. A host with a colon,
    bracketed or not, is IPv6 (zone id ``%eth0`` or ``%25eth0`` accepted). A host that claims to be
    an IP literal but is malformed (``256.0.0.1``, ``1.2.3.4.5``, ``[::g]``) raises ``InvalidUrl``.
    """
    if host.startswith("[") or ":" in host:
        text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        text = text.replace("%25", "%", 1)
        try:
            return IPv6Address(text)
        except ValueError:
            raise InvalidUrl("malformed IPv6 address", host=host) from None

    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # one trailing dot: "127.0.0.1." is still an address
    last = parts[-1]
    if not last or (not set(last) <= _DEC and _v4_number(last) is None):
        return None  # a hostname
    numbers = [_v4_number(part) for part in parts]
    if len(parts) > 4 or any(number is None for number in numbers):
        raise InvalidUrl("malformed IPv4 address", host=host)
    values = [number for number in numbers if number is not None]
    if any(value > 255 for value in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise InvalidUrl("malformed IPv4 address", host=host)
    address = values[-1]
    for index, value in enumerate(values[:-1]):
        address += value << (8 * (3 - index))
    return IPv4Address(address)


def check_url(url: str | URL, policy: SsrfPolicy) -> URL:
    """The parsed URL if it may be requested as far as can be told without DNS, else an ``SsrfError``.

    Checks the scheme, that there is a host, and, when the host is an IP literal, the address.
    Hostnames are judged when they resolve (``GuardedResolver``). Userinfo is allowed
    (``http://example.com@127.0.0.1/`` has host 127.0.0.1 and is refused as such).
    """
    try:
        parsed = url if isinstance(url, URL) else URL(url)
        scheme = parsed.scheme
        host = parsed.raw_host
    except (ValueError, TypeError):
        raise InvalidUrl("not a valid URL") from None
    if scheme not in policy.schemes:
        allowed = ", ".join(sorted(policy.schemes))
        raise UnsupportedScheme(f"URL scheme must be {allowed}")
    if not parsed.absolute or not host:
        raise InvalidUrl("URL has no host")

    ip = parse_literal_host(host)
    if ip is None:
        if not set(host) <= _HOSTNAME_CHARS or len(host.rstrip(".")) > 253:
            raise InvalidUrl("URL host is not a valid hostname", host=host)
        return parsed
    if not policy.is_allowed_ip(ip):
        raise BlockedAddress("URL host is not an allowed address", host=host)
    canonical = str(ip) if isinstance(ip, IPv4Address) else str(_without_scope(ip))
    if host != canonical:
        # e.g. "0x5db8d822" or a zone id on a routable address: aiohttp would not connect to it
        # as written, or would do so differently; no legitimate partner URL looks like this.
        raise InvalidUrl("URL host is an IP address in non-canonical form", host=host)
    return parsed


# --------------------------------------------------------------------------- connect-level guard


def _allowed_text_ip(policy: SsrfPolicy, text: object) -> bool:
    try:
        ip = ip_address(str(text))
    except ValueError:
        return False  # fail closed on anything unparsable
    return policy.is_allowed_ip(ip)


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner`` (aiohttp's ``ThreadedResolver`` by default) and keeps only allowed
    addresses; raises ``BlockedAddress`` when none remain. Construct inside a running loop."""

    def __init__(self, policy: SsrfPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [result for result in results if _allowed_text_ip(self._policy, result["host"])]
        if not allowed:
            raise BlockedAddress("host does not resolve to an allowed address", host=host)
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def _guarded_socket_factory(policy: SsrfPolicy) -> Callable[[tuple[Any, ...]], socket.socket]:
    def create(addr_info: tuple[Any, ...]) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        if not _allowed_text_ip(policy, sockaddr[0]):
            raise _BlockedConnect()
        return socket.socket(family=family, type=type_, proto=proto)

    return create


class GuardedConnector(aiohttp.TCPConnector):
    """A ``TCPConnector`` whose resolver and socket factory enforce ``policy``."""

    def __init__(self, policy: SsrfPolicy, *, resolver: AbstractResolver | None = None, **kwargs: Any) -> None:
        if "socket_factory" in kwargs:
            raise TypeError("GuardedConnector sets its own socket_factory")
        super().__init__(
            resolver=GuardedResolver(policy, resolver),
            socket_factory=_guarded_socket_factory(policy),
            **kwargs,
        )
        self._ssrf_policy = policy

    @property
    def policy(self) -> SsrfPolicy:
        return self._ssrf_policy


def make_session(
    policy: SsrfPolicy,
    *,
    timeout: aiohttp.ClientTimeout,
    ssl_context: ssl.SSLContext | None = None,
    resolver: AbstractResolver | None = None,
    **connector_kw: Any,
) -> aiohttp.ClientSession:
    """A session whose every connection is guarded. Call inside a running event loop.

    ``ssl_context``: an ``ssl.SSLContext`` (default: aiohttp's verified default). ``resolver``:
    the resolver wrapped by ``GuardedResolver`` (default ``ThreadedResolver``). No cookie jar
    (the session is shared between tenants) and no proxy settings from the environment.
    """
    connector = GuardedConnector(
        policy, resolver=resolver, ssl=ssl_context if ssl_context is not None else True, **connector_kw
    )
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
    )


# ------------------------------------------------------------------------------------ requests

_REFUSED_KWARGS: Final = ("allow_redirects", "max_redirects", "proxy", "proxy_auth", "proxy_headers")
_BODY_HEADERS: Final = ("Content-Type", "Content-Length", "Content-Encoding", "Transfer-Encoding")
_CREDENTIAL_HEADERS: Final = ("Authorization", "Cookie", "Proxy-Authorization")


def _redirected_kwargs(
    method: str, status: int, same_origin: bool, kwargs: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Method and arguments for the next hop, as browsers (and aiohttp) do it."""
    kwargs = dict(kwargs)
    headers: CIMultiDict[str] = CIMultiDict(kwargs.pop("headers", None) or {})
    kwargs.pop("params", None)  # already part of the URL that was redirected
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method = "GET"
        kwargs.pop("data", None)
        kwargs.pop("json", None)
        for name in _BODY_HEADERS:
            headers.popall(name, None)
    if not same_origin:
        kwargs.pop("auth", None)
        for name in _CREDENTIAL_HEADERS:
            headers.popall(name, None)
    kwargs["headers"] = headers
    return method, kwargs


async def _send(
    session: aiohttp.ClientSession, method: str, url: URL, kwargs: dict[str, Any]
) -> aiohttp.ClientResponse:
    try:
        return await session.request(method, url, allow_redirects=False, **kwargs)
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, _BlockedConnect):
            raise BlockedAddress("URL host is not an allowed address", host=url.raw_host) from None
        raise


async def guarded_request(
    session: aiohttp.ClientSession,
    method: str,
    url: str | URL,
    *,
    follow_redirects: bool,
    **kwargs: Any,
) -> aiohttp.ClientResponse:
    """Send one request through ``session`` (from ``make_session``), checking ``url`` first.

    With ``follow_redirects`` 301/302/303/307/308 are followed here, at most
    ``policy.max_redirects`` times (then ``TooManyRedirects``), each ``Location`` (relative ones
    joined to the current URL) checked like the first URL; 303 (except after HEAD) and 301/302
    after POST continue as GET without body; credentials (``auth``, Authorization, Cookie) are
    dropped when the origin changes; a 307/308 re-sends ``data``/``json`` as given (a stream
    cannot be re-sent). Intermediate responses are released. Without it, a 3xx is returned as is.
    The caller owns the returned response (``async with await guarded_request(...) as r``).
    The policy is the one the session's connector enforces.
    """
    connector = session.connector
    if not isinstance(connector, GuardedConnector):
        raise TypeError("guarded_request needs a session from make_session")
    refused = [name for name in _REFUSED_KWARGS if name in kwargs]
    if refused:
        raise TypeError(f"guarded_request does not accept {', '.join(refused)}")
    policy = connector.policy
    current = check_url(url, policy)
    method = method.upper()
    redirects = 0
    while True:
        response = await _send(session, method, current, kwargs)
        location = response.headers.get("Location")
        if not follow_redirects or response.status not in REDIRECT_STATUSES or location is None:
            return response
        response.release()
        if redirects >= policy.max_redirects:
            raise TooManyRedirects(f"more than {policy.max_redirects} redirects", host=current.raw_host)
        redirects += 1
        try:
            target = current.join(URL(location)).with_fragment(None)
        except (ValueError, TypeError):
            raise InvalidUrl("redirect Location is not a valid URL", host=current.raw_host) from None
        target = check_url(target, policy)
        method, kwargs = _redirected_kwargs(method, response.status, target.origin() == current.origin(), kwargs)
        current = target
