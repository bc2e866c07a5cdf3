"""Callbacks end to end below Kafka: handler records, dispatcher sends to real HTTPS receivers on
loopback, every attempt is recorded, the schedule lives in PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from datetime import UTC, datetime

import orjson
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from schemas.events import CallbackDelivery
from services.notifier import handlers
from services.notifier.dispatcher import DispatchSettings
from services.notifier.handlers import announce
from services.notifier.repository import AttemptRecord
from tests.integration.notifier.conftest import FAST_RETRY, SETTINGS, NotifierEnv, eventually
from tests.support.receivers import HANG, Received, Receiver, receiver
from tests.unit.notifier.factories import analyzed_event, failed_event, redeliver_command

TWO_ATTEMPTS = DispatchSettings(**{**SETTINGS.__dict__, "retry": dataclasses.replace(FAST_RETRY, attempts=2)})


async def secret_of(env: NotifierEnv, partner_id: str) -> str:
    [current, *_] = await env.repo.secrets_of(partner_id)
    return current.secret


def gaps(hits: list[Received]) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(hits)]


async def test_a_receiver_failing_twice_gets_exactly_three_signed_attempts_with_growing_gaps(
    env: NotifierEnv, rx: Receiver
) -> None:
    event = analyzed_event(rx.script("flaky", 500, 502), partner_id="ptn_flaky")
    assert await handlers.handle_analyzed(event, env.deps)
    env.dispatcher()

    delivery = await env.wait_delivery("ptn_flaky", event.call_id, "result", {"delivered"})
    await asyncio.sleep(0.5)  # nothing more arrives
    hits = rx.hits("flaky")
    assert [h.answer for h in hits] == [500, 502, 200]
    assert {h.headers["webhook-id"] for h in hits} == {delivery.delivery_id}
    assert delivery.delivery_id.startswith("msg_")
    first, second = gaps(hits)
    assert first < second
    assert first >= FAST_RETRY.base_s * (1 - FAST_RETRY.jitter) - 0.05

    webhook = Webhook(await secret_of(env, "ptn_flaky"))
    stored = await env.repo.body(delivery.delivery_id)
    for h in hits:
        assert h.body == stored  # the same bytes every time
        assert webhook.verify(h.body, h.headers)["call_id"] == event.call_id
        assert h.headers["Content-Type"] == "application/json"

    attempts = await env.repo.attempts(delivery.delivery_id)
    assert [(a.number, a.status_code, a.error_code) for a in attempts] == [
        (1, 500, "http_status"),
        (2, 502, "http_status"),
        (3, 200, None),
    ]
    assert all(a.latency_ms is not None and a.latency_ms >= 0 for a in attempts)
    assert attempts[0].started_at < attempts[1].started_at < attempts[2].started_at

    events = await env.delivery_events(event.call_id)
    assert [(e.payload.state, e.payload.attempt.number if e.payload.attempt else None) for e in events] == [
        ("pending", None),
        ("retrying", 1),
        ("retrying", 2),
        ("delivered", 3),
    ]
    assert {e.payload.delivery_id for e in events} == {delivery.delivery_id}
    assert events[1].payload.next_attempt_at is not None and events[3].payload.next_attempt_at is None
    assert events[1].payload.attempt is not None and events[1].payload.attempt.error == (
        "http_status: the receiver answered HTTP 500"
    )


async def test_a_receiver_that_always_fails_gets_four_attempts_then_failed_then_a_redelivery_succeeds(
    env: NotifierEnv, rx: Receiver
) -> None:
    url = rx.answer_always("down", 500)
    event = analyzed_event(url, partner_id="ptn_down")
    await handlers.handle_analyzed(event, env.deps)
    env.dispatcher()

    failed = await env.wait_delivery("ptn_down", event.call_id, "result", {"failed"})
    await asyncio.sleep(0.5)
    assert len(rx.hits("down")) == 4
    assert failed.attempts == 4 and failed.next_attempt_at is None
    assert failed.last_error == "http_status: the receiver answered HTTP 500"

    rx.always["down"] = 200
    command = redeliver_command("ptn_down", event.call_id)
    assert await handlers.handle_redeliver(command, env.deps) == [failed.delivery_id]
    assert await handlers.handle_redeliver(command, env.deps) == []  # the same command again: applied once
    delivered = await env.wait_delivery("ptn_down", event.call_id, "result", {"delivered"})
    await asyncio.sleep(0.3)
    hits = rx.hits("down")
    assert len(hits) == 5 and hits[-1].answer == 200
    assert {h.headers["webhook-id"] for h in hits} == {failed.delivery_id}
    assert delivered.attempts == 5  # attempt numbers keep counting across redeliveries
    assert [a.number for a in await env.repo.attempts(failed.delivery_id)] == [1, 2, 3, 4, 5]
    states = [e.payload.state for e in await env.delivery_events(event.call_id)]
    assert states == ["pending", "retrying", "retrying", "retrying", "failed", "pending", "delivered"]


async def test_a_redirect_is_a_failed_attempt_and_its_target_is_never_contacted(
    env: NotifierEnv, rx: Receiver, tls
) -> None:  # type: ignore[no-untyped-def]
    async with receiver(tls) as canary:
        target = canary.url("stolen")
        url = rx.answer_always("moved", (302, {"Location": target}))
        event = analyzed_event(url, partner_id="ptn_redirect")
        await handlers.handle_analyzed(event, env.deps)
        env.dispatcher(TWO_ATTEMPTS)
        failed = await env.wait_delivery("ptn_redirect", event.call_id, "result", {"failed"})
        await asyncio.sleep(0.3)
        assert canary.requests == []
    assert len(rx.hits("moved")) == 2
    attempts = await env.repo.attempts(failed.delivery_id)
    assert {(a.status_code, a.error_code) for a in attempts} == {(302, "redirect")}


async def test_retry_after_of_a_429_is_honoured(env: NotifierEnv, rx: Receiver) -> None:
    url = rx.script("busy", (429, {"Retry-After": "1"}), (503, {"Retry-After": "1"}))
    event = analyzed_event(url, partner_id="ptn_busy")
    await handlers.handle_analyzed(event, env.deps)
    env.dispatcher()
    delivered = await env.wait_delivery("ptn_busy", event.call_id, "result", {"delivered"})
    hits = rx.hits("busy")
    assert [h.answer for h in hits] == [429, 503, 200]
    # Without Retry-After the gaps would be about 0.2 and 0.6 s.
    assert all(gap >= 0.95 for gap in gaps(hits)), gaps(hits)
    assert delivered.attempts == 3


async def test_a_hanging_endpoint_does_not_delay_another_partners_callback(env: NotifierEnv, rx: Receiver) -> None:
    hang_url = rx.answer_always("hang", HANG)
    stuck = [analyzed_event(hang_url, partner_id="ptn_hangs") for _ in range(6)]
    for e in stuck:
        await handlers.handle_analyzed(e, env.deps)
    env.dispatcher(DispatchSettings(**{**SETTINGS.__dict__, "timeout_s": 60, "per_partner": 2}))
    await rx.wait_for("hang", 2)

    other = analyzed_event(rx.url("fine"), partner_id="ptn_fine")
    await handlers.handle_analyzed(other, env.deps)
    delivered = await env.wait_delivery("ptn_fine", other.call_id, "result", {"delivered"})

    # The other partner's callback went through while the hanging partner's first attempts are
    # still open, and the hanging partner never had more than its cap of requests in flight.
    assert rx.hanging == 2
    assert len(rx.hits("hang")) == 2
    for e in stuck:
        d = await env.repo.find("ptn_hangs", e.call_id, "result")
        assert d is not None and d.attempts == 0
    assert delivered.attempts == 1 and [h.answer for h in rx.hits("fine")] == [200]


async def test_the_same_analyzed_event_twice_gives_one_delivery_and_one_callback(
    env: NotifierEnv, rx: Receiver
) -> None:
    event = analyzed_event(rx.url("once"), partner_id="ptn_once")
    assert await handlers.handle_event(event, env.deps) == []
    env.dispatcher()
    first = await env.wait_delivery("ptn_once", event.call_id, "result", {"delivered"})
    assert not await handlers.handle_analyzed(event, env.deps)  # Kafka redelivered it
    await asyncio.sleep(0.5)
    assert len(rx.hits("once")) == 1
    again = await env.repo.find("ptn_once", event.call_id, "result")
    assert again is not None and again.delivery_id == first.delivery_id and again.state == "delivered"
    assert [e.payload.state for e in await env.delivery_events(event.call_id)] == ["pending", "delivered"]


async def test_a_failed_call_gets_a_signed_failure_callback(env: NotifierEnv, rx: Receiver) -> None:
    event = failed_event(rx.url("failure"), partner_id="ptn_failure")
    await handlers.handle_event(event, env.deps)
    env.dispatcher()
    await env.wait_delivery("ptn_failure", event.call_id, "failure", {"delivered"})
    [hit] = rx.hits("failure")
    body = Webhook(await secret_of(env, "ptn_failure")).verify(hit.body, hit.headers)
    assert body["call_id"] == event.call_id and body["status"] == "failed"
    assert body["error"] == {"stage": "fetch", "code": "http_status", "message": "the recording host answered HTTP 404"}
    assert body["meta"]["campaign"] == "Q1 Outreach"
    assert set(body) == {"call_id", "status", "error", "meta"}


async def test_calls_without_a_callback_url_or_failed_by_the_notifier_get_none(env: NotifierEnv) -> None:
    assert not await handlers.handle_analyzed(analyzed_event(None), env.deps)
    assert not await handlers.handle_failed(failed_event(None), env.deps)
    assert not await handlers.handle_failed(failed_event("https://partner.example.com/cb", stage="notify"), env.deps)
    assert await env.pool.fetchval("SELECT count(*) FROM deliveries") == 0


async def test_a_loopback_callback_is_refused_without_the_allowlist_and_nothing_reaches_it(
    env: NotifierEnv, rx: Receiver
) -> None:
    literal = analyzed_event(rx.url("canary"), partner_id="ptn_ssrf")
    by_name = analyzed_event(rx.url("canary").replace("127.0.0.1", "localhost"), partner_id="ptn_ssrf")
    await handlers.handle_analyzed(literal, env.deps)
    await handlers.handle_analyzed(by_name, env.deps)
    env.dispatcher(allow="")

    refused = await env.wait_delivery("ptn_ssrf", literal.call_id, "result", {"failed"})
    resolved = await env.wait_delivery("ptn_ssrf", by_name.call_id, "result", {"failed"})
    await asyncio.sleep(0.3)
    assert rx.requests == []
    assert refused.last_error is not None and refused.last_error.startswith("blocked_address")
    assert await env.repo.attempts(refused.delivery_id) == []  # refused before any attempt
    # A hostname is judged on its resolved address, at connect time: one attempt, no retry.
    [attempt] = await env.repo.attempts(resolved.delivery_id)
    assert attempt.error_code == "blocked_address" and attempt.status_code is None
    [*_, last] = await env.delivery_events(literal.call_id)
    assert last.payload.state == "failed" and last.payload.attempt is None
    assert last.payload.error is not None and last.payload.error.startswith("blocked_address")


async def test_a_plain_http_callback_fails_without_an_attempt(env: NotifierEnv) -> None:
    async with receiver(None) as plain:
        event = analyzed_event(plain.url("plain"), partner_id="ptn_http")
        await handlers.handle_analyzed(event, env.deps)
        env.dispatcher()
        failed = await env.wait_delivery("ptn_http", event.call_id, "result", {"failed"})
        await asyncio.sleep(0.2)
        assert plain.requests == []
    assert failed.last_error == "https_required: the callback URL must use https"
    assert failed.attempts == 0


async def test_an_untrusted_certificate_is_a_tls_error(env: NotifierEnv, rx: Receiver) -> None:
    event = analyzed_event(rx.url("untrusted"), partner_id="ptn_tls")
    await handlers.handle_analyzed(event, env.deps)
    env.dispatcher(TWO_ATTEMPTS, trust_test_ca=False)
    failed = await env.wait_delivery("ptn_tls", event.call_id, "result", {"failed"})
    assert rx.hits("untrusted") == []
    assert {a.error_code for a in await env.repo.attempts(failed.delivery_id)} == {"tls_error"}


async def test_during_a_secret_rotation_callbacks_carry_both_signatures(env: NotifierEnv, rx: Receiver) -> None:
    before = analyzed_event(rx.url("rotation"), partner_id="ptn_rotate")
    await handlers.handle_analyzed(before, env.deps)
    env.dispatcher()
    await env.wait_delivery("ptn_rotate", before.call_id, "result", {"delivered"})
    old = await secret_of(env, "ptn_rotate")

    await env.repo.rotate_secret("ptn_rotate", grace_s=3600)
    new = await secret_of(env, "ptn_rotate")
    assert new != old
    after = analyzed_event(rx.url("rotation"), partner_id="ptn_rotate")
    await handlers.handle_analyzed(after, env.deps)
    await env.wait_delivery("ptn_rotate", after.call_id, "result", {"delivered"})
    first, second = rx.hits("rotation")
    assert len(first.headers["webhook-signature"].split(" ")) == 1
    assert len(second.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(second.body, second.headers)
    Webhook(new).verify(second.body, second.headers)

    await env.repo.rotate_secret("ptn_rotate", grace_s=0)  # the previous secret stops at once
    assert [s.secret for s in await env.repo.secrets_of("ptn_rotate")] != [new]
    assert len(await env.repo.secrets_of("ptn_rotate")) == 2  # the newest and the one still in grace


async def test_signatures_fail_for_a_tampered_body_a_wrong_secret_or_a_stale_timestamp(
    env: NotifierEnv, rx: Receiver
) -> None:
    event = analyzed_event(rx.url("verify"), partner_id="ptn_verify")
    await handlers.handle_analyzed(event, env.deps)
    env.dispatcher()
    await env.wait_delivery("ptn_verify", event.call_id, "result", {"delivered"})
    [hit] = rx.hits("verify")
    webhook = Webhook(await secret_of(env, "ptn_verify"))
    webhook.verify(hit.body, hit.headers)
    tampered = orjson.loads(hit.body)
    tampered["quality_score"] = 100
    stale = {**hit.headers, "webhook-timestamp": str(int(time.time()) - 3600)}
    for body, headers, verifier in (
        (orjson.dumps(tampered), hit.headers, webhook),
        (hit.body, hit.headers, Webhook("whsec_" + "QUJD" * 8)),
        (hit.body, stale, webhook),
    ):
        try:
            verifier.verify(body, headers)
        except WebhookVerificationError:
            continue
        raise AssertionError("verification should have failed")


async def test_two_dispatchers_share_the_work_without_sending_anything_twice(env: NotifierEnv, rx: Receiver) -> None:
    events = [analyzed_event(rx.url("shared"), partner_id=f"ptn_share{i % 5}") for i in range(40)]
    for e in events:
        await handlers.handle_analyzed(e, env.deps)
    env.dispatcher()
    env.dispatcher()
    for e in events:
        await env.wait_delivery(e.partner_id, e.call_id, "result", {"delivered"})
    await asyncio.sleep(0.3)
    ids = [h.headers["webhook-id"] for h in rx.hits("shared")]
    assert len(ids) == 40 and len(set(ids)) == 40


async def test_events_announce_every_state(env: NotifierEnv, rx: Receiver) -> None:
    event = analyzed_event(rx.script("announce", 500), partner_id="ptn_announce")
    await handlers.handle_analyzed(event, env.deps)
    env.dispatcher()
    await env.wait_delivery("ptn_announce", event.call_id, "result", {"delivered"})
    events = await eventually(lambda: _events_when(env, event.call_id, 3))
    assert all(isinstance(e, CallbackDelivery) for e in events)
    assert all(e.key() == event.key() and e.tenant_id == event.tenant_id for e in events)
    assert events[1].payload.attempt is not None and events[1].payload.attempt.status_code == 500


async def _events_when(env: NotifierEnv, call_id: str, count: int) -> list[CallbackDelivery] | None:
    events = await env.delivery_events(call_id)
    return events if len(events) >= count else None


async def test_a_claim_whose_dispatcher_died_is_taken_over_when_its_lease_ends(env: NotifierEnv, rx: Receiver) -> None:
    event = analyzed_event(rx.url("lease"), partner_id="ptn_lease")
    await handlers.handle_analyzed(event, env.deps)
    [dead] = await env.repo.claim(limit=10, in_flight={}, per_partner=4, lease_s=0.5)  # then "crashes"
    assert await env.repo.claim(limit=10, in_flight={}, per_partner=4, lease_s=0.5) == []  # leased

    env.dispatcher()
    delivered = await env.wait_delivery("ptn_lease", event.call_id, "result", {"delivered"})
    assert delivered.attempts == 1 and len(rx.hits("lease")) == 1
    # The dead dispatcher's late result is discarded: the lease is no longer its own.
    late = AttemptRecord(
        number=1, started_at=datetime.now(UTC), status_code=500, latency_ms=1.0, error_code=None, error=None
    )
    assert await env.repo.finish_attempt(dead, late, state="failed", retry_in_s=None, announce=announce(str)) is None
    again = await env.repo.find("ptn_lease", event.call_id, "result")
    assert again is not None and again.state == "delivered"
