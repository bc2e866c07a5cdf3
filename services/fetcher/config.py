"""Fetcher settings: ``FETCHER_*`` environment variables plus the shared ones."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.errors import ConfigurationError
from services.common.settings import BlobStoreSettings, ServiceSettings


class FetcherSettings(ServiceSettings, BlobStoreSettings):
    model_config = SettingsConfigDict(env_prefix="FETCHER_", extra="ignore", populate_by_name=True, frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8001, ge=0, le=65535, description="health endpoints")
    db_schema: str = "fetcher"
    group_id: str = "fetcher"
    concurrency: int = Field(16, ge=1, description="downloads in flight per process")
    per_partner_concurrency: int = Field(
        4, ge=1, description="downloads in flight per process for one partner: the rest of the slots stay for others"
    )
    prefetch: int = Field(
        256,
        ge=1,
        description="calls held per process (downloading or waiting for a slot), so other partners' calls"
        " queued behind a busy partner's are reached",
    )
    max_attempts: int = Field(5, ge=1, description="handler crashes before a message is dead-lettered")
    session_timeout_ms: int = Field(
        30_000, ge=6_000, description="how soon the group notices a dead fetcher and reassigns its partitions"
    )

    max_bytes: int = Field(1024**3, ge=1, description="largest recording accepted (1 GiB)")
    connect_timeout_s: float = Field(10, gt=0)
    read_timeout_s: float = Field(30, gt=0, description="longest silence from the recording host")
    total_timeout_s: float = Field(3600, gt=0, description="longest whole download")
    download_attempts: int = Field(4, ge=1)
    backoff_base_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    retry_after_max_s: float = Field(120.0, ge=0, description="a longer Retry-After ends the attempts")
    user_agent: str = "callpipe-fetcher/0.1"
    probe_workers: int = Field(
        default_factory=lambda: min(4, os.cpu_count() or 1), ge=1, description="processes probing recordings"
    )
    probe_timeout_s: float = Field(300, gt=0)

    spool_dir: Path | None = Field(None, description="download spool; default: <BLOB_ROOT>/.incoming")

    # Development and tests only: networks the SSRF guard lets through (e.g. 127.0.0.0/8).
    ssrf_allow_networks: str = Field(
        "", validation_alias=AliasChoices("ssrf_allow_networks", "FETCHER_SSRF_ALLOW_NETWORKS", "SSRF_ALLOW_NETWORKS")
    )

    @model_validator(mode="after")
    def _production_rules(self) -> FetcherSettings:
        if self.environment == "production" and self.ssrf_allow_networks.strip():
            raise ConfigurationError("SSRF_ALLOW_NETWORKS is for development and tests; unset it in production")
        return self

    @property
    def spool(self) -> Path:
        return self.spool_dir or self.blob_root / ".incoming"
