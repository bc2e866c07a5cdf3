"""The SSRF matrix: every way a partner can point us at an internal address, through each layer
that sees a partner's URL, with the production policy (no development allowlist).

One table (``MATRIX``) of hosts and schemes, each with what every layer must answer:

- **gateway** (ingestion, the real app over ASGI): the URL is validated as a URL, not as an
  address, so literal internal addresses are *accepted* here (they are refused downstream); what
  is not an absolute http(s) URL (other schemes, a zone id, percent-encoded or non-ASCII hosts, a
  trailing dot) is refused with 422 and the field's own message;
- **fetcher** (``handle_ingested`` with a session built as the service builds it, real PostgreSQL):
  a ``calls.failed.v1`` with stage ``fetch``, the refusal's code, not retryable;
- **notifier** (its handler, then its dispatcher with the service's own ``callback_session``, real
  PostgreSQL): a ``failed`` delivery with the refusal's code, without an attempt when the URL alone
  tells (scheme, literal address), after one attempt refused at connect when only the resolved
  address does (``localhost``), never retried.

Every layer runs the whole table against real canaries (``tests.support.canary``): listeners on
127.0.0.1, 127.0.0.2 and ::1 (one port, the port of every URL that names one), and a spy on every
``connect()`` the process makes; both must see nothing. Redirects: the fetcher follows them, so a
recording host that redirects to each internal target is tested (the development allowlist lets
exactly that host's address through, 127.0.0.3/32, so the targets stay blocked); the notifier
never follows them, so a receiver redirecting to each target (even an allowed one) is tested.

Builds on ``tests/unit/test_ssrf.py`` (the parser and blocklist, every spelling),
``tests/integration/test_ssrf_http.py`` (the guard against real servers) and the fetcher's and
notifier's own SSRF tests (one case each); this file is the cross-layer table.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from pydantic import SecretStr

from schemas.events import CallFailed
from services.common import ssrf
from services.common.blobs import FilesystemBlobStore
from services.common.crypto import SecretBox
from services.common.db import create_pool
from services.common.settings import DEV_SECRETS_ENCRYPTION_KEYS
from services.fetcher.handlers import FetchDeps, handle_ingested
from services.fetcher.repository import FetcherRepository
from services.notifier import handlers as notifier_handlers
from services.notifier.app import callback_session
from services.notifier.config import NotifierSettings
from services.notifier.dispatcher import Dispatcher, DispatchSettings, RetryPolicy
from services.notifier.handlers import NotifyDeps
from services.notifier.repository import Delivery, NotifierRepository
from tests.factories import batch, ingested_event
from tests.integration.fetcher.conftest import LIMITS
from tests.support.canary import Canaries, ConnectSpy, canaries, connect_spy
from tests.support.gateway import INGEST, create_partner
from tests.support.receivers import TestCa, receiver
from tests.support.recordings import RecordingHost, recording_host
from tests.unit.notifier.factories import analyzed_event

REFUSED = "422"
ACCEPTED = "accepted"
RECORDING_422 = "recording_url must be an absolute http(s) URL"
CALLBACK_422 = "callback_url must be a URL starting with https://"
BLOCKED, INVALID, SCHEME = "blocked_address", "invalid_url", "unsupported_scheme"


@dataclass(frozen=True)
class Row:
    """One hostile target. ``url`` is the recording URL (``{p}``: the canaries' port); the
    callback URL is the same with ``https`` (other schemes are kept as they are)."""

    label: str
    group: str
    url: str
    gateway: str = ACCEPTED  # for both fields: ACCEPTED or REFUSED (422 with the field's message)
    fetcher: str = BLOCKED
    notifier: str = BLOCKED
    notifier_attempts: int = 0  # 1 when only the resolved address tells (refused at connect)
    hosts: tuple[str, ...] = ()  # addresses a leak would connect to (for the spy), beyond the port

    def recording(self, port: int) -> str:
        return self.url.format(p=port)

    def callback(self, port: int) -> str:
        url = self.url.format(p=port)
        return "https://" + url.removeprefix("http://") if url.startswith("http://") else url


MATRIX = [
    # loopback, every spelling (the canaries listen on 127.0.0.1, 127.0.0.2 and ::1)
    Row("127.0.0.1", "loopback", "http://127.0.0.1:{p}/a.mp3"),
    Row("127.1 (short form)", "loopback", "http://127.1:{p}/a.mp3"),
    Row("0x7f000001 (hex)", "loopback", "http://0x7f000001:{p}/a.mp3"),
    Row("2130706433 (decimal)", "loopback", "http://2130706433:{p}/a.mp3"),
    Row("017700000001 (octal)", "loopback", "http://017700000001:{p}/a.mp3"),
    Row("0177.0.0.1 (dotted octal)", "loopback", "http://0177.0.0.1:{p}/a.mp3"),
    Row("0x7f.0.0.1 (dotted hex)", "loopback", "http://0x7f.0.0.1:{p}/a.mp3"),
    Row("127.0.0.2 (other loopback)", "loopback", "http://127.0.0.2:{p}/a.mp3"),
    Row("2130706434 (127.0.0.2, decimal)", "loopback", "http://2130706434:{p}/a.mp3"),
    Row("[::1]", "loopback", "http://[::1]:{p}/a.mp3"),
    Row("[::ffff:127.0.0.1] (IPv4-mapped)", "loopback", "http://[::ffff:127.0.0.1]:{p}/a.mp3"),
    Row("[::ffff:7f00:1] (IPv4-mapped, hex)", "loopback", "http://[::ffff:7f00:1]:{p}/a.mp3"),
    Row("[64:ff9b::7f00:1] (NAT64)", "loopback", "http://[64:ff9b::7f00:1]:{p}/a.mp3"),
    Row("[2002:7f00:1::1] (6to4)", "loopback", "http://[2002:7f00:1::1]:{p}/a.mp3"),
    Row("partner.example.com@127.0.0.1 (userinfo)", "loopback", "http://partner.example.com@127.0.0.1:{p}/a.mp3"),
    Row("localhost (name)", "loopback", "http://localhost:{p}/a.mp3", notifier_attempts=1),
    # unspecified: Linux connects these to the local host
    Row("0.0.0.0", "unspecified", "http://0.0.0.0:{p}/a.mp3"),
    Row("0 (short form)", "unspecified", "http://0:{p}/a.mp3"),
    Row("[::]", "unspecified", "http://[::]:{p}/a.mp3"),
    # cloud metadata (link-local), default port as an attacker would write it
    Row("169.254.169.254", "metadata", "http://169.254.169.254/latest/meta-data/", hosts=("169.254.169.254",)),
    Row("2852039166 (metadata, decimal)", "metadata", "http://2852039166/latest/", hosts=("169.254.169.254",)),
    Row("[::ffff:169.254.169.254]", "metadata", "http://[::ffff:169.254.169.254]/latest/", hosts=("169.254.169.254",)),
    Row("[fd00:ec2::254] (AWS IPv6 metadata)", "metadata", "http://[fd00:ec2::254]/latest/", hosts=("fd00:ec2::254",)),
    # private ranges
    Row("10.0.0.1", "private", "http://10.0.0.1:{p}/a.mp3", hosts=("10.0.0.1",)),
    Row("10.255.255.254", "private", "http://10.255.255.254/a.mp3", hosts=("10.255.255.254",)),
    Row("012.0.0.1 (10.0.0.1, octal)", "private", "http://012.0.0.1/a.mp3", hosts=("10.0.0.1",)),
    Row("172.16.0.1", "private", "http://172.16.0.1/a.mp3", hosts=("172.16.0.1",)),
    Row("172.31.255.254", "private", "http://172.31.255.254/a.mp3", hosts=("172.31.255.254",)),
    Row("192.168.0.1", "private", "http://192.168.0.1:{p}/a.mp3", hosts=("192.168.0.1",)),
    Row("0xc0a80101 (192.168.1.1, hex)", "private", "http://0xc0a80101/a.mp3", hosts=("192.168.1.1",)),
    Row("3232235777 (192.168.1.1, decimal)", "private", "http://3232235777/a.mp3", hosts=("192.168.1.1",)),
    # shared address space (carrier-grade NAT)
    Row("100.64.0.1", "shared", "http://100.64.0.1/a.mp3", hosts=("100.64.0.1",)),
    Row("100.127.255.254", "shared", "http://100.127.255.254/a.mp3", hosts=("100.127.255.254",)),
    # IPv6 unique local and link-local
    Row("[fc00::1] (ULA)", "ipv6-ula", "http://[fc00::1]:{p}/a.mp3", hosts=("fc00::1",)),
    Row("[fdff:ffff::1] (ULA)", "ipv6-ula", "http://[fdff:ffff::1]/a.mp3", hosts=("fdff:ffff::1",)),
    Row("[fe80::1] (link-local)", "ipv6-link-local", "http://[fe80::1]/a.mp3", hosts=("fe80::1",)),
    Row(
        "[fe80::1%25eth0] (link-local, zone id)",
        "ipv6-link-local",
        "http://[fe80::1%25eth0]/a.mp3",
        gateway=REFUSED,
        hosts=("fe80::1",),
    ),
    # other encodings of 127.0.0.1
    Row("%31%32%37.0.0.1 (percent-encoded)", "encoded", "http://%31%32%37.0.0.1:{p}/a.mp3", REFUSED, INVALID, INVALID),
    Row("fullwidth digits", "encoded", "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:{p}/a.mp3", REFUSED),
    Row("127.0.0.1. (trailing dot)", "encoded", "http://127.0.0.1.:{p}/a.mp3", REFUSED),
    # schemes other than http(s)
    Row("file://", "scheme", "file:///etc/passwd", REFUSED, SCHEME, SCHEME),
    Row("gopher://", "scheme", "gopher://127.0.0.1:{p}/_GET%20/", REFUSED, SCHEME, SCHEME),
    Row("ftp://", "scheme", "ftp://127.0.0.1:{p}/a.mp3", REFUSED, SCHEME, SCHEME),
    Row("dict://", "scheme", "dict://127.0.0.1:{p}/info", REFUSED, SCHEME, SCHEME),
    Row("data:", "scheme", "data:audio/mpeg;base64,SUQzBAAAAAAA", REFUSED, SCHEME, SCHEME),
]


def matrix_table() -> str:
    """The matrix as text (printed by the tests with ``-s``)."""
    lines = [f"{'target':44} {'group':16} {'gateway':9} {'fetcher':19} notifier"]
    for row in MATRIX:
        notifier = f"{row.notifier} ({'at connect' if row.notifier_attempts else 'no attempt'})"
        lines.append(f"{row.label:44} {row.group:16} {row.gateway:9} {row.fetcher:19} {notifier}")
    return "\n".join(lines)


@dataclass
class Witnesses:
    canaries: Canaries
    spy: ConnectSpy

    async def assert_untouched(self, *extra_hosts: str) -> None:
        """Nothing connected to a canary port or to any matrix address, and no listener accepted."""
        hosts = {h for row in MATRIX for h in row.hosts} | set(extra_hosts)
        assert self.spy.towards(ports=[self.canaries.port], hosts=hosts) == []
        await self.canaries.settle()
        assert self.canaries.intrusions == []


@pytest.fixture
async def witnesses() -> AsyncIterator[Witnesses]:
    async with canaries() as listening:
        with connect_spy() as spy:
            yield Witnesses(listening, spy)


def _skip_without_ipv6(w: Witnesses) -> None:
    if not w.canaries.has("::1"):
        pytest.skip("no IPv6 loopback: the [::1] canary cannot listen")


# ------------------------------------------------------------------------------------- canaries


async def test_the_witnesses_see_what_the_guard_lets_through(witnesses: Witnesses) -> None:
    """The control: with loopback allowed (development), every canary is reached and the spy sees
    every connect, so their silence in the tests below means something."""
    policy = ssrf.SsrfPolicy(allow_networks=ssrf.parse_networks("127.0.0.0/8,::1/128"))
    async with ssrf.make_session(policy, timeout=aiohttp.ClientTimeout(total=10)) as session:
        for host in witnesses.canaries.hosts:
            url = f"http://{f'[{host}]' if ':' in host else host}:{witnesses.canaries.port}/"
            with pytest.raises(aiohttp.ClientError):  # the canary hangs up without answering
                await ssrf.guarded_request(session, "GET", url, follow_redirects=False)
    # (aiohttp retries an idempotent request once on a fresh connection, so each is reached twice.)
    reached = witnesses.spy.towards(ports=[witnesses.canaries.port])
    assert {h for h, _ in reached} == set(witnesses.canaries.hosts)
    await witnesses.canaries.settle()
    assert {i.listener for i in witnesses.canaries.intrusions} == set(witnesses.canaries.hosts)
    assert len(witnesses.canaries.intrusions) == len(reached)


# -------------------------------------------------------------------------------------- gateway


async def test_gateway_accepts_addresses_and_refuses_what_is_not_an_http_url(
    client, database_url: str, witnesses: Witnesses
) -> None:  # type: ignore[no-untyped-def]
    """The gateway judges URLs, not addresses (DNS can change after ingestion, so the address is
    judged where it is connected to). Its verdict on each target, for both fields."""
    partner = await create_partner(database_url, rate_limit=100_000)
    port = witnesses.canaries.port
    seen, expected = {}, {}
    for row in MATRIX:
        verdicts = []
        for field, body, message in (
            ("call.recording_url", batch(1, call__recording_url=row.recording(port)), RECORDING_422),
            ("callback_url", batch(1, callback_url=row.callback(port)), CALLBACK_422),
        ):
            response = await client.post(INGEST, json=body, headers=partner.headers())
            if response.status_code == 200:
                assert response.json()["data"]["calls"][0]["status"] == "accepted"
                verdicts.append(ACCEPTED)
            else:
                answer = response.json()
                assert answer["errors"] == [{"field": f"data[0].{field}", "message": message}], answer
                verdicts.append(str(response.status_code))
        seen[row.label] = tuple(verdicts)
        expected[row.label] = (row.gateway, row.gateway)
    assert seen == expected
    # A plain-http callback is a URL the gateway refuses too (the notifier would: https_required).
    response = await client.post(
        INGEST, json=batch(1, callback_url=f"http://127.0.0.1:{port}/cb"), headers=partner.headers()
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "data[0].callback_url", "message": CALLBACK_422}]
    await witnesses.assert_untouched()
    print("\n" + matrix_table())  # noqa: T201


# -------------------------------------------------------------------------------------- fetcher


async def _refuse(path: Path) -> object:
    raise AssertionError(f"a refused recording reached the probe: {path}")


@pytest.fixture
async def fetch_deps(database_url: str, tmp_path: Path) -> AsyncIterator[FetchDeps]:
    """The fetcher's dependencies as ``services.fetcher.app`` builds them, with the production
    policy (``SSRF_ALLOW_NETWORKS`` unset) and the system resolver."""
    pool = await create_pool(SecretStr(database_url), "fetcher", min_size=1, max_size=2)
    session = ssrf.make_session(
        ssrf.SsrfPolicy(allow_networks=ssrf.parse_networks("")),
        timeout=aiohttp.ClientTimeout(total=30, connect=5, sock_read=10),
    )
    blobs = FilesystemBlobStore(tmp_path / "blobs")
    yield FetchDeps(
        repo=FetcherRepository(pool),
        blobs=blobs,
        session=session,
        probe=_refuse,  # type: ignore[arg-type]
        spool_dir=tmp_path / "blobs" / ".incoming",
        limits=LIMITS,
    )
    await session.close()
    await pool.close()


async def fetch_failure(deps: FetchDeps, url: str) -> str:
    [result] = await handle_ingested(ingested_event(call__recording_url=url), deps)
    assert isinstance(result, CallFailed), result
    assert result.payload.stage == "fetch" and result.payload.retryable is False, result.payload
    return result.payload.code


async def test_fetcher_refuses_every_target(fetch_deps: FetchDeps, witnesses: Witnesses) -> None:
    _skip_without_ipv6(witnesses)
    port = witnesses.canaries.port
    seen = {row.label: await fetch_failure(fetch_deps, row.recording(port)) for row in MATRIX}
    assert seen == {row.label: row.fetcher for row in MATRIX}
    await witnesses.assert_untouched()


class PartnerDns(AbstractResolver):
    """The partner's recording host by name (``recordings.partner.example``), every other name
    from the system resolver: a public-looking host that happens to live on 127.0.0.3."""

    NAME = "recordings.partner.example"

    def __init__(self, address: str) -> None:
        self.address = address
        self.system = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host == self.NAME:
            return [ResolveResult(hostname=host, host=self.address, port=port, family=socket.AF_INET, proto=0, flags=0)]
        return await self.system.resolve(host, port, family)

    async def close(self) -> None:
        await self.system.close()


REDIRECT_HOST = "127.0.0.3"
REDIRECT_TARGETS = [
    ("http://127.0.0.1:{p}/internal", "blocked_address"),
    ("http://127.0.0.2:{p}/internal", "blocked_address"),
    ("http://[::1]:{p}/internal", "blocked_address"),
    ("http://localhost:{p}/internal", "blocked_address"),
    ("http://0x7f000001:{p}/internal", "blocked_address"),
    ("http://[::ffff:127.0.0.1]:{p}/internal", "blocked_address"),
    ("http://0.0.0.0:{p}/internal", "blocked_address"),
    ("//127.0.0.1:{p}/scheme-relative", "blocked_address"),
    ("http://169.254.169.254/latest/meta-data/iam/security-credentials/", "blocked_address"),
    ("http://10.0.0.1:{p}/internal", "blocked_address"),
    ("http://172.16.0.1/internal", "blocked_address"),
    ("http://192.168.1.1/internal", "blocked_address"),
    ("http://100.64.0.1/internal", "blocked_address"),
    ("http://[fc00::1]/internal", "blocked_address"),
    ("http://[fe80::1]/internal", "blocked_address"),
    ("file:///etc/passwd", "unsupported_scheme"),
    ("gopher://127.0.0.1:{p}/_GET%20/", "unsupported_scheme"),
]


@pytest.fixture
async def partner_host() -> AsyncIterator[RecordingHost]:
    try:
        async with recording_host(REDIRECT_HOST) as host:
            yield host
    except OSError:
        pytest.skip(f"cannot listen on {REDIRECT_HOST}")


async def test_fetcher_refuses_a_redirect_from_an_allowed_host_to_every_target(
    fetch_deps: FetchDeps, partner_host: RecordingHost, witnesses: Witnesses
) -> None:
    """The recording host is allowed by the development allowlist for exactly its own address
    (127.0.0.3/32: the canaries on 127.0.0.1, 127.0.0.2 and ::1 stay blocked) and reached by a
    public-looking name; it redirects to each target. The control (a redirect to its own missing
    file, answered 404) shows redirects are followed, so each refusal is the guard's."""
    _skip_without_ipv6(witnesses)
    port = witnesses.canaries.port
    policy = ssrf.SsrfPolicy(allow_networks=ssrf.parse_networks(f"{REDIRECT_HOST}/32"))
    dns = PartnerDns(REDIRECT_HOST)
    own_port = int(partner_host.base_url.rsplit(":", 1)[1])
    base = f"http://{PartnerDns.NAME}:{own_port}/r"
    async with ssrf.make_session(policy, timeout=aiohttp.ClientTimeout(total=30, connect=5), resolver=dns) as session:
        deps = dataclasses.replace(fetch_deps, session=session)
        partner_host.redirects["control"] = f"{base}/missing.mp3"
        assert await fetch_failure(deps, f"{base}/control") == "http_status"
        assert partner_host.hits == {"control": 1, "missing.mp3": 1}

        seen, expected = {}, {}
        for index, (target, code) in enumerate(REDIRECT_TARGETS):
            name = f"to-{index}"
            partner_host.redirects[name] = target.format(p=port)
            seen[target] = await fetch_failure(deps, f"{base}/{name}")
            expected[target] = code
            assert partner_host.hits[name] == 1
        # Two hops: first to the host itself (allowed, followed), then inside.
        partner_host.redirects["hop"] = f"{base}/to-0"
        assert await fetch_failure(deps, f"{base}/hop") == "blocked_address"
        assert (partner_host.hits["hop"], partner_host.hits["to-0"]) == (1, 2)
    assert seen == expected
    await witnesses.assert_untouched()


# ------------------------------------------------------------------------------------- notifier

ONE_ROUND = DispatchSettings(
    concurrency=16,
    per_partner=16,
    poll_interval_s=0.1,
    lease_s=30,
    timeout_s=5,
    retry=RetryPolicy(attempts=4, base_s=0.2, factor=3, max_s=30, jitter=0.2, retry_after_max_s=10),
)


@dataclass
class Notifier:
    repo: NotifierRepository
    deps: NotifyDeps
    tls: TestCa

    async def dispatch(self, settings: NotifierSettings, run: DispatchSettings = ONE_ROUND) -> Dispatcher:
        """A dispatcher over the service's own session factory (``callback_session``)."""
        session = callback_session(settings, self.tls.client_context())
        dispatcher = Dispatcher(self.repo, session, run, topic=lambda base: base)
        dispatcher.start()
        return dispatcher

    async def final(self, partner_id: str, call_ids: list[str], timeout: float = 30.0) -> dict[str, Delivery]:
        """Each call's delivery once none is pending or retrying any more (or, after ``timeout``,
        as they are: the comparison that follows shows which is still open)."""
        deadline = time.monotonic() + timeout
        while True:
            found = {c: await self.repo.find(partner_id, c, "result") for c in call_ids}
            settled = {c: d for c, d in found.items() if d is not None}
            done = len(settled) == len(call_ids) and all(d.state in ("failed", "delivered") for d in settled.values())
            if done or time.monotonic() > deadline:
                assert len(settled) == len(call_ids), "a delivery was not recorded"
                return settled
            await asyncio.sleep(0.05)

    async def outcome(self, delivery: Delivery) -> tuple[str, str, list[tuple[int | None, str | None]]]:
        """(state, the code of its last error, every attempt as (status, error code))."""
        attempts = await self.repo.attempts(delivery.delivery_id)
        code = (delivery.last_error or "").split(":", 1)[0]
        return delivery.state, code, [(a.status_code, a.error_code) for a in attempts]


@pytest.fixture
async def notifier(isolated_database_url: str) -> AsyncIterator[Notifier]:
    pool = await create_pool(SecretStr(isolated_database_url), "notifier", min_size=1, max_size=4)
    repo = NotifierRepository(pool, SecretBox.from_config(DEV_SECRETS_ENCRYPTION_KEYS))
    yield Notifier(repo, NotifyDeps(repo=repo, topic=lambda base: base), TestCa())
    await pool.close()


async def stop(dispatcher: Dispatcher) -> None:
    await dispatcher.stop(grace_s=1)
    await dispatcher._session.close()


async def test_notifier_refuses_every_target(notifier: Notifier, witnesses: Witnesses) -> None:
    _skip_without_ipv6(witnesses)
    port = witnesses.canaries.port
    partner_id = "ptn_ssrf_matrix"
    calls: dict[str, Row] = {}
    for row in MATRIX:
        event = analyzed_event(row.callback(port), partner_id=partner_id)
        assert await notifier_handlers.handle_analyzed(event, notifier.deps)
        calls[event.call_id] = row
    # Plain http: refused as such, before the address is even looked at.
    http_event = analyzed_event(f"http://127.0.0.1:{port}/cb", partner_id=partner_id)
    assert await notifier_handlers.handle_analyzed(http_event, notifier.deps)

    production = NotifierSettings(environment="test", ssrf_allow_networks="", allow_http=False)
    dispatcher = await notifier.dispatch(production)
    try:
        found = await notifier.final(partner_id, [*calls, http_event.call_id])
    finally:
        await stop(dispatcher)

    seen = {row.label: await notifier.outcome(found[call_id]) for call_id, row in calls.items()}
    expected = {row.label: ("failed", row.notifier, [(None, row.notifier)] * row.notifier_attempts) for row in MATRIX}
    assert seen == expected
    assert await notifier.outcome(found[http_event.call_id]) == ("failed", "https_required", [])
    await witnesses.assert_untouched()


NOTIFIER_REDIRECTS = [
    "https://127.0.0.1:{p}/allowed-but-never-followed",
    "https://127.0.0.2:{p}/internal",
    "https://[::1]:{p}/internal",
    "https://localhost:{p}/internal",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.1:{p}/internal",
    "https://[fc00::1]/internal",
    "http://127.0.0.1:{p}/plain",
]


async def test_notifier_never_follows_a_redirect_to_any_target(notifier: Notifier, witnesses: Witnesses) -> None:
    """The receiver is allowed (127.0.0.1/32, development allowlist) and answers 302 to each
    target, one of them an allowed address: the attempt fails as ``redirect`` and no Location is
    contacted."""
    _skip_without_ipv6(witnesses)
    port = witnesses.canaries.port
    partner_id = "ptn_ssrf_redirect"
    async with receiver(notifier.tls) as rx:
        calls = {}
        for index, target in enumerate(NOTIFIER_REDIRECTS):
            url = rx.answer_always(f"moved-{index}", (302, {"Location": target.format(p=port)}))
            event = analyzed_event(url, partner_id=partner_id)
            assert await notifier_handlers.handle_analyzed(event, notifier.deps)
            calls[event.call_id] = target
        settings = NotifierSettings(environment="test", ssrf_allow_networks="127.0.0.1/32", allow_http=False)
        one_attempt = DispatchSettings(**{**ONE_ROUND.__dict__, "retry": RetryPolicy(attempts=1)})
        dispatcher = await notifier.dispatch(settings, one_attempt)
        try:
            found = await notifier.final(partner_id, list(calls))
        finally:
            await stop(dispatcher)
        seen = {target: await notifier.outcome(found[call_id]) for call_id, target in calls.items()}
        assert seen == {target: ("failed", "redirect", [(302, "redirect")]) for target in NOTIFIER_REDIRECTS}
        assert sorted(r.name for r in rx.requests) == sorted(f"moved-{i}" for i in range(len(NOTIFIER_REDIRECTS)))
    await witnesses.assert_untouched()
