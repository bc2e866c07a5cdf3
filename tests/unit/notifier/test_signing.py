"""Signatures checked by the official Standard Webhooks verifier."""

from __future__ import annotations

import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.notifier.signing import new_secret, secret_key, signed_headers

BODY = b'{"call_id":"c1","status":"completed"}'


def test_a_signature_verifies_with_the_standard_webhooks_package() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(secret_key(secret)) == 32
    headers = signed_headers([secret], "msg_abc", int(time.time()), BODY)
    assert Webhook(secret).verify(BODY, headers) == {"call_id": "c1", "status": "completed"}


@pytest.mark.parametrize(
    "tamper",
    ["body", "secret", "stale", "future", "id"],
)
def test_tampering_is_rejected(tamper: str) -> None:
    secret = new_secret()
    stamp = int(time.time()) - (600 if tamper == "stale" else 0) + (600 if tamper == "future" else 0)
    headers = signed_headers([secret], "msg_abc", stamp, BODY)
    body = BODY.replace(b"c1", b"c2") if tamper == "body" else BODY
    if tamper == "id":
        headers["webhook-id"] = "msg_other"
    verifier = Webhook(new_secret() if tamper == "secret" else secret)
    with pytest.raises(WebhookVerificationError):
        verifier.verify(body, headers)


def test_during_rotation_both_secrets_verify() -> None:
    old, new = new_secret(), new_secret()
    headers = signed_headers([new, old], "msg_abc", int(time.time()), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(BODY, headers)
    Webhook(old).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)
