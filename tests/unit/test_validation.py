"""Every validation rule of the spec's field tables: one passing and one failing case (at least),
checked through the same parser the endpoint uses, with the exact field path and message."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from services.gateway.errors import MalformedBody, ValidationFailed
from services.gateway.handlers import parse_batch
from tests.factories import call_item


def errors_of(body: Any) -> list[dict[str, str]]:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    try:
        parse_batch(raw)
    except ValidationFailed as exc:
        return exc.errors
    return []


def errors_for_item(**overrides: Any) -> list[dict[str, str]]:
    return errors_of({"data": [call_item(**overrides)]})


def test_spec_example_is_valid() -> None:
    assert errors_for_item() == []


# -- call ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "   "])
def test_call_id_must_not_be_empty(value: Any) -> None:
    item = call_item()
    if value is None:
        del item["call"]["id"]
    else:
        item["call"]["id"] = value
    assert errors_of({"data": [item]}) == [{"field": "data[0].call.id", "message": "id should not be empty"}]


def test_call_id_must_be_a_string() -> None:
    item = call_item()
    item["call"]["id"] = 123
    assert errors_of({"data": [item]}) == [{"field": "data[0].call.id", "message": "id must be a string"}]


@pytest.mark.parametrize(
    "url",
    [
        "http://recordings.example.com/a.mp3",
        "https://cdn.example.com/path/a.wav?sig=abc&exp=1",
        "https://user:pass@files.example.com:8443/a.m4a",
    ],
)
def test_recording_url_accepts_absolute_http_urls(url: str) -> None:
    assert errors_for_item(call__recording_url=url) == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.mp3",
        "/recordings/a.mp3",
        "https://",
        "not a url",
        "https://exa mple.com/a.mp3",
        "file:///etc/passwd",
        "https://example.com:99999/a.mp3",
    ],
)
def test_recording_url_rejects_anything_else(url: str) -> None:
    assert errors_for_item(call__recording_url=url) == [
        {"field": "data[0].call.recording_url", "message": "recording_url must be an absolute http(s) URL"}
    ]


@pytest.mark.parametrize("ts", ["2023-01-01T10:00:00Z", "2023-01-01T10:00:00.123Z", "2023-01-01T10:00:00+00:00"])
def test_start_time_accepts_utc_iso8601(ts: str) -> None:
    assert errors_for_item(call__start_time=ts) == []


@pytest.mark.parametrize(
    "ts",
    [
        "2023-01-01 10:00:00",
        "2023-01-01T10:00:00",
        "2023-01-01T12:00:00+02:00",
        "2023-13-01T10:00:00Z",
        "01/01/2023",
        1672567200,
    ],
)
def test_start_time_must_be_utc_iso8601(ts: Any) -> None:
    assert errors_for_item(call__start_time=ts) == [
        {
            "field": "data[0].call.start_time",
            "message": "start_time must be an ISO 8601 date-time in UTC (YYYY-MM-DDThh:mm:ssZ)",
        }
    ]


@pytest.mark.parametrize("end", ["2023-01-01T10:00:00Z", "2023-01-01T09:59:59Z"])
def test_end_time_must_be_after_start_time(end: str) -> None:
    assert errors_for_item(call__start_time="2023-01-01T10:00:00Z", call__end_time=end) == [
        {"field": "data[0].call.end_time", "message": "end_time must be after start_time"}
    ]


def test_end_time_after_start_time_is_valid() -> None:
    assert errors_for_item(call__start_time="2023-01-01T10:00:00Z", call__end_time="2023-01-01T10:00:01Z") == []


def test_end_time_must_be_utc_too() -> None:
    assert errors_for_item(call__end_time="2023-01-01T10:30:00-05:00")[0]["field"] == "data[0].call.end_time"


@pytest.mark.parametrize("number", ["+1234567890", "+442071838750", "+919876543210"])
def test_contact_number_accepts_e164(number: str) -> None:
    assert errors_for_item(call__contact_number=number) == []


@pytest.mark.parametrize("number", ["1234567890", "+0123456", "+12 345 678", "+1234567890123456", "+1", ""])
def test_contact_number_must_be_e164(number: str) -> None:
    errors = errors_for_item(call__contact_number=number)
    assert errors == [
        {
            "field": "data[0].call.contact_number",
            "message": "contact_number must be a phone number in E.164 format (e.g. +1234567890)",
        }
    ]


# -- agent and customer -------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["agent", "customer"])
def test_agent_and_customer_ids_are_required(who: str) -> None:
    assert errors_for_item(**{f"{who}__id": None}) == [
        {"field": f"data[0].{who}.id", "message": "id should not be empty"}
    ]


@pytest.mark.parametrize("who", ["agent", "customer"])
def test_agent_and_customer_are_required(who: str) -> None:
    assert errors_for_item(**{who: None}) == [{"field": f"data[0].{who}", "message": f"{who} should not be empty"}]


@pytest.mark.parametrize("who", ["agent", "customer"])
@pytest.mark.parametrize("email", ["first.last+tag@sub.example.co.uk", "a@b.io"])
def test_emails_accept_valid_addresses(who: str, email: str) -> None:
    assert errors_for_item(**{f"{who}__email": email}) == []


@pytest.mark.parametrize("who", ["agent", "customer"])
@pytest.mark.parametrize(
    "email", ["plainaddress", "a@", "@example.com", "a@example", "a b@example.com", "a@exa_mple.com"]
)
def test_emails_must_be_valid(who: str, email: str) -> None:
    assert errors_for_item(**{f"{who}__email": email}) == [
        {"field": f"data[0].{who}.email", "message": "email must be an email"}
    ]


@pytest.mark.parametrize("who", ["agent", "customer"])
def test_optional_fields_may_be_absent_or_null(who: str) -> None:
    item = call_item()
    item[who] = {"id": "x", "email": None, "name": None}
    assert errors_of({"data": [item]}) == []


@pytest.mark.parametrize("who", ["agent", "customer"])
def test_names_are_at_most_255_characters(who: str) -> None:
    assert errors_for_item(**{f"{who}__name": "n" * 255}) == []
    assert errors_for_item(**{f"{who}__name": "n" * 256}) == [
        {"field": f"data[0].{who}.name", "message": "name must be shorter than or equal to 255 characters"}
    ]


def test_disposition_status_must_be_a_string() -> None:
    assert errors_for_item(customer__disposition_status="closed-won") == []
    assert errors_for_item(customer__disposition_status=3) == [
        {"field": "data[0].customer.disposition_status", "message": "disposition_status must be a string"}
    ]


# -- callback_url, metadata, custom_fields -------------------------------------------------------


def test_callback_url_is_optional_and_https() -> None:
    assert errors_for_item(callback_url=None) == []
    assert errors_for_item(callback_url="https://hooks.example.com/cb?x=1") == []


@pytest.mark.parametrize("url", ["http://hooks.example.com/cb", "ftp://hooks.example.com", "hooks.example.com/cb"])
def test_callback_url_must_start_with_https(url: str) -> None:
    assert errors_for_item(callback_url=url) == [
        {"field": "data[0].callback_url", "message": "callback_url must be a URL starting with https://"}
    ]


def test_metadata_accepts_five_string_or_number_pairs() -> None:
    assert errors_for_item(metadata={"a": "x", "b": 1, "c": 2.5, "d": -3, "e": ""}) == []


def test_metadata_has_at_most_five_pairs() -> None:
    assert errors_for_item(metadata={str(i): i for i in range(6)}) == [
        {"field": "data[0].metadata", "message": "metadata must contain no more than 5 keys"}
    ]


@pytest.mark.parametrize("value", [True, None, {"nested": 1}, [1, 2]])
def test_metadata_values_are_strings_or_numbers(value: Any) -> None:
    assert errors_for_item(metadata={"campaign": value}) == [
        {"field": "data[0].metadata.campaign", "message": "campaign must be a string or a number"}
    ]


def test_metadata_must_be_an_object() -> None:
    assert errors_for_item(metadata=["a"]) == [{"field": "data[0].metadata", "message": "metadata must be an object"}]


def test_custom_fields_accept_ten_items() -> None:
    fields = [
        {"internal_name": f"f{i}", "value": v} for i, v in enumerate(["x", 1, 2.5, True, None, "", "y", 0, "z", "w"])
    ]
    assert errors_for_item(custom_fields=fields) == []


def test_custom_fields_have_at_most_ten_items() -> None:
    fields = [{"internal_name": f"f{i}", "value": "v"} for i in range(11)]
    assert errors_for_item(custom_fields=fields) == [
        {"field": "data[0].custom_fields", "message": "custom_fields must contain no more than 10 elements"}
    ]


def test_custom_field_items_are_internal_name_value_pairs() -> None:
    fields = [{"value": "v"}, {"internal_name": "", "value": "v"}, {"internal_name": "x", "value": {"a": 1}}, "x"]
    assert errors_for_item(custom_fields=fields) == [
        {"field": "data[0].custom_fields[0].internal_name", "message": "internal_name should not be empty"},
        {"field": "data[0].custom_fields[1].internal_name", "message": "internal_name should not be empty"},
        {"field": "data[0].custom_fields[2].value", "message": "value must be a string, a number, a boolean or null"},
        {"field": "data[0].custom_fields[3]", "message": "custom_fields[3] must be an object"},
    ]


# -- the batch ----------------------------------------------------------------------------------


def test_data_is_required_and_not_empty() -> None:
    assert errors_of({}) == [{"field": "data", "message": "data should not be empty"}]
    assert errors_of({"data": []}) == [{"field": "data", "message": "data should not be empty"}]


def test_data_has_at_most_fifty_calls() -> None:
    assert errors_of({"data": [call_item() for _ in range(50)]}) == []
    assert errors_of({"data": [call_item() for _ in range(51)]}) == [
        {"field": "data", "message": "data must contain no more than 50 elements"}
    ]


def test_body_must_be_an_object() -> None:
    assert errors_of([call_item()]) == [{"field": "body", "message": "body must be an object"}]


def test_every_error_of_the_request_is_reported_with_its_path() -> None:
    first, second, third = call_item(), call_item(), call_item()
    first["call"]["id"] = ""
    first["agent"]["email"] = "nope"
    third["callback_url"] = "http://insecure.example.com"
    third["call"]["end_time"] = "2022-12-31T00:00:00Z"
    assert errors_of({"data": [first, second, third]}) == [
        {"field": "data[0].call.id", "message": "id should not be empty"},
        {"field": "data[0].agent.email", "message": "email must be an email"},
        {"field": "data[2].call.end_time", "message": "end_time must be after start_time"},
        {"field": "data[2].callback_url", "message": "callback_url must be a URL starting with https://"},
    ]


def test_unknown_fields_are_accepted() -> None:
    items = parse_batch(orjson.dumps({"data": [call_item(industry="Technology", function="Sales", tier=3)]}))
    assert {k: items[0][k] for k in ("industry", "function", "tier")} == {
        "industry": "Technology",
        "function": "Sales",
        "tier": 3,
    }


@pytest.mark.parametrize("raw", [b"{bad json", b"", b'{"data": [}', b"\xff\xfe"])
def test_malformed_json_is_a_bad_request(raw: bytes) -> None:
    with pytest.raises(MalformedBody):
        parse_batch(raw)
