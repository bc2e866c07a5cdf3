"""Local validation: the API's documented rules, reported in the API's words, relative to the item."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import make_item

from callpipe_client import Agent, Call, CallItem, Customer, FieldError
from callpipe_client.validation import (
    MAX_BATCH_BYTES,
    call_id_of,
    encode_item,
    json_errors,
    normalize,
    rebase,
    size_error,
    validate_item,
)


def errors(item: Any) -> list[tuple[str, str]]:
    return [(e.field, e.message) for e in validate_item(normalize(item))]


def test_the_spec_example_is_valid(item: dict[str, Any]) -> None:
    assert errors(item) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"call__id": "   "}, [("call.id", "id should not be empty")]),
        ({"call__id": None}, [("call.id", "id should not be empty")]),
        ({"call__id": 7}, [("call.id", "id must be a string")]),
        ({"call__id": "x" * 256}, [("call.id", "id must be shorter than or equal to 255 characters")]),
        (
            {"call__recording_url": "ftp://x/a.mp3"},
            [("call.recording_url", "recording_url must be an absolute http(s) URL")],
        ),
        (
            {"call__start_time": "2023-01-01T10:00:00+02:00"},
            [("call.start_time", "start_time must be an ISO 8601 date-time in UTC (YYYY-MM-DDThh:mm:ssZ)")],
        ),
        (
            {"call__start_time": "2023-02-30T10:00:00Z"},
            [("call.start_time", "start_time must be an ISO 8601 date-time in UTC (YYYY-MM-DDThh:mm:ssZ)")],
        ),
        ({"call__end_time": "2023-01-01T09:00:00Z"}, [("call.end_time", "end_time must be after start_time")]),
        (
            {"call__contact_number": "+1234567890\n"},
            [("call.contact_number", "contact_number must be a phone number in E.164 format (e.g. +1234567890)")],
        ),
        ({"agent": None}, [("agent", "agent should not be empty")]),
        ({"agent__email": "a@b"}, [("agent.email", "email must be an email")]),
        ({"customer__name": "n" * 256}, [("customer.name", "name must be shorter than or equal to 255 characters")]),
        (
            {"callback_url": "http://hooks.example.com"},
            [("callback_url", "callback_url must be a URL starting with https://")],
        ),
        ({"metadata": {"a": True}}, [("metadata.a", "a must be a string or a number")]),
        ({"metadata": {str(i): i for i in range(6)}}, [("metadata", "metadata must contain no more than 5 keys")]),
        (
            {"custom_fields": [{"value": 1}, "x"]},
            [
                ("custom_fields[0].internal_name", "internal_name should not be empty"),
                ("custom_fields[1]", "custom_fields[1] must be an object"),
            ],
        ),
        ({"tier": 2**63}, [("tier", "tier must be an integer that fits in 64 bits")]),
        ({"call__id": "a\x00b"}, [("call.id", "id must not contain the NUL character (U+0000)")]),
    ],
)
def test_rules_in_the_apis_words(changes: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert errors(make_item(**changes)) == expected


def test_nan_and_infinity_are_not_json() -> None:
    assert errors(make_item(metadata={"score": float("nan")})) == [
        ("metadata.score", "score must be a finite number (NaN and Infinity are not JSON)")
    ]
    assert json_errors(make_item(extra=float("inf"))) == [
        FieldError(field="extra", message="extra must be a finite number (NaN and Infinity are not JSON)")
    ]


def test_models_and_datetimes_become_the_apis_json() -> None:
    start = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    item = CallItem(
        call=Call(
            id="c1",
            recording_url="https://r.example.com/a.mp3",
            start_time=start,
            end_time=start + timedelta(minutes=5),
            contact_number="+14155550100",
        ),
        agent=Agent(id="a1"),
        customer=Customer(id="u1"),
        industry="SaaS",
    )
    data = normalize(item)
    assert data["call"]["start_time"] == "2024-05-01T10:00:00Z"
    assert data["industry"] == "SaaS"
    assert "callback_url" not in data  # unset optional fields are not sent
    assert validate_item(data) == []
    naive = make_item()
    naive["call"]["start_time"] = datetime(2024, 5, 1, 10)  # noqa: DTZ001 - the case under test
    assert errors(naive)[0][0] == "call.start_time"


def test_size_and_rebasing() -> None:
    assert size_error(100) is None
    too_big = size_error(MAX_BATCH_BYTES)
    assert too_big is not None and "5 MB" in too_big.message
    assert rebase(FieldError(field="data[12].call.id", message="id should not be empty")) == (
        12,
        FieldError(field="call.id", message="id should not be empty"),
    )
    assert rebase(FieldError(field="data", message="data should not be empty"))[0] is None
    assert call_id_of({"call": {"id": "x"}}) == "x"
    assert encode_item({"a": "é"}) == '{"a":"é"}'.encode()


def test_unknown_fields_may_not_nest_past_the_apis_limit() -> None:
    deep: Any = 1
    for _ in range(29):
        deep = [deep]
    assert errors(make_item(extra=deep)) == []  # 29 levels, under the item's 3: 32 in all
    assert errors(make_item(extra=[deep])) == [
        ("extra", "extra must not nest arrays or objects more than 32 levels deep in the body")
    ]
    item = make_item()
    item["customer"]["history"] = [deep]
    assert errors(item)[0][0] == "customer.history"
    very: Any = 1
    for _ in range(5000):
        very = [very]
    assert errors(make_item(extra=very))[0][0] == "extra"  # no recursion error on the way
