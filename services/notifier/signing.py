"""Standard Webhooks signatures (https://www.standardwebhooks.com).

Each callback carries ``webhook-id`` (the delivery id, stable across retries), ``webhook-timestamp``
(unix seconds when the attempt is sent) and ``webhook-signature``: ``v1,`` + base64 of
HMAC-SHA256(key, ``"{id}.{timestamp}.{body}"``), where the key is the base64-decoded part of the
partner's ``whsec_...`` secret. While a rotated-out secret is still in its grace period, one
signature per valid secret is sent, space-separated, newest first; a receiver accepts the
callback when any of them verifies with the secret it knows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
_KEY_BYTES = 32


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` + base64 of 256 random bits."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_KEY_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a ``whsec_...`` secret stands for."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` for ``msg_id`` sent at ``timestamp``."""
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(valid_secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per valid secret, space-separated."""
    return " ".join(signature(s, msg_id, timestamp, body) for s in valid_secrets)


def signed_headers(valid_secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(valid_secrets, msg_id, timestamp, body),
    }
