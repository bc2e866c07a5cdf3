"""The event contract: checked-in JSON Schema files match the models, and v1 readers are
forward compatible."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import orjson
import pytest

from schemas import generate
from schemas.analysis import DEFAULT_CONFIG, ConfigSnapshot
from schemas.events import (
    FAILURE_CODES,
    CallFailed,
    CallFailedPayload,
    CallIngested,
    CallIngestedPayload,
    dump_event,
    failure_code,
    failure_from_key,
    follow_up,
    new_event_ids,
    parse_event,
    salvage_event,
)
from services.gateway.handlers import Partner, Tenancy, encode_event, parse_batch
from tests.factories import call_item, ingested_event

JSON_DIR = Path(generate.__file__).parent / "json"
SNAPSHOT = ConfigSnapshot(config_id=DEFAULT_CONFIG.config_id(), config=DEFAULT_CONFIG, source="default")


@pytest.mark.parametrize("name", sorted(generate.schemas()))
def test_checked_in_json_schema_matches_the_models(name: str) -> None:
    checked_in = (JSON_DIR / name).read_text(encoding="utf-8")
    assert checked_in == generate.render(generate.schemas()[name]), f"schemas/json/{name} is stale: run `make schemas`"


def _ingested(**overrides: object) -> CallIngested:
    item = call_item("c-1", custom_fields=[{"internal_name": "deal", "value": 3}], **overrides)
    items = parse_batch(orjson.dumps({"data": [item]}))
    raw = encode_event(
        items[0], Partner("ptn_x", None), Tenancy("t1", "s1"), received_at=datetime.now(UTC), event_id=str(uuid.uuid4())
    )
    event = parse_event(raw)
    assert isinstance(event, CallIngested)
    return event


def test_gateway_events_validate_against_the_checked_in_schema() -> None:
    event = json.loads(dump_event(_ingested()))
    schema = json.loads((JSON_DIR / "calls.ingested.v1.json").read_text())
    jsonschema.validate(event, schema)
    assert event["type"] == "call.ingested"
    assert event["schema_version"] == 1
    assert event["payload"]["extra"] == {"industry": "Technology", "function": "Sales"}
    assert event["payload"]["call"]["start_time"] == "2023-01-01T10:00:00Z"


def test_schema_rejects_an_event_missing_its_envelope() -> None:
    event = json.loads(dump_event(_ingested()))
    del event["call_id"]
    schema = json.loads((JSON_DIR / "calls.ingested.v1.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event, schema)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"callback_url": None, "metadata": None, "industry": None, "function": None, "agent__email": None},
        {"call__start_time": "2023-01-01T10:00:00.5+00:00", "customer": {"id": "c", "email": None, "tier": "gold"}},
    ],
)
def test_fast_encoding_equals_the_model(overrides: dict[str, object]) -> None:
    """The gateway encodes events without building models; what it writes must be, field for
    field, the event the model describes (built here independently, through the models)."""
    item = call_item("c-1", custom_fields=[{"internal_name": "deal", "value": 3}], **overrides)
    received_at, event_id = datetime.now(UTC), uuid.uuid4()
    raw = encode_event(
        parse_batch(orjson.dumps({"data": [item]}))[0],
        Partner("ptn_x", None),
        Tenancy("t1", "s1"),
        received_at=received_at,
        event_id=str(event_id),
        analysis_config=SNAPSHOT.model_dump(mode="json"),
    )
    known = {"call", "agent", "customer", "callback_url", "metadata", "custom_fields"}
    expected = CallIngested(
        event_id=event_id,
        occurred_at=received_at,
        partner_id="ptn_x",
        tenant_id="t1",
        subtenant_id="s1",
        call_id="c-1",
        source="gateway",
        payload=CallIngestedPayload.model_validate(
            {
                **{k: v for k, v in item.items() if k in known},
                "metadata": item.get("metadata") or {},
                "extra": {k: v for k, v in item.items() if k not in known},
                "received_at": received_at,
                "analysis_config": SNAPSHOT,
            }
        ),
    )
    assert parse_event(raw) == expected


def test_new_event_ids_are_distinct_version_4_uuids() -> None:
    ids = new_event_ids(1000)
    assert len(set(ids)) == 1000
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids)


def test_round_trip_through_the_union() -> None:
    event = _ingested()
    parsed = parse_event(dump_event(event))
    assert isinstance(parsed, CallIngested)
    assert parsed == event


def test_v1_reader_accepts_fields_added_later() -> None:
    raw = json.loads(dump_event(_ingested()))
    raw["trace_id"] = "abc"  # new envelope field
    raw["payload"]["priority"] = "high"  # new payload field
    raw["payload"]["call"]["direction"] = "outbound"  # new nested field
    parsed = parse_event(json.dumps(raw))
    assert isinstance(parsed, CallIngested)
    assert parsed.model_extra == {"trace_id": "abc"}
    assert parsed.payload.model_extra == {"priority": "high"}
    # Unknown fields survive a re-publish by an older service.
    assert json.loads(dump_event(parsed))["payload"]["call"]["direction"] == "outbound"


def test_union_dispatches_on_type() -> None:
    failed = CallFailed(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        partner_id="p",
        tenant_id="t",
        subtenant_id="s",
        call_id="c",
        source="fetcher",
        payload={"stage": "fetch", "code": "http_status", "message": "recording not found", "retryable": False},
    )
    assert isinstance(parse_event(dump_event(failed)), CallFailed)


def test_a_different_major_version_is_rejected() -> None:
    raw = json.loads(dump_event(_ingested()))
    raw["schema_version"] = 2
    with pytest.raises(ValueError):
        parse_event(json.dumps(raw))


def test_payload_requires_what_later_stages_need() -> None:
    with pytest.raises(ValueError):
        CallIngestedPayload.model_validate({"call": {"id": "x"}, "received_at": datetime.now(UTC)})


def test_an_event_too_deep_to_parse_is_salvaged_from_its_declared_fields() -> None:

    ingested = ingested_event()
    failed = CallFailed(
        **follow_up(ingested, event_id=uuid.uuid4(), source="fetcher"),
        payload=CallFailedPayload(stage="fetch", code="timeout", message="m", ingested=ingested.payload),
    )
    raw = orjson.loads(dump_event(failed))
    deep: list[object] = []
    for _ in range(300):
        deep = [deep]
    raw["payload"]["ingested"]["extra"] = {"deep": deep}
    raw["payload"]["ingested"]["call"]["also"] = deep
    encoded = json.dumps(raw).encode()
    with pytest.raises(ValueError):
        parse_event(encoded)
    salvaged = salvage_event(encoded)
    assert isinstance(salvaged, CallFailed)
    assert salvaged.event_id == failed.event_id and salvaged.payload.code == "timeout"
    assert salvaged.payload.ingested is not None
    assert salvaged.payload.ingested.extra == {} and salvaged.payload.ingested.call.model_extra == {}
    assert salvaged.payload.ingested.callback_url == ingested.payload.callback_url
    assert salvage_event(b"\x00 not json") is None
    assert salvage_event(b'{"type": "call.nothing"}') is None


def test_a_failure_from_the_key_alone_names_the_call() -> None:

    event_id = uuid.uuid4()
    failed = failure_from_key(b"ptn_1/call-9", b"garbage", stage="fetch", source="fetcher", event_id=event_id)
    assert failed is not None and (failed.partner_id, failed.call_id) == ("ptn_1", "call-9")
    assert (failed.payload.stage, failed.payload.code, failed.payload.ingested) == ("fetch", "undecodable_event", None)
    readable = b'{"tenant_id": "t1", "subtenant_id": "s1", "payload": ' + b"[" * 2000 + b"}"
    assert failure_from_key(b"p/c", readable, stage="analyze", source="a", event_id=event_id) is not None
    assert failure_from_key(b"no-slash", b"", stage="fetch", source="f", event_id=event_id) is None
    assert failure_from_key(None, b"", stage="fetch", source="f", event_id=event_id) is None


def test_failure_codes_are_a_closed_set() -> None:

    assert failure_code("http_status") == "http_status"
    with pytest.raises(ValueError):
        failure_code("made_up")
    with pytest.raises(ValueError):
        CallFailedPayload(stage="fetch", code="made_up", message="m")  # type: ignore[arg-type]
    assert {"internal_error", "undecodable_event", "event_too_large", "corrupt", "asr_timeout"} <= FAILURE_CODES
