"""Analyzer settings: ``ANALYZER_*`` environment variables plus the shared ones."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.common.settings import BlobStoreSettings, ServiceSettings


class AnalyzerSettings(ServiceSettings, BlobStoreSettings):
    model_config = SettingsConfigDict(env_prefix="ANALYZER_", extra="ignore", populate_by_name=True, frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8002, ge=0, le=65535, description="health endpoints")
    db_schema: str = "analyzer"
    group_id: str = "analyzer"
    concurrency: int | None = Field(None, ge=1, description="calls in flight per process; default: asr_workers")
    max_attempts: int = Field(3, ge=1, description="handler crashes before a message is dead-lettered")
    session_timeout_ms: int = Field(30_000, ge=6_000)
    spool_dir: Path = Field(Path(".local/analyzer-spool"), description="local copies of S3 recordings")

    asr_engine: Literal["pocketsphinx", "faster_whisper", "openai"] = "pocketsphinx"
    asr_workers: int = Field(1, ge=1, description="processes doing speech recognition")
    asr_timeout_base_s: float = Field(60.0, gt=0)
    asr_timeout_per_audio_s: float = Field(1.0, gt=0, description="per second of recording")
    asr_attempts: int = Field(2, ge=1, description="tries of a transcription whose worker failed")
    whisper_model_dir: str | None = None
    whisper_compute_type: str = "int8"
    whisper_beam_size: int = Field(1, ge=1)
    asr_openai_base_url: str | None = None
    asr_openai_api_key: SecretStr | None = None
    asr_openai_model: str = "whisper-1"

    analysis_engine: Literal["builtin", "llm"] = "builtin"
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str | None = None
    llm_timeout_s: float = Field(120.0, gt=0)
    llm_max_attempts: int = Field(3, ge=1)

    @property
    def in_flight(self) -> int:
        # More calls in flight than recognition workers would only queue them in the pool, where
        # their timeouts would already be running.
        return self.concurrency or self.asr_workers
