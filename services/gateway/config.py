"""Gateway settings: ``GATEWAY_*`` environment variables plus the shared ones."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", populate_by_name=True, frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, description="uvicorn worker processes")
    db_schema: str = "gateway"

    max_body_bytes: int = Field(5 * 1024 * 1024, ge=1024, description="the spec's 5 MB payload cap")
    max_config_bytes: int = Field(256 * 1024, ge=1024, description="cap of an analysis configuration body")
    body_idle_timeout_s: float = Field(
        10.0, gt=0, description="longest pause while a request body arrives before 408 (the connection is closed)"
    )
    body_timeout_s: float = Field(60.0, gt=0, description="longest a whole request body may take to arrive")
    redelivery_guard_s: float = Field(
        300.0, gt=0, description="how long an unanswered redelivery request blocks the next one"
    )
    default_rate_limit_per_minute: int = Field(120, ge=1, description="per partner, unless set on the partner")

    credential_cache_ttl_s: float = Field(
        2.0, ge=0, description="how long a found credential is reused; revocation takes effect within it"
    )

    config_cache_ttl_s: float = Field(
        2.0, ge=0, description="how long an effective analysis configuration is reused per process"
    )

    outbox_batch_size: int = Field(100, ge=1, description="outbox rows (committed requests) per publish round")
    outbox_poll_interval_s: float = Field(0.5, gt=0)

    read_model_enabled: bool = Field(
        True, description="host the status read model's consumer in this process (every worker joins one group)"
    )
    read_model_group_id: str = Field(
        "gateway-read-model", description="consumer group of the read model; KAFKA_TOPIC_PREFIX is prepended"
    )
    read_model_concurrency: int = Field(
        1024, ge=1, description="events in flight per process; those in flight together are folded in one transaction"
    )

    # The insights dashboard (services/gateway/dashboard/, docs/dashboard.md).
    dashboard_token_redeem_s: float = Field(
        300.0, gt=0, description="how long a dashboard token can be exchanged for a session (it works once)"
    )
    dashboard_session_ttl_s: float = Field(
        86400.0, gt=0, description="a dashboard session's lifetime, counted from its token's issue"
    )
    dashboard_public_url: str | None = Field(
        None, description="the dashboard's public base URL in token answers (default: the request's own)"
    )
    dashboard_export_max_rows: int = Field(100_000, ge=1, description="most rows one CSV export returns")
    dashboard_spool_dir: Path | None = Field(
        None, description="local copies of S3 recordings being played; default: <BLOB_ROOT>/.dashboard"
    )
