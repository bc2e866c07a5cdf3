"""The client's local validation says exactly what the gateway says: same fields, same messages,
for the spec's rules and for random damage to valid items (hypothesis). The client package does
not import the gateway; this test holds them together."""

from __future__ import annotations

import copy
import json
from typing import Any

from callpipe_client.validation import validate_item
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.gateway.errors import ValidationFailed
from services.gateway.handlers import parse_batch
from tests.factories import call_item

DELETE = object()


def nested(depth: int) -> Any:
    """Arrays within arrays, ``depth`` levels, around one object."""
    value: Any = {"leaf": 1}
    for _ in range(depth - 1):
        value = [value]
    return value


VALUES: list[Any] = [
    DELETE,
    None,
    "",
    "   ",
    "x" * 255,
    "x" * 256,
    "https://" + "a" * 2050 + ".com",
    123,
    2**64,
    -(2**63),
    True,
    1.5,
    [],
    {},
    ["x"],
    {"k": "v"},
    "a\x00b",
    "ok",
    "https://ok.example.com/a.mp3",
    "http://ok.example.com:8080/a.wav?x=1",
    "ftp://example.com/a.mp3",
    "https://exa mple.com/a",
    "https://example.com:99999/a",
    "2023-01-01T10:00:00Z",
    "2023-01-01T10:00:00.123456789+00:00",
    "2023-01-01T09:00:00Z",
    "2023-02-29T10:00:00Z",
    "2023-01-01T10:00:00+02:00",
    "2023-01-01T10:00:00Z\n",
    "+14155550100",
    "+0123",
    "+14155550100\n",
    "a@b.co",
    "first.last+tag@sub.example.co.uk",
    "a@b",
    "a@exa_mple.com",
    {"internal_name": "f", "value": 1},
    {"internal_name": "", "value": None},
    {"value": {"a": 1}},
    [{"internal_name": "f", "value": "v"}] * 11,
    {str(i): i for i in range(6)},
    {"a": True, "b": None, "c": [1]},
    # Around the nesting limit (32 levels for the body; unknown fields sit 4 to 6 levels down).
    nested(27),
    nested(28),
    nested(29),
    nested(30),
]

PATHS: list[tuple[str, ...]] = [
    ("call",),
    ("call", "id"),
    ("call", "recording_url"),
    ("call", "start_time"),
    ("call", "end_time"),
    ("call", "contact_number"),
    ("call", "extra_inside"),
    ("agent",),
    ("agent", "id"),
    ("agent", "email"),
    ("agent", "name"),
    ("customer",),
    ("customer", "id"),
    ("customer", "name"),
    ("customer", "email"),
    ("customer", "disposition_status"),
    ("callback_url",),
    ("metadata",),
    ("metadata", "campaign"),
    ("metadata", "n\x00k"),
    ("custom_fields",),
    ("custom_fields", 0),
    ("custom_fields", 0, "internal_name"),
    ("custom_fields", 0, "value"),
    ("custom_fields", 0, "note"),
    ("customer", "notes"),
    ("industry",),
    ("deep", "er"),
]


def mutate(item: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node: Any = item
    for key in path[:-1]:
        if isinstance(node, dict):
            if key not in node or not isinstance(node[key], dict | list):
                node[key] = [{"internal_name": "f", "value": "v"}] if key == "custom_fields" else {}
            node = node[key]
        elif isinstance(node, list):
            if not node:
                node.append({})
            node = node[0]
    last = path[-1]
    if isinstance(node, list):
        if not node:
            node.append(None)
        if value is DELETE:
            node.pop(0)
        else:
            node[0] = copy.deepcopy(value)
    elif isinstance(node, dict):
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = copy.deepcopy(value)


def gateway_errors(item: dict[str, Any]) -> list[tuple[str, str]]:
    try:
        parse_batch(json.dumps({"data": [item]}).encode())
    except ValidationFailed as exc:
        return sorted((e["field"], e["message"]) for e in exc.errors)
    return []


def client_errors(item: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for e in validate_item(item):
        field = f"data[0].{e.field}" if e.field else "data[0]"
        found.append((field, e.message.replace("item ", "data[0] ", 1) if not e.field else e.message))
    return sorted(found)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), st.sampled_from(VALUES)), min_size=1, max_size=3))
def test_damaged_items_get_the_same_errors_from_the_client_and_the_gateway(changes: list[Any]) -> None:
    item = call_item(custom_fields=[{"internal_name": "plan", "value": "pro"}])
    for path, value in changes:
        mutate(item, path, value)
    item = json.loads(json.dumps(item))  # what travels: JSON (object keys are strings)
    assert client_errors(item) == gateway_errors(item)


def test_the_spec_example_and_its_extras_are_valid_for_both() -> None:
    item = call_item(industry="Technology", function="Sales", tier=3)
    assert client_errors(item) == gateway_errors(item) == []
