"""SSRF guard: address blocklist, literal-IP parsing, URL checks, resolver and socket filtering."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDict

from services.common.errors import CommonError, ConfigurationError
from services.common.ssrf import (
    BlockedAddress,
    GuardedResolver,
    InvalidUrl,
    SsrfError,
    SsrfPolicy,
    TooManyRedirects,
    UnsupportedScheme,
    _BlockedConnect,
    _guarded_socket_factory,
    _redirected_kwargs,
    check_url,
    parse_literal_host,
    parse_networks,
)

DEFAULT = SsrfPolicy()
LOOPBACK_ALLOWED = SsrfPolicy(allow_networks=parse_networks("127.0.0.0/8"))

# ----------------------------------------------------------------------------- URL-level matrix

BLOCKED_URLS = [
    # loopback in every spelling
    "http://127.0.0.1/",
    "http://127.0.0.1:8080/path?q=1",
    "https://127.0.0.1:8443/",
    "http://127.255.255.254/",
    "http://127.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0X7F000001/",
    "http://0x7f.0.0.1/",
    "http://0x7f.1/",
    "http://0177.0.0.1/",
    "http://0177.1/",
    "http://017700000001/",
    "http://127.0.0.1./",
    "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/",  # fullwidth digits, IDNA-normalised to 127.0.0.1
    "http://127\u30020\u30020\u30021/",  # ideographic full stops
    "http://[::1]/",
    "http://[0:0:0:0:0:0:0:1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[0:0:0:0:0:ffff:127.0.0.1]/",
    "http://[::127.0.0.1]/",  # IPv4-compatible (deprecated)
    # cloud metadata / link-local
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/",
    "http://0xa9fea9fe/",
    "http://0251.0376.0251.0376/",
    "http://[::ffff:169.254.169.254]/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fe80::1%eth0]/",
    # private, shared, special-purpose
    "http://10.0.0.1/",
    "http://10.1.2/",  # short form: 10.1.0.2
    "http://10.255.255.255/",
    "http://172.16.0.1/",
    "http://172.31.255.255/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://100.127.255.255/",
    "http://0.0.0.0/",
    "http://0/",
    "http://0.1.2.3/",
    "http://255.255.255.255/",
    "http://4294967295/",
    "http://224.0.0.1/",
    "http://239.255.255.250/",
    "http://192.0.0.8/",
    "http://192.0.0.170/",
    "http://192.0.2.1/",
    "http://198.18.0.1/",
    "http://198.19.255.255/",
    "http://198.51.100.7/",
    "http://203.0.113.9/",
    "http://240.0.0.1/",
    # IPv6 special ranges and IPv4-embedding forms
    "http://[::]/",
    "http://[fd00::1]/",
    "http://[fc00::1]/",
    "http://[fec0::1]/",
    "http://[ff02::1]/",
    "http://[ff0e::1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[64:ff9b::127.0.0.1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[64:ff9b:1::5db8:d822]/",
    "http://[2002:7f00:1::]/",
    "http://[2002:a9fe:a9fe::1]/",
    "http://[2002:c0a8:101::1]/",
    "http://[2001::1]/",  # Teredo
    "http://[2001:db8::1]/",
    "http://[3fff::1]/",
    "http://[100::1]/",
    # userinfo does not change the host
    "http://example.com@127.0.0.1/",
    "http://user:pass@169.254.169.254/",
    "http://example.com:80@10.0.0.1/",
    "http://93.184.216.34@127.0.0.1/",
]


@pytest.mark.parametrize("url", BLOCKED_URLS)
def test_blocked_urls(url: str) -> None:
    with pytest.raises(BlockedAddress) as caught:
        check_url(url, DEFAULT)
    assert caught.value.code == "blocked_address"
    assert isinstance(caught.value, CommonError)


ALLOWED_URLS = [
    "http://93.184.216.34/",
    "https://93.184.216.34:8443/rec.wav?sig=abc",
    "http://8.8.8.8/",
    "http://[2606:4700::1111]/",
    "https://[2606:4700:4700::1111]:443/x",
    "http://[::ffff:5db8:d822]/",  # IPv4-mapped public address
    "http://[64:ff9b::5db8:d822]/",  # NAT64 of a public address
    "http://[2002:5db8:d822::1]/",  # 6to4 of a public address
    "https://example.com/rec.wav",
    "https://EXAMPLE.com./rec.wav",
    "https://recordings.partner.example/a/b.mp3?x=1#frag",
    "https://user:secret@example.com/rec.wav",
    "http://127.0.0.1:80@example.com/",  # host is example.com
    "http://1.2.3.4.example.com/",  # a hostname, not an IP
    "http://0x7f.example.com/",
    "http://bücher.example/",
    "http://under_score.example/",
]


@pytest.mark.parametrize("url", ALLOWED_URLS)
def test_allowed_urls(url: str) -> None:
    assert check_url(url, DEFAULT).absolute


def test_check_url_returns_the_parsed_host() -> None:
    assert check_url("http://127.0.0.1:80@example.com/", DEFAULT).raw_host == "example.com"
    assert check_url("http://bücher.example/", DEFAULT).raw_host == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/rec.wav",
        "gopher://127.0.0.1:70/_GET",
        "gopher://example.com/",
        "data:text/plain,hello",
        "javascript:alert(1)",
        "ws://example.com/",
        "wss://example.com/",
        "dict://127.0.0.1:11211/",
        "ldap://example.com/",
        "//example.com/rec.wav",
        "/relative/path",
    ],
)
def test_unsupported_schemes(url: str) -> None:
    with pytest.raises(UnsupportedScheme) as caught:
        check_url(url, DEFAULT)
    assert caught.value.code == "unsupported_scheme"


def test_https_only_policy_refuses_http() -> None:
    notifier = SsrfPolicy(schemes=frozenset({"https"}), max_redirects=0)
    assert check_url("https://example.com/hook", notifier).host == "example.com"
    with pytest.raises(UnsupportedScheme):
        check_url("http://example.com/hook", notifier)


@pytest.mark.parametrize(
    "url",
    [
        "http:///path",
        "http://",
        "http://256.0.0.1/",
        "http://1.2.3.4.5/",
        "http://127..1/",
        "http://08.0.0.1/",
        "http://0x1g.0.0.1/",
        "http://4294967296/",
        "http://1.2.16777216/",
        "http://example.123/",
        "http://[::g]/",
        "http://a b/",
        "http://127.0.0.1%00.example.com/",
        "http://%31%32%37.0.0.1/",
        "http://127.0.0.1\\@example.com/",
        "http://host:99999/",
        # allowed addresses, but not in canonical form: refused rather than guessed at
        "http://0x5db8d822/",
        "http://1572395042/",
        "http://93.184.216.34./",
        "http://093.184.216.34/",
        "http://[2606:4700::1111%25eth0]/",
    ],
)
def test_invalid_urls(url: str) -> None:
    with pytest.raises(InvalidUrl) as caught:
        check_url(url, DEFAULT)
    assert caught.value.code == "invalid_url"


def test_check_url_accepts_a_parsed_url() -> None:
    url = check_url("https://example.com/a", DEFAULT)
    assert check_url(url, DEFAULT) is url


# --------------------------------------------------------------------------------- is_allowed_ip


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", False),
        ("127.8.9.10", False),
        ("10.0.0.1", False),
        ("172.16.0.1", False),
        ("172.15.255.255", True),
        ("172.32.0.0", True),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("100.63.255.255", True),
        ("100.128.0.0", True),
        ("0.0.0.0", False),
        ("0.255.255.255", False),
        ("255.255.255.255", False),
        ("224.0.0.1", False),
        ("233.252.0.1", False),
        ("192.0.0.9", False),
        ("192.0.0.10", False),
        ("192.88.99.1", False),
        ("198.18.0.1", False),
        ("240.0.0.1", False),
        ("93.184.216.34", True),
        ("1.1.1.1", True),
        ("::", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:93.184.216.34", True),
        ("::7f00:1", False),
        ("::5db8:d822", False),  # IPv4-compatible, deprecated even for public addresses
        ("64:ff9b::7f00:1", False),
        ("64:ff9b::a00:1", False),
        ("64:ff9b::5db8:d822", True),
        ("64:ff9b:1::5db8:d822", False),
        ("2002:7f00:1::", False),
        ("2002:a00:1::1", False),
        ("2002:5db8:d822::1", True),
        ("2001::1", False),
        ("2001:2::1", False),
        ("2001:db8::1", False),
        ("3fff::1", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("fe80::1", False),
        ("fe80::1%eth0", False),
        ("fec0::1", False),
        ("ff02::1", False),
        ("ff0e::1", False),
        ("100::1", False),
        ("4000::1", False),  # outside global unicast 2000::/3
        ("2606:4700::1111", True),
        ("2a00:1450:4001::200e", True),
    ],
)
def test_is_allowed_ip(address: str, allowed: bool) -> None:
    assert DEFAULT.is_allowed_ip(ip_address(address)) is allowed


def test_allowlist_lets_loopback_through() -> None:
    assert LOOPBACK_ALLOWED.is_allowed_ip(IPv4Address("127.0.0.1"))
    assert LOOPBACK_ALLOWED.is_allowed_ip(IPv4Address("127.9.9.9"))
    assert LOOPBACK_ALLOWED.is_allowed_ip(IPv6Address("::ffff:127.0.0.1"))  # same destination
    assert not LOOPBACK_ALLOWED.is_allowed_ip(IPv6Address("::1"))
    assert not LOOPBACK_ALLOWED.is_allowed_ip(IPv4Address("10.0.0.1"))
    assert not LOOPBACK_ALLOWED.is_allowed_ip(IPv4Address("169.254.169.254"))
    assert LOOPBACK_ALLOWED.is_allowed_ip(IPv4Address("93.184.216.34"))

    assert check_url("http://127.0.0.1:8000/", LOOPBACK_ALLOWED).port == 8000
    assert check_url("http://[::ffff:7f00:1]/", LOOPBACK_ALLOWED).raw_host == "::ffff:7f00:1"
    with pytest.raises(BlockedAddress):
        check_url("http://[::1]/", LOOPBACK_ALLOWED)
    with pytest.raises(BlockedAddress):
        check_url("http://10.0.0.1/", LOOPBACK_ALLOWED)
    with pytest.raises(InvalidUrl):  # allowed address, non-canonical spelling
        check_url("http://127.1/", LOOPBACK_ALLOWED)


def test_allowlist_is_exact() -> None:
    policy = SsrfPolicy(allow_networks=parse_networks("127.0.0.1/32,::1"))
    assert policy.is_allowed_ip(IPv4Address("127.0.0.1"))
    assert policy.is_allowed_ip(IPv6Address("::1"))
    assert not policy.is_allowed_ip(IPv4Address("127.0.0.2"))


def test_allowlist_is_off_by_default() -> None:
    assert SsrfPolicy().allow_networks == ()
    assert not SsrfPolicy().is_allowed_ip(IPv4Address("127.0.0.1"))


# ---------------------------------------------------------------------------- parse_literal_host


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("10.1.2", "10.1.0.2"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0x7f.0x0.0x0.0x1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0177.0x0.0.01", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("00", "0.0.0.0"),
        ("2852039166", "169.254.169.254"),
        ("4294967295", "255.255.255.255"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("[::ffff:7f00:1]", "::ffff:7f00:1"),
        ("::ffff:7f00:1", "::ffff:7f00:1"),
        ("[fe80::1%eth0]", "fe80::1%eth0"),
        ("fe80::1%25eth0", "fe80::1%eth0"),
        ("[2606:4700::1111]", "2606:4700::1111"),
    ],
)
def test_parse_literal_host(host: str, expected: str) -> None:
    assert parse_literal_host(host) == ip_address(expected)


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "1.2.3.4.example.com",
        "0x7f.example",
        "localhost",
        "1e100",
        "0xg",
        "a.0xzz",
        "xn--bcher-kva.example",
    ],
)
def test_parse_literal_host_hostnames(host: str) -> None:
    assert parse_literal_host(host) is None


@pytest.mark.parametrize(
    "host",
    ["256.0.0.1", "1.2.3.4.5", "127..1", ".1", "08", "09.1", "1.2.3.256", "1.2.65536", "1.16777216", "4294967296",
     "example.1", "[::g]", "::g", "[1::2::3]", "1:2"],
)  # fmt: skip
def test_parse_literal_host_malformed(host: str) -> None:
    with pytest.raises(InvalidUrl):
        parse_literal_host(host)


def test_parse_literal_host_agrees_with_inet_aton() -> None:
    # Every form inet_aton (what getaddrinfo uses for numeric hosts) accepts means the same here.
    for host in ["127.1", "2130706433", "0x7f000001", "0x7f.0.0.1", "0177.0.0.1", "017700000001", "10.1.2", "0"]:
        assert parse_literal_host(host) == IPv4Address(socket.inet_aton(host))


# -------------------------------------------------------------------------------- configuration


def test_parse_networks() -> None:
    assert parse_networks("") == ()
    assert parse_networks("  ") == ()
    assert parse_networks(" 127.0.0.0/8 , ::1/128 ,") == (ip_network("127.0.0.0/8"), ip_network("::1/128"))
    assert parse_networks("127.0.0.1") == (ip_network("127.0.0.1/32"),)


@pytest.mark.parametrize("value", ["nope", "127.0.0.1/8", "10.0.0.0/33", "127.0.0.0/8,bad", "0.0.0.0/0", "::/0"])
def test_parse_networks_errors(value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_networks(value)
    assert "SSRF_ALLOW_NETWORKS" in str(caught.value)


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        SsrfPolicy(schemes=frozenset({"ftp"}))
    with pytest.raises(ValueError):
        SsrfPolicy(schemes=frozenset())
    with pytest.raises(ValueError):
        SsrfPolicy(max_redirects=-1)


def test_error_codes_and_messages() -> None:
    assert [cls.code for cls in (SsrfError, BlockedAddress, UnsupportedScheme, TooManyRedirects, InvalidUrl)] == [
        "ssrf_refused",
        "blocked_address",
        "unsupported_scheme",
        "too_many_redirects",
        "invalid_url",
    ]
    with pytest.raises(UnsupportedScheme) as scheme:
        check_url("file:///etc/passwd", DEFAULT)
    assert "passwd" not in str(scheme.value)
    with pytest.raises(BlockedAddress) as blocked:
        check_url("http://user:hunter2@10.0.0.1/secret", DEFAULT)
    assert str(blocked.value) == "URL host is not an allowed address: 10.0.0.1"
    assert blocked.value.host == "10.0.0.1"


# ----------------------------------------------------------------------- resolver, socket factory


class FixedResolver(AbstractResolver):
    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for address in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_resolver_drops_blocked_addresses() -> None:
    inner = FixedResolver("10.0.0.1", "93.184.216.34", "::1", "fe80::1%eth0", "not-an-ip", "2606:4700::1111")
    results = await GuardedResolver(DEFAULT, inner).resolve("rebind.example", 443)
    assert [r["host"] for r in results] == ["93.184.216.34", "2606:4700::1111"]


async def test_resolver_refuses_when_nothing_is_left() -> None:
    resolver = GuardedResolver(DEFAULT, FixedResolver("127.0.0.1", "169.254.169.254"))
    with pytest.raises(BlockedAddress) as caught:
        await resolver.resolve("rebind.example", 80)
    assert str(caught.value) == "host does not resolve to an allowed address: rebind.example"


async def test_resolver_localhost_is_blocked_unless_allowed() -> None:
    with pytest.raises(BlockedAddress):
        await GuardedResolver(DEFAULT).resolve("localhost", 80)
    results = await GuardedResolver(SsrfPolicy(allow_networks=parse_networks("127.0.0.0/8,::1"))).resolve(
        "localhost", 80, socket.AF_UNSPEC
    )
    assert results
    assert {ip_address(r["host"]) for r in results} <= {IPv4Address("127.0.0.1"), IPv6Address("::1")}


@pytest.mark.parametrize(
    "sockaddr",
    [("127.0.0.1", 80), ("10.0.0.1", 80), ("::1", 80, 0, 0), ("fe80::1%eth0", 80, 0, 2), ("garbage", 80)],
)
def test_socket_factory_refuses_blocked_addresses(sockaddr: tuple[object, ...]) -> None:
    family = socket.AF_INET6 if ":" in str(sockaddr[0]) else socket.AF_INET
    create = _guarded_socket_factory(DEFAULT)
    with pytest.raises(_BlockedConnect):
        create((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))


def test_socket_factory_creates_sockets_for_allowed_addresses() -> None:
    create = _guarded_socket_factory(DEFAULT)
    sock = create((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("93.184.216.34", 443)))
    try:
        assert sock.family == socket.AF_INET
        assert sock.type == socket.SOCK_STREAM
    finally:
        sock.close()


# ------------------------------------------------------------------------------------ redirects


def test_redirect_303_and_post_301_302_become_get() -> None:
    kwargs = {"data": b"x", "json": None, "params": {"a": "1"}, "headers": {"Content-Type": "text/plain", "X-A": "1"}}
    for status, method in [(303, "POST"), (303, "PUT"), (301, "POST"), (302, "POST")]:
        new_method, new_kwargs = _redirected_kwargs(method, status, True, kwargs)
        assert new_method == "GET"
        assert "data" not in new_kwargs
        assert "json" not in new_kwargs
        assert "params" not in new_kwargs
        assert new_kwargs["headers"] == CIMultiDict({"X-A": "1"})


def test_redirect_307_308_keep_method_and_body() -> None:
    for status in (307, 308):
        method, kwargs = _redirected_kwargs("POST", status, True, {"data": b"x", "headers": {"Content-Type": "a/b"}})
        assert method == "POST"
        assert kwargs["data"] == b"x"
        assert kwargs["headers"]["Content-Type"] == "a/b"
    assert _redirected_kwargs("HEAD", 303, True, {})[0] == "HEAD"
    assert _redirected_kwargs("PUT", 302, True, {})[0] == "PUT"


def test_redirect_across_origins_drops_credentials() -> None:
    kwargs = {"auth": object(), "headers": [("Authorization", "Bearer t"), ("Cookie", "c=1"), ("X-Keep", "1")]}
    _, same = _redirected_kwargs("GET", 302, True, kwargs)
    assert "auth" in same
    assert same["headers"]["Authorization"] == "Bearer t"
    _, other = _redirected_kwargs("GET", 302, False, kwargs)
    assert "auth" not in other
    assert other["headers"] == CIMultiDict({"X-Keep": "1"})
