"""The client's typed calls against the real gateway: status, list pages, redelivery, the
analysis configuration, and every refusal as a typed exception with the API's own words."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from callpipe_client import (
    AnalysisConfig,
    AsyncClient,
    BadRequest,
    CallStatus,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    RetryEvent,
    RetryPolicy,
    RubricParameter,
    ValidationFailed,
)
from callpipe_client.tracking import Tracker

from tests.factories import call_item
from tests.integration.client.conftest import Wire
from tests.support.gateway import PartnerCreds, create_partner, wait_until


async def test_status_list_pages_and_tracking(api: AsyncClient, wire: Wire) -> None:
    items = [call_item(agent__id="agent-7" if i % 2 else "agent-8") for i in range(120)]
    report = await api.submit_calls(items)
    assert report.counts["accepted"] == 120
    ids = {i["call"]["id"] for i in items}

    status = await api.get_call(items[0]["call"]["id"])  # at once, from the ingestion ledger
    assert isinstance(status, CallStatus) and status.status == "received" and not status.is_final
    assert status.timestamps.received is not None

    async def listed() -> int:
        return len([c async for c in api.iter_calls(limit=50)]) == 120

    assert await wait_until(listed, timeout=30)  # the list follows the pipeline's events
    wire.requests.clear()
    seen = [c async for c in api.iter_calls(limit=50)]
    assert seen == sorted(seen, key=lambda c: (c.timestamps.received, c.call_id), reverse=True)  # newest first
    assert {c.call_id for c in seen} == ids and len(seen) == 120
    assert wire.count("GET", "/calls") == 3  # 50 + 50 + 20, the cursor followed
    read = await api.get_call(items[0]["call"]["id"])  # now from the read model
    assert read.callback is not None and read.callback.url == "https://partner.example.com/callback"
    agent7 = [c async for c in api.iter_calls(agent="agent-7", status=["received", "fetching"], limit=200)]
    assert len(agent7) == 60 and {c.agent_id for c in agent7} == {"agent-7"}
    assert [c.call_id async for c in api.iter_calls(max_items=7, limit=5)].__len__() == 7

    # Following 120 calls: the list, two pages, rather than 120 reads by id.
    wire.requests.clear()
    tracker = Tracker(api, sorted(ids))
    assert await tracker.refresh() == []  # nothing final yet
    assert set(tracker.known) == ids and len(tracker.pending()) == 120
    assert wire.count("GET") <= 5 + 1 + 2


async def test_refusals_are_typed_with_the_apis_message(
    api: AsyncClient, make_client: Callable[..., AsyncClient], partner: PartnerCreds
) -> None:
    with pytest.raises(NotFound) as missing:
        await api.get_call("no-such-call")
    assert (missing.value.status_code, missing.value.message) == (404, "Call not found")

    call = call_item(callback_url=None)
    await api.submit_calls([call])
    with pytest.raises(Conflict) as early:
        await api.redeliver_callback(call["call"]["id"])  # accepted, nothing delivered yet
    assert early.value.message == "Callback can be redelivered only once its delivery is delivered or failed"

    async def no_callback_url() -> bool:
        try:
            await api.redeliver_callback(call["call"]["id"])
        except Conflict as exc:
            return exc.message == "Call has no callback_url"  # once the read model has the call
        return False

    assert await wait_until(no_callback_url, timeout=30)

    with pytest.raises(ValidationFailed) as invalid:
        await api.list_calls(limit=500, status="done")
    assert {(e.field, e.message) for e in invalid.value.errors} == {
        ("limit", "limit must be between 1 and 200"),
        ("status", "status must be one of: received, fetching, fetched, analyzing, completed, failed"),
    }
    with pytest.raises(ValidationFailed) as bad_config:
        await api.set_analysis_config({"labels": []}, scope="tenant")
    assert bad_config.value.errors[0].field == "labels"

    wrong = make_client(PartnerCreds(partner.partner_id, partner.api_key, "cs_wrong"))
    with pytest.raises(Forbidden) as forbidden:
        await wrong.get_call("x")
    assert forbidden.value.message == "Forbidden"
    long_tenant = make_client(partner, tenant_id="t" * 300)
    with pytest.raises(BadRequest) as bad:
        await long_tenant.get_call("x")
    assert bad.value.message == "Tenant ID must be at most 255 characters"


async def test_the_rate_limit_is_waited_out_or_reported(
    make_client: Callable[..., AsyncClient], client: httpx.AsyncClient, database_url: str
) -> None:
    limited = await create_partner(database_url, rate_limit=30)  # bursts of 30, then one every 2 s
    for _ in range(30):
        await client.get("/api/v1/partner/calls", headers=limited.headers())
    impatient = make_client(limited, retry=RetryPolicy(rate_limit_wait_s=0.5))
    with pytest.raises(RateLimited) as refused:
        await impatient.list_calls()
    assert refused.value.message == "Rate limit exceeded. Try again in 60 seconds."
    assert refused.value.retry_after_s is not None and 1 <= refused.value.retry_after_s <= 2

    events: list[RetryEvent] = []
    patient = make_client(limited)
    patient.on_retry = events.append
    started = time.monotonic()
    page = await patient.list_calls()
    assert page.calls == [] and page.next_cursor is None
    assert [e.reason for e in events] == ["rate_limited"] and events[0].status_code == 429
    assert time.monotonic() - started >= events[0].wait_s - 0.05


async def test_analysis_configuration_round_trip(api: AsyncClient) -> None:
    default = await api.get_analysis_config()
    assert default.source == "default" and default.tenant is None
    config = AnalysisConfig(
        labels=["Needs", "Budget"],
        rubric=[RubricParameter(parameter_name="Disclosure", description="Say the call is recorded.", is_fatal=True)],
    )
    view = await api.set_analysis_config(config, scope="tenant")
    assert view.source == "tenant" and view.tenant is not None and view.tenant.version == 1
    assert view.effective.labels == ["Needs", "Budget"]
    assert [(p.parameter_name, p.max_score, p.is_fatal) for p in view.effective.rubric] == [("Disclosure", 10, True)]
    assert view.effective.channels.left == "agent"  # inherited from the defaults
    sub = await api.set_analysis_config({"channels": {"left": "customer", "right": "agent"}}, scope="subtenant")
    assert sub.source == "subtenant" and sub.effective.labels == ["Needs", "Budget"]
    assert (await api.get_analysis_config()).config_id == sub.config_id != view.config_id


async def test_erasure_methods(api: AsyncClient, make_client: Callable[..., AsyncClient], database_url: str) -> None:
    item = call_item(customer__id="client-erase-1", call__contact_number="+15551230000")
    other = call_item(customer__id="client-keep-2", call__contact_number="+15551239999")
    await api.ingest_batch([item, other])
    accepted = await api.erase_call(item["call"]["id"])
    assert accepted.status == "pending" and accepted.calls == 1 and accepted.erasure_id
    assert (await api.erase_call(item["call"]["id"])).erasure_id == accepted.erasure_id
    with pytest.raises(NotFound):
        await api.get_call(item["call"]["id"])
    with pytest.raises(NotFound):
        await api.erase_call("no-such-call")
    erasure = await api.get_erasure(accepted.erasure_id)
    assert erasure.scope == "call" and erasure.calls == 1 and not erasure.is_completed
    assert set(erasure.services) == {"gateway", "fetcher", "analyzer", "notifier"}
    with pytest.raises(NotFound):
        await api.get_erasure("00000000-0000-4000-8000-000000000000")

    by_number = await api.erase_customer(contact_number="+1 555 123 9999")
    assert by_number.calls == 1
    nothing = await api.erase_customer(customer_id="client-erase-1")  # already erased above
    assert nothing.calls == 0 and nothing.status == "completed"
    assert (await api.get_erasure(nothing.erasure_id)).is_completed
    with pytest.raises(ValidationFailed) as refused:
        await api.erase_customer(contact_number="none")
    assert refused.value.errors[0].field == "contact_number"
    outsider = make_client(await create_partner(database_url))
    with pytest.raises(NotFound):
        await outsider.get_erasure(accepted.erasure_id)
    await outsider.aclose()
