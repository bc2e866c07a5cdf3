"""Verifying callbacks (Standard Webhooks) and reading them as typed ``Callback`` models.

Every callback carries ``webhook-id`` (the delivery id, the same on every retry and redelivery:
drop duplicates by it), ``webhook-timestamp`` (unix seconds of the attempt) and
``webhook-signature``: space-separated ``v1,<base64 HMAC-SHA256>`` of ``{id}.{timestamp}.{body}``
keyed by the base64-decoded part of your ``whsec_...`` secret. While a secret is being rotated the
header carries one signature per valid secret.

    from callpipe_client import Webhook

    webhook = Webhook("whsec_...")

    def on_callback(body: bytes, headers) -> None:
        callback = webhook.verify(body, headers)   # raises WebhookVerificationError if forged
        print(callback.call_id, callback.intent)

Verify the raw bytes as received, before any JSON parsing or re-encoding.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from callpipe_client.errors import WebhookVerificationError
from callpipe_client.models import Callback

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format, not a secret
DEFAULT_TOLERANCE_S = 300


@dataclass(frozen=True)
class VerifiedWebhook:
    """A verified callback with its delivery id (for de-duplication) and signing time."""

    webhook_id: str
    timestamp: int
    callback: Callback


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from None
    if not key:
        raise ValueError("empty webhook secret")
    return key


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of a message (to test your own endpoint)."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookVerificationError(f"missing header {name}")


class Webhook:
    """Verifies callbacks signed with one of ``secrets`` (several while you rotate yours)."""

    def __init__(self, secrets: str | Iterable[str], *, tolerance_s: int = DEFAULT_TOLERANCE_S) -> None:
        listed = [secrets] if isinstance(secrets, str) else list(secrets)
        if not listed:
            raise ValueError("no webhook secret")
        self._keys = [_key(s) for s in listed]
        self.tolerance_s = tolerance_s

    def verify_message(
        self, body: bytes | str, headers: Mapping[str, str], *, now: float | None = None
    ) -> VerifiedWebhook:
        """Check the signature and the timestamp, then parse the body."""
        raw = body.encode("utf-8") if isinstance(body, str) else body
        webhook_id = _header(headers, "webhook-id")
        stamp = _header(headers, "webhook-timestamp")
        signatures = _header(headers, "webhook-signature")
        try:
            timestamp = int(stamp)
        except ValueError:
            raise WebhookVerificationError("webhook-timestamp is not a unix time") from None
        current = time.time() if now is None else now
        if timestamp < current - self.tolerance_s:
            raise WebhookVerificationError("message timestamp too old")
        if timestamp > current + self.tolerance_s:
            raise WebhookVerificationError("message timestamp too new")
        signed = f"{webhook_id}.{timestamp}.".encode() + raw
        expected = [hmac.new(key, signed, hashlib.sha256).digest() for key in self._keys]
        if not any(self._matches(candidate, expected) for candidate in signatures.split()):
            raise WebhookVerificationError("no matching signature")
        try:
            callback = Callback.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            raise WebhookVerificationError(f"signed body is not a callback: {exc}") from None
        return VerifiedWebhook(webhook_id=webhook_id, timestamp=timestamp, callback=callback)

    def verify(self, body: bytes | str, headers: Mapping[str, str], *, now: float | None = None) -> Callback:
        """The verified callback; raises ``WebhookVerificationError`` on anything forged or stale."""
        return self.verify_message(body, headers, now=now).callback

    @staticmethod
    def _matches(candidate: str, expected: list[bytes]) -> bool:
        version, _, encoded = candidate.partition(",")
        if version != "v1" or not encoded:
            return False
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return False
        # Every expected digest is compared, in constant time each.
        matches = [hmac.compare_digest(given, digest) for digest in expected]
        return any(matches)


def verify_webhook(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str | Iterable[str],
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> Callback:
    """One-shot ``Webhook(secret).verify(body, headers)``."""
    return Webhook(secret, tolerance_s=tolerance_s).verify(body, headers, now=now)
