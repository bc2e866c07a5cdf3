"""Erasure and retention in the notifier, below Kafka: real PostgreSQL, real HTTPS receivers on
loopback, the dispatcher running. An erased call's deliveries, attempts and queued events are
gone, a late event records nothing and sends nothing, an attempt in flight during the erasure
ends quietly, and purged bodies are not sent again."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from schemas.events import (
    TOPIC_ANALYZED,
    TOPIC_DELIVERIES,
    TOPIC_ERASED,
    TOPIC_ERASURE_CONFIRMED,
    CallAnalyzed,
    CallErasureConfirmed,
    CallFailed,
    call_key,
    dump_event,
    follow_up,
    parse_event,
)
from services.common.kafka import TopicSpec, ensure_topics, make_producer
from services.notifier import handlers
from tests.integration.notifier.conftest import NotifierEnv, eventually
from tests.integration.notifier.test_notifier_service import notifier_env
from tests.support.erasure import erased_event, retention_snapshot, rows_of_call
from tests.support.infra import Infra, free_port
from tests.support.kafka import consume
from tests.support.processes import service_process
from tests.support.receivers import HANG, Receiver, TestCa
from tests.unit.notifier.factories import analyzed_event, failed_event, redeliver_command


def retained(event: Any, **days: float | None) -> Any:
    """``event`` (analyzed or failed) whose call carries a retention snapshot."""
    ingested = event.payload.ingested.model_copy(update={"analysis_config": retention_snapshot(**days)})
    return event.model_copy(update={"payload": event.payload.model_copy(update={"ingested": ingested})})


async def attempts_of(env: NotifierEnv, delivery_ids: list[str]) -> int:
    return await env.pool.fetchval(
        "SELECT count(*) FROM delivery_attempts WHERE delivery_id = ANY($1::text[])", delivery_ids
    )


async def test_an_erasure_removes_deliveries_attempts_and_queued_events_and_a_late_event_sends_nothing(
    env: NotifierEnv, rx: Receiver, notifier_db: str
) -> None:
    analyzed = analyzed_event(rx.url("erased"), partner_id="ptn_nt_erase")
    failed = CallFailed(  # the same call also failed once (a redelivered stage, say)
        **follow_up(analyzed, event_id=analyzed.event_id, source="fetcher"),
        payload=failed_event(rx.url("erased"), call_id=analyzed.call_id, partner_id="ptn_nt_erase").payload,
    )
    other = analyzed_event(rx.url("kept"), partner_id="ptn_nt_erase")
    assert await handlers.handle_analyzed(analyzed, env.deps)
    assert await handlers.handle_failed(failed, env.deps)
    assert await handlers.handle_analyzed(other, env.deps)
    env.dispatcher()
    result = await env.wait_delivery("ptn_nt_erase", analyzed.call_id, "result", {"delivered"})
    failure = await env.wait_delivery("ptn_nt_erase", analyzed.call_id, "failure", {"delivered"})
    await env.wait_delivery("ptn_nt_erase", other.call_id, "result", {"delivered"})
    await rx.wait_for("erased", 2)
    # A record the outbox relay set aside for this call, and one of another call.
    key = call_key("ptn_nt_erase", analyzed.call_id)
    await env.pool.execute(
        "INSERT INTO outbox_dead (topic, key, payload, error, queued_at) VALUES ($1, $2, $3, 'too large', now()),"
        " ($1, $4, $3, 'too large', now())",
        env.topic_prefix + TOPIC_DELIVERIES,
        key,
        b"{}",
        call_key("ptn_nt_erase", other.call_id),
    )
    queued = len(await env.delivery_events(analyzed.call_id))
    assert queued >= 4  # pending and delivered, of both deliveries: no relay runs in this test
    before = await rows_of_call(notifier_db, "notifier", "ptn_nt_erase", analyzed.call_id)
    assert before["deliveries"] == 2 and before["outbox_dead"] == 1 and before["outbox"] >= 1

    erasure = erased_event(analyzed)
    [confirmed] = await handlers.handle_event(erasure, env.deps)
    assert isinstance(confirmed, CallErasureConfirmed)
    assert confirmed.payload.service == "notifier"
    assert confirmed.payload.removed == {"deliveries": 2, "outbox_dead": 1, "outbox": queued}
    assert await rows_of_call(notifier_db, "notifier", "ptn_nt_erase", analyzed.call_id) == {}
    assert await attempts_of(env, [result.delivery_id, failure.delivery_id]) == 0
    assert await env.delivery_events(analyzed.call_id) == []
    # The other call is untouched, its queued events included.
    kept = await rows_of_call(notifier_db, "notifier", "ptn_nt_erase", other.call_id)
    assert kept["deliveries"] == 1 and kept["outbox_dead"] == 1 and kept["delivery_attempts"] == 1
    assert [e.payload.state for e in await env.delivery_events(other.call_id)] == ["pending", "delivered"]

    [again] = await handlers.handle_event(erasure, env.deps)
    assert again.event_id == confirmed.event_id
    assert again.payload.removed == {"deliveries": 0, "outbox_dead": 0, "outbox": 0}

    # Late events of the erased call: no delivery, no callback, no event.
    hits = len(rx.hits("erased"))
    assert not await handlers.handle_analyzed(analyzed, env.deps)
    assert not await handlers.handle_failed(failed, env.deps)
    await asyncio.sleep(1.0)  # the dispatcher polls every 0.1 s
    assert len(rx.hits("erased")) == hits
    assert await rows_of_call(notifier_db, "notifier", "ptn_nt_erase", analyzed.call_id) == {}


async def test_a_call_erased_before_its_result_gets_no_callback(
    env: NotifierEnv, rx: Receiver, notifier_db: str
) -> None:
    analyzed = analyzed_event(rx.url("early"), partner_id="ptn_nt_early")
    [confirmed] = await handlers.handle_event(erased_event(analyzed), env.deps)
    assert confirmed.payload.removed == {"deliveries": 0, "outbox_dead": 0, "outbox": 0}
    env.dispatcher()
    assert await handlers.handle_event(analyzed, env.deps) == []
    failed = failed_event(rx.url("early"), call_id=analyzed.call_id, partner_id="ptn_nt_early")
    assert await handlers.handle_event(failed, env.deps) == []
    await asyncio.sleep(1.0)
    assert rx.hits("early") == []
    assert await rows_of_call(notifier_db, "notifier", "ptn_nt_early", analyzed.call_id) == {}


async def test_an_attempt_in_flight_during_the_erasure_records_nothing_and_is_not_sent_again(
    env: NotifierEnv, rx: Receiver, notifier_db: str
) -> None:
    analyzed = analyzed_event(rx.script("inflight", HANG, 500), partner_id="ptn_nt_inflight")
    assert await handlers.handle_analyzed(analyzed, env.deps)
    dispatcher = env.dispatcher()
    await rx.wait_for("inflight", 1)
    await handlers.handle_event(erased_event(analyzed), env.deps)
    rx.released.set()  # the receiver answers now; the delivery is gone
    await eventually(lambda: _idle(dispatcher), 10)
    await asyncio.sleep(1.0)
    assert len(rx.hits("inflight")) == 1, "nothing is sent again"
    assert dispatcher.alive() and dispatcher.stats.lost_leases == 1
    assert await rows_of_call(notifier_db, "notifier", "ptn_nt_inflight", analyzed.call_id) == {}


async def _idle(dispatcher: Any) -> bool | None:
    return True if dispatcher.in_flight() == 0 else None


async def test_final_bodies_are_purged_at_their_expiry_and_a_redelivery_is_answered_with_the_reason(
    env: NotifierEnv, rx: Receiver
) -> None:
    done = retained(analyzed_event(rx.url("purge-a"), partner_id="ptn_nt_purge"), transcript_days=1, results_days=5)
    assert await handlers.handle_analyzed(done, env.deps)
    first = env.dispatcher()
    delivered = await env.wait_delivery("ptn_nt_purge", done.call_id, "result", {"delivered"})
    await first.stop()
    # Recorded while no dispatcher runs: still pending at the purge.
    waiting = retained(failed_event(rx.url("purge-b"), partner_id="ptn_nt_purge"), results_days=1)
    assert await handlers.handle_failed(waiting, env.deps)

    received = done.payload.ingested.received_at
    expiries = {
        r["call_id"]: r["body_expires_at"]
        for r in await env.pool.fetch(
            "SELECT call_id, body_expires_at FROM deliveries WHERE partner_id = 'ptn_nt_purge'"
        )
    }
    assert expiries[done.call_id] == received + timedelta(days=1)  # the transcript's, the earlier
    assert expiries[waiting.call_id] == waiting.payload.ingested.received_at + timedelta(days=1)

    assert await handlers.purge(received + timedelta(hours=12), env.repo) == {"bodies": 0}
    at = received + timedelta(days=2)
    assert await handlers.purge(at, env.repo) == {"bodies": 1}, "the pending delivery keeps its body"
    row = await env.pool.fetchrow(
        "SELECT body, body_purged_at FROM deliveries WHERE delivery_id = $1", delivered.delivery_id
    )
    assert row["body"] is None and row["body_purged_at"] == at
    assert await env.repo.body(delivered.delivery_id) is None
    assert await handlers.purge(at, env.repo) == {"bodies": 0}  # idempotent

    # Redelivery of the purged body: nothing re-armed, the command answered with the reason.
    command = redeliver_command("ptn_nt_purge", done.call_id)
    assert await handlers.handle_redeliver(command, env.deps) == []
    answers = [
        e for e in await env.delivery_events(done.call_id) if e.payload.redelivery_command_id == command.event_id
    ]
    assert len(answers) == 1
    assert answers[0].payload.error == handlers.PURGED_ERROR
    assert answers[0].payload.state == "delivered" and answers[0].payload.delivery_id == delivered.delivery_id
    second = env.dispatcher()
    assert await handlers.handle_analyzed(done, env.deps) is False  # a redelivered event re-arms nothing either

    # The pending one is sent (its body intact), and purged once final.
    await env.wait_delivery("ptn_nt_purge", waiting.call_id, "failure", {"delivered"})
    await asyncio.sleep(0.5)
    assert len(rx.hits("purge-a")) == 1, "the purged delivery was never sent again"
    assert len(rx.hits("purge-b")) == 1 and rx.hits("purge-b")[0].body
    assert await handlers.purge(at, env.repo) == {"bodies": 1}
    assert second.alive()


async def test_a_result_without_a_snapshot_keeps_its_body_for_the_default_retention(
    env: NotifierEnv, rx: Receiver
) -> None:
    event = analyzed_event(rx.url("defaults"), partner_id="ptn_nt_defaults")
    assert isinstance(event, CallAnalyzed) and event.payload.ingested.analysis_config is None
    assert await handlers.handle_analyzed(event, env.deps)
    expires = await env.pool.fetchval("SELECT body_expires_at FROM deliveries WHERE call_id = $1", event.call_id)
    assert expires == event.payload.ingested.received_at + timedelta(days=365)


@pytest.mark.slow
async def test_the_notifier_process_confirms_an_erasure_on_kafka_and_a_late_result_sends_nothing(
    infra: Infra, notifier_db: str, topic_prefix: str, tmp_path: Path, tls: TestCa, rx: Receiver
) -> None:
    sent = retained(analyzed_event(rx.url("svc-erase"), partner_id="ptn_nt_svc"), transcript_days=0.00001)
    late = analyzed_event(rx.url("svc-late"), partner_id="ptn_nt_svc")
    topics = (TOPIC_ANALYZED, TOPIC_ERASED)
    await ensure_topics(infra.kafka_bootstrap, [TopicSpec(topic_prefix + t, 3) for t in topics])
    producer = make_producer(infra.kafka_bootstrap, "test")
    await producer.start()
    port = free_port()
    env = {
        **notifier_env(infra, notifier_db, topic_prefix, port, tls.write_bundle(tmp_path)),
        "RETENTION_PURGE_INTERVAL_S": "0.3",
    }
    repo_pool = await asyncpg.connect(notifier_db)
    try:
        with service_process("notifier", env, port, tmp_path / "notifier.log"):
            await producer.send_and_wait(topic_prefix + TOPIC_ANALYZED, dump_event(sent), key=sent.key())
            await rx.wait_for("svc-erase", 1, timeout=60)

            async def body_purged() -> bool | None:
                at = await repo_pool.fetchval(
                    "SELECT body_purged_at FROM notifier.deliveries WHERE call_id = $1 AND body IS NULL", sent.call_id
                )
                return True if at is not None else None

            await eventually(body_purged, 30)  # the schedule runs in the process

            erasures = [erased_event(sent), erased_event(late)]  # the second before its result
            for e in erasures:
                await producer.send_and_wait(topic_prefix + TOPIC_ERASED, dump_event(e), key=e.key())
            confirmed = await consume(infra.kafka_bootstrap, topic_prefix + TOPIC_ERASURE_CONFIRMED, 2, timeout=60)
            await producer.send_and_wait(topic_prefix + TOPIC_ANALYZED, dump_event(late), key=late.key())
            await producer.send_and_wait(topic_prefix + TOPIC_ANALYZED, dump_event(sent), key=sent.key())
            await asyncio.sleep(3.0)  # the late events are consumed; any callback would arrive by now
        done = {e.call_id: e for e in (parse_event(r.value) for r in confirmed) if isinstance(e, CallErasureConfirmed)}
        assert done[sent.call_id].payload.service == "notifier"
        assert done[sent.call_id].payload.removed["deliveries"] == 1
        assert done[late.call_id].payload.removed["deliveries"] == 0
        assert rx.hits("svc-late") == [] and len(rx.hits("svc-erase")) == 1
        for e in (sent, late):
            assert await rows_of_call(notifier_db, "notifier", e.partner_id, e.call_id) == {}
    finally:
        await repo_pool.close()
        await producer.stop()
