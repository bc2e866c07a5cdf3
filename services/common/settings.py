"""Settings base class every service's ``config.py`` extends.

Shared settings are read from unprefixed environment variables (``DATABASE_URL``,
``KAFKA_BOOTSTRAP_SERVERS``, ...) so one environment file serves the whole stack; each service
adds its own fields under its own prefix (``GATEWAY_PORT``, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.errors import ConfigurationError
from services.common.kafka import KafkaConnection, SaslMechanism, SecurityProtocol

# Loopback development database created by `make up` (deploy/local/stack.py).
# TLS is off because the connection never leaves loopback; production URLs set their own sslmode.
DEV_DATABASE_URL = "postgresql://callpipe:callpipe@127.0.0.1:5432/callpipe?sslmode=disable"


def _env(name: str) -> AliasChoices:
    """Accept the field by its Python name (tests, code) or its unprefixed env var."""
    return AliasChoices(name.lower(), name)


class ServiceSettings(BaseSettings):
    """Settings every service has. Secrets are ``SecretStr`` so they never print or log."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    environment: Literal["development", "test", "production"] = Field(
        "development", validation_alias=_env("ENVIRONMENT")
    )
    log_level: str = Field("INFO", validation_alias=_env("LOG_LEVEL"))
    log_format: Literal["json", "text"] = Field("json", validation_alias=_env("LOG_FORMAT"))

    database_url: SecretStr = Field(SecretStr(DEV_DATABASE_URL), validation_alias=_env("DATABASE_URL"))
    db_pool_min_size: int = Field(2, ge=1, validation_alias=_env("DB_POOL_MIN_SIZE"))
    db_pool_max_size: int = Field(10, ge=1, validation_alias=_env("DB_POOL_MAX_SIZE"))

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS"))
    # Prepended to every topic name: lets tests (and shared clusters) isolate topics.
    kafka_topic_prefix: str = Field("", validation_alias=_env("KAFKA_TOPIC_PREFIX"))
    kafka_topic_partitions: int = Field(6, ge=1, validation_alias=_env("KAFKA_TOPIC_PARTITIONS"))
    kafka_replication_factor: int = Field(1, ge=1, validation_alias=_env("KAFKA_REPLICATION_FACTOR"))
    # Authentication and encryption towards Kafka, applied to every client of the service
    # (producers, consumers, the admin client, the readiness probe): see ``kafka()``.
    kafka_security_protocol: SecurityProtocol = Field("PLAINTEXT", validation_alias=_env("KAFKA_SECURITY_PROTOCOL"))
    kafka_sasl_mechanism: SaslMechanism | None = Field(None, validation_alias=_env("KAFKA_SASL_MECHANISM"))
    kafka_sasl_username: str | None = Field(None, validation_alias=_env("KAFKA_SASL_USERNAME"))
    kafka_sasl_password: SecretStr | None = Field(None, validation_alias=_env("KAFKA_SASL_PASSWORD"))
    kafka_ssl_cafile: str | None = Field(None, validation_alias=_env("KAFKA_SSL_CAFILE"))
    kafka_ssl_certfile: str | None = Field(None, validation_alias=_env("KAFKA_SSL_CERTFILE"))
    kafka_ssl_keyfile: str | None = Field(None, validation_alias=_env("KAFKA_SSL_KEYFILE"))
    kafka_ssl_key_password: SecretStr | None = Field(None, validation_alias=_env("KAFKA_SSL_KEY_PASSWORD"))
    kafka_ssl_check_hostname: bool = Field(True, validation_alias=_env("KAFKA_SSL_CHECK_HOSTNAME"))
    # Events carry personal data (the ingested call, the transcript): the topics this service
    # creates keep records this long (retention.ms), after which Kafka deletes them. Erasure cannot
    # reach into the log, so this bounds how long an erased call's events can outlive it there.
    kafka_topic_retention_hours: float = Field(168.0, gt=0, validation_alias=_env("KAFKA_TOPIC_RETENTION_HOURS"))

    # How often the service purges what has outlived its tenant's retention (recordings,
    # transcripts, results); each run is idempotent, so any interval is safe.
    retention_purge_interval_s: float = Field(3600.0, gt=0, validation_alias=_env("RETENTION_PURGE_INTERVAL_S"))

    # Prometheus metrics (services.common.metrics): false drops the HTTP middleware and the
    # gateway's multiprocess files (a benchmark's "off"); /metrics then shows only this process.
    metrics_enabled: bool = Field(True, validation_alias=_env("METRICS_ENABLED"))

    # Tracing (services.common.tracing): trace context on every event and log line when on;
    # spans are exported over OTLP/HTTP only when an endpoint is set (the standard OTEL_* variables
    # configure the exporter further: headers, timeout, sampler, resource attributes).
    tracing_enabled: bool = Field(False, validation_alias=_env("TRACING_ENABLED"))
    otel_exporter_otlp_endpoint: str = Field("", validation_alias=_env("OTEL_EXPORTER_OTLP_ENDPOINT"))
    otel_exporter_otlp_traces_endpoint: str = Field("", validation_alias=_env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))

    @model_validator(mode="after")
    def _kafka_security_complete(self) -> ServiceSettings:
        try:
            self.kafka()
        except ValueError as exc:
            raise ConfigurationError(f"Kafka security settings: {exc}") from None
        return self

    def kafka(self) -> KafkaConnection:
        """How this service's Kafka clients connect (brokers, SASL, TLS): the one place the
        client options come from."""
        return KafkaConnection(
            bootstrap_servers=self.kafka_bootstrap_servers,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password,
            ssl_cafile=self.kafka_ssl_cafile,
            ssl_certfile=self.kafka_ssl_certfile,
            ssl_keyfile=self.kafka_ssl_keyfile,
            ssl_key_password=self.kafka_ssl_key_password,
            ssl_check_hostname=self.kafka_ssl_check_hostname,
            topic_retention_ms=int(self.kafka_topic_retention_hours * 3_600_000),
        )

    @property
    def otlp_export(self) -> bool:
        """Whether spans are exported (an OTLP endpoint is configured)."""
        return bool(self.otel_exporter_otlp_endpoint or self.otel_exporter_otlp_traces_endpoint)

    # The HTTP server's own limits (services/common/http_server.py), the same for every service.
    http_max_url_bytes: int = Field(
        8192, ge=256, validation_alias=_env("HTTP_MAX_URL_BYTES"), description="longer request URLs get 414"
    )
    http_max_header_bytes: int = Field(
        32768, ge=1024, validation_alias=_env("HTTP_MAX_HEADER_BYTES"), description="larger header sections get 431"
    )
    http_max_headers: int = Field(
        100, ge=16, validation_alias=_env("HTTP_MAX_HEADERS"), description="more header fields get 431"
    )
    http_header_timeout_s: float = Field(
        10.0,
        gt=0,
        validation_alias=_env("HTTP_HEADER_TIMEOUT_S"),
        description="a request line and headers not all received this long after their first byte get 408",
    )

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> ServiceSettings:
        if self.environment == "production":
            for name, value, default in self.secret_defaults():
                if value == default:
                    raise ConfigurationError(f"{name} still has its development default; set it for production")
        return self

    def secret_defaults(self) -> list[tuple[str, str, str]]:
        """(name, current value, development default) of each secret; subclasses extend."""
        return [("DATABASE_URL", self.database_url.get_secret_value(), DEV_DATABASE_URL)]

    def topic(self, base: str) -> str:
        """Full topic name for a schema's base topic name (``calls.ingested.v1``)."""
        return f"{self.kafka_topic_prefix}{base}"


