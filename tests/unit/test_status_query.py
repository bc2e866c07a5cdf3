"""The status API's pure parts: tenancy rule for readers, query parsing, cursors, and what each
event means for the read model."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.gateway import handlers
from services.gateway.errors import SubtenantMissing, TenantMissing, ValidationFailed
from services.gateway.read_model import changes_of
from tests.support.status_events import analyzed, at, delivery, failed, fetched, ingested, started

SCOPE = handlers.ReadScope("t1", None)


def test_readers_need_a_tenant_and_may_omit_the_subtenant() -> None:
    assert handlers.reader_scope("t1", "s1") == handlers.ReadScope("t1", "s1")
    assert handlers.reader_scope(" t1 ", None) == handlers.ReadScope("t1", None)
    assert handlers.reader_scope("t1", "  ") == handlers.ReadScope("t1", None)
    with pytest.raises(TenantMissing):
        handlers.reader_scope(None, "s1")
    with pytest.raises(TenantMissing):
        handlers.reader_scope("x" * 256, None)
    with pytest.raises(SubtenantMissing):
        handlers.reader_scope("t1", "x" * 256)


def test_a_cursor_round_trips_and_garbage_is_a_validation_error() -> None:
    when = datetime(2026, 1, 5, 9, 0, 0, 123456, tzinfo=UTC)
    cursor = handlers.encode_cursor(when, "crm/call 7")
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor
    assert handlers.decode_cursor(cursor) == (when, "crm/call 7")
    for bad in ("", "%%%", "bm90IGpzb24", handlers.encode_cursor(when, "x")[:-3]):
        with pytest.raises(ValidationFailed) as exc:
            handlers.decode_cursor(bad)
        assert exc.value.errors == [{"field": "cursor", "message": "cursor is invalid"}]


def test_query_parsing() -> None:
    filters, limit = handlers.parse_list_query(
        handlers.ReadScope("t1", "s1"),
        status="completed, failed",
        agent="a1",
        received_from="2026-01-05T09:00:00Z",
        received_to="2026-01-06T09:00:00.5+00:00",
        intent="FOLLOW_UP",
        limit="200",
    )
    assert limit == 200
    assert filters.statuses == ("completed", "failed") and filters.subtenant_id == "s1"
    assert filters.received_from == datetime(2026, 1, 5, 9, tzinfo=UTC)
    assert filters.received_to == datetime(2026, 1, 6, 9, 0, 0, 500000, tzinfo=UTC)
    assert handlers.parse_list_query(SCOPE)[1] == handlers.DEFAULT_PAGE


def test_query_errors_are_reported_together() -> None:
    with pytest.raises(ValidationFailed) as exc:
        handlers.parse_list_query(SCOPE, status="", intent="maybe", limit="1000", received_from="2026-13-01T00:00:00Z")
    assert [e["field"] for e in exc.value.errors] == ["status", "intent", "from", "limit"]


def test_what_each_event_means() -> None:
    call = ingested("ptn_x")
    expectations = [
        (call, "received"),
        (started(call, "fetch", at(1)), "fetching"),
        (fetched(call, at(2)), "fetched"),
        (started(call, "analyze", at(3)), "analyzing"),
        (analyzed(call, at(4)), "completed"),
        (failed(call, at(5)), "failed"),
        (failed(call, at(5), stage="notify"), "received"),  # moves nothing
        (delivery(call, at(6), "delivered", number=1, status_code=200), "received"),  # moves nothing
    ]
    for event, status in expectations:
        changes = changes_of(event)
        assert changes is not None
        assert changes[0].status == status, event.type
        assert changes[0].at == event.occurred_at
    change, attempt = changes_of(delivery(call, at(6), "retrying", number=2, status_code=503)) or (None, None)
    assert attempt is not None and (attempt.state, attempt.attempt_number, attempt.attempt_status_code) == (
        "retrying",
        2,
        503,
    )
    assert change is not None and change.received_at is None  # a delivery does not carry the call
