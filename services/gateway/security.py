"""API credentials: generation, hashing and constant-time verification."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_PREFIX = "ck_"
SECRET_PREFIX = "cs_"  # noqa: S105 - a prefix, not a secret
# Compared against when the key is unknown, so an unknown key and a wrong secret take the same
# path and the same time.
_DUMMY_HASH = hashlib.sha256(b"no such credential").digest()


@dataclass(frozen=True)
class IssuedCredential:
    api_key: str
    api_secret: str

    @property
    def secret_sha256(self) -> bytes:
        return hash_secret(self.api_secret)


def new_partner_id() -> str:
    return "ptn_" + secrets.token_hex(8)


def issue_credential() -> IssuedCredential:
    """A public key id and a 256-bit secret; only the secret's hash is ever stored."""
    return IssuedCredential(
        api_key=KEY_PREFIX + secrets.token_urlsafe(18),
        api_secret=SECRET_PREFIX + secrets.token_urlsafe(32),
    )


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def secret_matches(presented: str, stored_sha256: bytes | None) -> bool:
    """Constant-time comparison; ``stored_sha256`` is None when the key is unknown."""
    expected = stored_sha256 if stored_sha256 is not None else _DUMMY_HASH
    ok = hmac.compare_digest(hash_secret(presented), expected)
    return ok and stored_sha256 is not None
