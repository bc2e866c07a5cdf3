"""Standard Webhooks verification: what verifies, what does not, and agreement with the
reference implementation (the standardwebhooks package, when installed)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import datetime, timezone

import pytest

from callpipe_client import Webhook, WebhookVerificationError, verify_webhook
from callpipe_client.webhooks import sign

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"o" * 32).decode()
BODY = json.dumps(
    {
        "call_id": "call123",
        "status": "completed",
        "intent": "INTERESTED",
        "quality_score": 42,
        "summary": [{"chapter_name": "Intro", "chapter_summary": "Greetings."}],
        "bant": {
            "needs": "- Webhooks.",
            "objection": "",
            "concern_categories": "Functionality",
            "objection_handling": "",
        },
        "qualification": [{"label": "Needs", "answer": "Webhooks."}],
        "quality": [
            {"parameter_name": "Setting Context", "inference_score": 10, "parameter_score": 10, "is_fatal": False}
        ],
        "meta": {"source": "webhook", "timestamp": "2025-05-08T04:53:11.110Z", "campaign": "Q1"},
    }
).encode()


def headers(secret: str = SECRET, body: bytes = BODY, at: int | None = None, msg_id: str = "msg_1") -> dict[str, str]:
    stamp = int(time.time()) if at is None else at
    return {
        "Webhook-Id": msg_id,
        "Webhook-Timestamp": str(stamp),
        "Webhook-Signature": sign(secret, msg_id, stamp, body),
    }


def test_a_signed_callback_verifies_into_the_typed_model() -> None:
    verified = Webhook(SECRET).verify_message(BODY, headers())
    callback = verified.callback
    assert verified.webhook_id == "msg_1"
    assert (callback.call_id, callback.intent, callback.quality_score, callback.failed) == (
        "call123",
        "INTERESTED",
        42,
        False,
    )
    assert (
        callback.summary[0].chapter_name == "Intro"
        and callback.bant
        and callback.bant.concern_categories == "Functionality"
    )
    assert callback.meta is not None and callback.meta.model_extra == {"campaign": "Q1"}


# Built when each test runs, not at collection: a timestamp taken at collection can be minutes
# old by the time a long suite reaches the test.
_CASES: dict[str, tuple[bytes, Callable[[], dict[str, str]], str]] = {
    "tampered body": (BODY + b" ", headers, "no matching signature"),
    "other secret": (BODY, lambda: headers(OTHER), "no matching signature"),
    "too old": (BODY, lambda: headers(at=int(time.time()) - 301), "too old"),
    "too new": (BODY, lambda: headers(at=int(time.time()) + 900), "too new"),
    "unknown scheme": (BODY, lambda: {**headers(), "Webhook-Signature": "v2,abc"}, "no matching signature"),
    "no id": (
        BODY,
        lambda: {k: v for k, v in headers().items() if k != "Webhook-Id"},
        "missing header webhook-id",
    ),
    "not a callback": (b"[1]", lambda: headers(body=b"[1]"), "not a callback"),
}


@pytest.mark.parametrize("case", list(_CASES))
def test_anything_forged_stale_or_malformed_is_refused(case: str) -> None:
    body, make_headers, reason = _CASES[case]
    with pytest.raises(WebhookVerificationError, match=reason):
        verify_webhook(body, make_headers(), SECRET)


def test_during_a_rotation_either_secret_verifies_the_doubly_signed_message() -> None:
    hdrs = headers()
    hdrs["Webhook-Signature"] = (
        f"{sign(OTHER, 'msg_1', int(hdrs['Webhook-Timestamp']), BODY)} {hdrs['Webhook-Signature']}"
    )
    assert Webhook(SECRET).verify(BODY, hdrs).call_id == "call123"
    assert Webhook(OTHER).verify(BODY, hdrs).call_id == "call123"
    assert Webhook([OTHER, SECRET]).verify(BODY, headers()).call_id == "call123"


def test_a_saved_callback_verifies_at_its_own_time() -> None:
    old = int(time.time()) - 86400
    assert verify_webhook(BODY, headers(at=old), SECRET, now=old + 5).call_id == "call123"


def test_agrees_with_the_reference_implementation() -> None:
    standardwebhooks = pytest.importorskip("standardwebhooks")
    hdrs = headers()
    assert (
        standardwebhooks.Webhook(SECRET).verify(BODY, {k.lower(): v for k, v in hdrs.items()})["call_id"] == "call123"
    )
    stamp = int(time.time())
    theirs = standardwebhooks.Webhook(SECRET).sign("msg_2", datetime.fromtimestamp(stamp, timezone.utc), BODY.decode())
    signed = {"webhook-id": "msg_2", "webhook-timestamp": str(stamp), "webhook-signature": theirs}
    assert Webhook(SECRET).verify(BODY, signed).call_id == "call123"
