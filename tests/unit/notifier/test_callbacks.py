"""The callback bodies: the spec's "Callback Payload" field for field and type for type."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import orjson

from services.notifier.callbacks import failure_body, iso_utc_ms, result_body
from tests.support.spec_callback import ADDITIVE_BANT, ADDITIVE_TOP, SPEC_EXAMPLE, assert_same_shape
from tests.unit.notifier.factories import analyzed_event, failed_event

PREPARED = datetime(2025, 5, 8, 4, 53, 11, 110_000, tzinfo=UTC)


def test_the_result_callback_has_the_spec_shape_field_for_field_and_type_for_type() -> None:
    event = analyzed_event("https://partner.example.com/callback", metadata={})
    body = orjson.loads(result_body(event.call_id, event.payload, PREPARED))

    assert_same_shape(SPEC_EXAMPLE, body)
    assert set(body) == set(SPEC_EXAMPLE) | ADDITIVE_TOP
    assert set(body["bant"]) == set(SPEC_EXAMPLE["bant"]) | ADDITIVE_BANT
    for array in ("summary", "qualification", "quality"):
        for item in body[array]:
            assert set(item) == set(SPEC_EXAMPLE[array][0]), array
    assert body["call_id"] == event.call_id
    assert body["status"] == "completed"
    assert body["quality_score"] == 42 and isinstance(body["quality_score"], int)
    assert body["quality"][1]["inference_score"] == 2.5
    assert body["bant"]["budget"] == "$10,000" and body["bant"]["authority"] == ""  # not heard: empty, not null
    assert body["meta"] == {"source": "webhook", "timestamp": "2025-05-08T04:53:11.110Z"}


def test_the_transcript_and_internals_stay_out_of_the_callback() -> None:
    event = analyzed_event("https://partner.example.com/callback")
    raw = result_body(event.call_id, event.payload, PREPARED)
    for internal in (b"transcript", b"engines", b"pocketsphinx", b"config_id", b"Hello, this is Ann", b"ingested"):
        assert internal not in raw


def test_meta_carries_every_metadata_pair_and_the_partners_value_wins_a_collision() -> None:
    event = analyzed_event(
        "https://partner.example.com/callback", metadata={"campaign": "Q1 Outreach", "source": "Website", "n": 5}
    )
    meta = orjson.loads(result_body(event.call_id, event.payload, PREPARED))["meta"]
    assert meta == {"source": "Website", "timestamp": "2025-05-08T04:53:11.110Z", "campaign": "Q1 Outreach", "n": 5}


def test_a_null_analysis_keeps_every_field_present() -> None:
    event = analyzed_event("https://partner.example.com/callback")
    empty = event.payload.model_copy(
        update={"intent": "NO_CONVERSATION", "quality_score": None, "summary": [], "quality": [], "qualification": []}
    )
    body = orjson.loads(result_body(event.call_id, empty, PREPARED))
    assert set(body) == set(SPEC_EXAMPLE) | ADDITIVE_TOP
    assert body["quality_score"] is None and body["summary"] == [] and body["quality"] == []


def test_the_failure_callback_shape() -> None:
    event = failed_event("https://partner.example.com/callback")
    body = orjson.loads(failure_body(event.call_id, event.payload, PREPARED))
    assert body == {
        "call_id": event.call_id,
        "status": "failed",
        "error": {"stage": "fetch", "code": "http_status", "message": "the recording host answered HTTP 404"},
        "meta": {
            "source": "Website",  # the spec example's metadata has a "source" key: the partner's wins
            "timestamp": "2025-05-08T04:53:11.110Z",
            "campaign": "Q1 Outreach",
        },
    }


def test_timestamps_are_utc_with_milliseconds_and_z() -> None:
    stamp = iso_utc_ms(datetime.now(UTC))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    assert iso_utc_ms(datetime(2025, 1, 2, 3, 4, 5, 999_999, tzinfo=UTC)) == "2025-01-02T03:04:05.999Z"
