"""Notifier settings: ``NOTIFIER_*`` environment variables plus the shared ones."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.crypto import SecretBox
from services.common.errors import ConfigurationError
from services.common.settings import DEV_SECRETS_ENCRYPTION_KEYS, SecretsEncryptionSettings, ServiceSettings


class NotifierSettings(ServiceSettings, SecretsEncryptionSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFIER_", extra="ignore", populate_by_name=True, frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8003, ge=0, le=65535, description="health endpoints")
    db_schema: str = "notifier"
    group_id: str = "notifier"

    # Kafka side: the handler only records deliveries, so it needs few slots.
    concurrency: int = Field(16, ge=1, description="events handled at once per process")
    max_attempts: int = Field(5, ge=1, description="handler crashes before a message is dead-lettered")
    session_timeout_ms: int = Field(30_000, ge=6_000)
    outbox_batch_size: int = Field(100, ge=1)
    outbox_poll_interval_s: float = Field(0.5, gt=0)

    # Dispatcher: how many callbacks are in flight, in total and per partner, per process.
    dispatch_concurrency: int = Field(64, ge=1, description="callbacks in flight per process")
    per_partner_concurrency: int = Field(
        4, ge=1, description="callbacks in flight per partner per process: a hanging endpoint holds at most this many"
    )
    poll_interval_s: float = Field(0.5, gt=0, description="longest wait before looking for due deliveries again")
    lease_s: float | None = Field(
        None, gt=0, description="how long a claimed delivery is reserved; default: timeout_s + 30"
    )

    # One attempt: a 2xx within timeout_s is a success.
    timeout_s: float = Field(15.0, gt=0, description="an attempt that has no answer by then fails")
    connect_timeout_s: float = Field(10.0, gt=0)
    user_agent: str = "callpipe-notifier/0.1"

    # Schedule: attempt n+1 waits retry_base_s * retry_factor ** (n-1), +-retry_jitter, at most
    # retry_max_s; the defaults give about 30 s, 2 min and 8 min between the 4 attempts.
    delivery_attempts: int = Field(4, ge=1, description="attempts per delivery: the first plus 3 retries (spec)")
    retry_base_s: float = Field(30.0, gt=0)
    retry_factor: float = Field(4.0, ge=1)
    retry_max_s: float = Field(3600.0, gt=0)
    retry_jitter: float = Field(0.2, ge=0, lt=1, description="each delay is multiplied by 1 +- this, at random")
    retry_after_max_s: float = Field(3600.0, ge=0, description="a longer Retry-After is cut to this")

    ca_bundle: Path | None = Field(None, description="PEM file of the CAs trusted for callbacks; default: system")

    # Development and tests only: plain-http callbacks, and networks the SSRF guard lets through.
    allow_http: bool = False
    ssrf_allow_networks: str = Field(
        "",
        validation_alias=AliasChoices("ssrf_allow_networks", "NOTIFIER_SSRF_ALLOW_NETWORKS", "SSRF_ALLOW_NETWORKS"),
    )

    @model_validator(mode="after")
    def _production_rules(self) -> NotifierSettings:
        self.secret_box()  # a malformed key list stops the service at start, not at the first callback
        if self.environment == "production":
            if self.ssrf_allow_networks.strip():
                raise ConfigurationError("SSRF_ALLOW_NETWORKS is for development and tests; unset it in production")
            if self.allow_http:
                raise ConfigurationError("NOTIFIER_ALLOW_HTTP is for development and tests; unset it in production")
        return self

    def secret_defaults(self) -> list[tuple[str, str, str]]:
        return [
            *super().secret_defaults(),
            (
                "SECRETS_ENCRYPTION_KEYS",
                self.secrets_encryption_keys.get_secret_value(),
                DEV_SECRETS_ENCRYPTION_KEYS,
            ),
        ]

    def secret_box(self) -> SecretBox:
        """What seals the partners' signing secrets (fails fast on a malformed key list)."""
        return SecretBox.from_config(self.secrets_encryption_keys.get_secret_value())

    @property
    def lease(self) -> float:
        return self.lease_s if self.lease_s is not None else self.timeout_s + 30.0
