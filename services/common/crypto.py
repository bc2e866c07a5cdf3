"""Envelope encryption of secrets at rest (``cryptography``'s AES-256-GCM).

Each value gets a data key of its own, random, which encrypts it; the data key is stored wrapped
(encrypted) by a key-encryption key from configuration (``SECRETS_ENCRYPTION_KEYS``). The stored
text names the key that wrapped it::

    enc:v1:<key id>:<base64url(nonce + wrapped data key)>:<base64url(nonce + ciphertext)>

Rotation: put a new key first in ``SECRETS_ENCRYPTION_KEYS`` (``new-id:KEY,old-id:KEY``); new
values are wrapped with it at once, old ones still open with the old key, and ``rewrap`` moves a
value to the current key by re-wrapping its data key only (the ciphertext is unchanged). Once every
value is rewrapped (the notifier's admin ``secrets reseal``), the old key can be removed.

The value's own context (e.g. the partner it belongs to) is bound as associated data, so a
ciphertext copied onto another partner's row does not open.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.common.errors import CommonError

PREFIX = "enc:v1:"
_KEY_BYTES = 32
_NONCE_BYTES = 12
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class CryptoError(CommonError):
    """A value cannot be encrypted or opened (unknown key, tampered text, bad configuration)."""

    code = "crypto_error"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key() -> str:
    """A fresh key-encryption key, as configuration takes it (base64url of 256 random bits)."""
    return _b64(os.urandom(_KEY_BYTES))


def parse_keys(text: str) -> tuple[str, dict[str, bytes]]:
    """``"id2:KEY2,id1:KEY1"`` -> (current key id, {id: key}); the first key is the current one."""
    keys: dict[str, bytes] = {}
    current = ""
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key_id, sep, encoded = part.partition(":")
        if not sep or not _KEY_ID.match(key_id):
            raise CryptoError("SECRETS_ENCRYPTION_KEYS: each key is <id>:<base64url of 32 bytes>")
        try:
            key = _unb64(encoded)
        except (binascii.Error, ValueError):
            raise CryptoError(f"SECRETS_ENCRYPTION_KEYS: key {key_id} is not base64url") from None
        if len(key) != _KEY_BYTES:
            raise CryptoError(f"SECRETS_ENCRYPTION_KEYS: key {key_id} must be 32 bytes")
        if key_id in keys:
            raise CryptoError(f"SECRETS_ENCRYPTION_KEYS: key {key_id} appears twice")
        keys[key_id] = key
        current = current or key_id
    if not keys:
        raise CryptoError("SECRETS_ENCRYPTION_KEYS is empty")
    return current, keys


@dataclass(frozen=True)
class SecretBox:
    """Encrypts and opens values with envelope encryption under ``keys[current]``."""

    current: str
    keys: Mapping[str, bytes]

    @classmethod
    def from_config(cls, text: str) -> SecretBox:
        current, keys = parse_keys(text)
        return cls(current, keys)

    def seal(self, plaintext: str, context: str) -> str:
        """``plaintext`` encrypted with a fresh data key wrapped by the current key."""
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(_NONCE_BYTES)
        ciphertext = AESGCM(data_key).encrypt(nonce, plaintext.encode(), context.encode())
        return self._envelope(data_key, nonce + ciphertext, context)

    def open(self, sealed: str, context: str) -> str:
        """The plaintext of ``sealed`` (CryptoError if its key is unknown or it was tampered with)."""
        data_key, body = self._unwrap(sealed, context)
        try:
            return AESGCM(data_key).decrypt(body[:_NONCE_BYTES], body[_NONCE_BYTES:], context.encode()).decode()
        except InvalidTag:
            raise CryptoError("the sealed value does not open: tampered, or sealed for another context") from None

    def rewrap(self, sealed: str, context: str) -> str:
        """``sealed`` with its data key wrapped by the current key (same ciphertext)."""
        data_key, body = self._unwrap(sealed, context)
        return self._envelope(data_key, body, context)

    def is_current(self, sealed: str) -> bool:
        """Whether ``sealed`` is wrapped by the current key."""
        return sealed.startswith(f"{PREFIX}{self.current}:")

    def _envelope(self, data_key: bytes, body: bytes, context: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        wrapped = AESGCM(self.keys[self.current]).encrypt(nonce, data_key, context.encode())
        return f"{PREFIX}{self.current}:{_b64(nonce + wrapped)}:{_b64(body)}"

    def _unwrap(self, sealed: str, context: str) -> tuple[bytes, bytes]:
        if not sealed.startswith(PREFIX):
            raise CryptoError("not a sealed value")
        try:
            key_id, wrapped, body = sealed[len(PREFIX) :].split(":")
            wrapped_bytes, body_bytes = _unb64(wrapped), _unb64(body)
        except (ValueError, binascii.Error):
            raise CryptoError("a sealed value is malformed") from None
        kek = self.keys.get(key_id)
        if kek is None:
            raise CryptoError(f"the key {key_id!r} that sealed this value is not configured")
        try:
            data_key = AESGCM(kek).decrypt(wrapped_bytes[:_NONCE_BYTES], wrapped_bytes[_NONCE_BYTES:], context.encode())
        except InvalidTag:
            raise CryptoError("the sealed value does not open: tampered, or sealed for another context") from None
        return data_key, body_bytes
