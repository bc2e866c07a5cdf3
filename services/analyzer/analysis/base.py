"""The engine interface, its input and its settings (re-exported by the package)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from schemas.analysis import AnalysisConfig, CallAnalysis, TranscriptSegment


@dataclass(frozen=True)
class AnalysisInput:
    """Everything an engine needs to analyse one call (and nothing else: engines do no I/O
    beyond, for the LLM engine, its endpoint)."""

    transcript: list[TranscriptSegment]
    """Sorted by start; speakers known on stereo, ``"unknown"`` on mono."""
    config: AnalysisConfig
    """The tenant's effective labels and rubric for this call."""
    duration_s: float
    """Length of the recording."""
    speech_s: float
    """Seconds in which speech was detected."""


class AnalysisEngine(Protocol):
    """Turns a transcript into the callback's analysis fields."""

    name: str
    model: str
    version: str

    async def analyze(self, data: AnalysisInput) -> CallAnalysis:
        """The analysis of one call; raises ``AnalysisError`` when it cannot be produced."""
        ...

    async def close(self) -> None:
        """Release what the engine holds (HTTP sessions); idempotent."""
        ...


@dataclass(frozen=True)
class AnalysisSettings:
    """Which engine analyses calls and how the LLM engine reaches its endpoint."""

    engine: Literal["builtin", "llm"] = "builtin"
    llm_base_url: str | None = None
    """OpenAI-compatible API root, e.g. ``http://vllm:8000/v1`` (``/chat/completions`` is appended)."""
    llm_api_key: str | None = None
    """Sent as a Bearer token when set; never logged."""
    llm_model: str | None = None
    llm_timeout_s: float = 120
    """Per request, connection included."""
    llm_max_attempts: int = 3
    """Both the transport attempts per request and the attempts at a valid answer."""
    llm_temperature: float = 0.0
    llm_retry_backoff_s: float = 1.0
    """First transport retry delay; doubles per attempt (with jitter), capped at 30 s."""
