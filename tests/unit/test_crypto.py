"""Envelope encryption of secrets at rest."""

from __future__ import annotations

import pytest

from services.common.crypto import PREFIX, CryptoError, SecretBox, new_key, parse_keys
from services.common.errors import ConfigurationError
from services.common.settings import DEV_SECRETS_ENCRYPTION_KEYS
from services.notifier.config import NotifierSettings

OLD, NEW = new_key(), new_key()


def test_a_sealed_value_opens_with_its_context_and_only_with_it() -> None:
    box = SecretBox.from_config(f"k1:{OLD}")
    sealed = box.seal("whsec_abc", "partner-1")
    assert sealed.startswith(f"{PREFIX}k1:") and "whsec_abc" not in sealed
    assert box.open(sealed, "partner-1") == "whsec_abc"
    assert box.seal("whsec_abc", "partner-1") != sealed  # a fresh data key and nonce every time
    with pytest.raises(CryptoError):
        box.open(sealed, "partner-2")  # copied onto another partner's row
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(CryptoError):
        box.open(tampered, "partner-1")
    with pytest.raises(CryptoError):
        box.open("whsec_plain", "partner-1")


def test_rotation_rewraps_without_touching_the_ciphertext() -> None:
    old = SecretBox.from_config(f"k1:{OLD}")
    sealed = old.seal("whsec_abc", "p")
    rotated = SecretBox.from_config(f"k2:{NEW},k1:{OLD}")
    assert rotated.current == "k2" and not rotated.is_current(sealed)
    assert rotated.open(sealed, "p") == "whsec_abc"  # old values still open during the rotation
    rewrapped = rotated.rewrap(sealed, "p")
    assert rotated.is_current(rewrapped) and rewrapped.rsplit(":", 1)[1] == sealed.rsplit(":", 1)[1]
    only_new = SecretBox.from_config(f"k2:{NEW}")
    assert only_new.open(rewrapped, "p") == "whsec_abc"
    with pytest.raises(CryptoError, match="k1"):
        only_new.open(sealed, "p")  # not rewrapped: its key is gone


@pytest.mark.parametrize(
    "config",
    ["", "k1", "k1:short", f"bad id:{OLD}", f"k1:{OLD},k1:{NEW}", "k1:!!!not-base64!!!"],
)
def test_malformed_key_lists_are_refused(config: str) -> None:
    with pytest.raises(CryptoError):
        parse_keys(config)


def test_production_refuses_the_development_key_and_a_missing_one() -> None:
    production = {"environment": "production", "database_url": "postgresql://u:p@db/callpipe"}
    with pytest.raises(ConfigurationError, match="SECRETS_ENCRYPTION_KEYS"):
        NotifierSettings(**production, secrets_encryption_keys=DEV_SECRETS_ENCRYPTION_KEYS)
    with pytest.raises(CryptoError):
        NotifierSettings(**production, secrets_encryption_keys="")
    settings = NotifierSettings(**production, secrets_encryption_keys=f"prod-1:{NEW}")
    assert settings.secret_box().current == "prod-1"
    assert "prod-1" not in repr(settings) and NEW not in repr(settings)