class BlobStoreSettings(BaseSettings):
    """Where recordings live; shared (unprefixed ``BLOB_*`` variables) because the fetcher writes
    what the analyzer reads."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    blob_backend: Literal["filesystem", "s3"] = Field("filesystem", validation_alias=_env("BLOB_BACKEND"))
    blob_root: Path = Field(Path(".local/blobs"), validation_alias=_env("BLOB_ROOT"))
    blob_s3_bucket: str = Field("", validation_alias=_env("BLOB_S3_BUCKET"))
    blob_s3_prefix: str = Field("", validation_alias=_env("BLOB_S3_PREFIX"))
    blob_s3_endpoint_url: str | None = Field(None, validation_alias=_env("BLOB_S3_ENDPOINT_URL"))
    blob_s3_region: str | None = Field(None, validation_alias=_env("BLOB_S3_REGION"))
    blob_s3_access_key_id: SecretStr | None = Field(None, validation_alias=_env("BLOB_S3_ACCESS_KEY_ID"))
    blob_s3_secret_access_key: SecretStr | None = Field(None, validation_alias=_env("BLOB_S3_SECRET_ACCESS_KEY"))

    @model_validator(mode="after")
    def _bucket_for_s3(self) -> BlobStoreSettings:
        if self.blob_backend == "s3" and not self.blob_s3_bucket:
            raise ConfigurationError("BLOB_S3_BUCKET is required with BLOB_BACKEND=s3")
        return self


# The development key-encryption key `make up` and the tests use: public, so refused in production.
DEV_SECRETS_ENCRYPTION_KEYS = "dev:LiDhyfSVW-A6gf-RgRoM3FZ7lSLK6m_jkZFM50MJUJY"


class SecretsEncryptionSettings(BaseSettings):
    """The keys that encrypt secrets at rest (``services.common.crypto``): unprefixed
    ``SECRETS_ENCRYPTION_KEYS``, ``id:base64url-key`` pairs, comma-separated, the current one
    first. Production refuses to start with the development key or none."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    secrets_encryption_keys: SecretStr = Field(
        SecretStr(DEV_SECRETS_ENCRYPTION_KEYS), validation_alias=_env("SECRETS_ENCRYPTION_KEYS")
    )
