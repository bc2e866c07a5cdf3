"""Call analysis: the callback's analysis fields from a transcript and the tenant's configuration.

Two engines behind one interface (``AnalysisEngine``), chosen by ``AnalysisSettings.engine``:

- ``builtin`` (default): offline, deterministic, pure (``builtin``);
- ``llm``: any OpenAI-compatible chat-completions endpoint, JSON output constrained by a JSON
  Schema derived from the result models, validated and retried (``llm``).

Both compute ``quality_score`` with ``schemas.analysis.quality_score`` and report calls without a
conversation identically (``noconversation``).
"""

from __future__ import annotations

from .base import AnalysisEngine, AnalysisInput, AnalysisSettings
from .builtin import BuiltinAnalysisEngine, analyze_transcript
from .errors import AnalysisError
from .llm import LLMAnalysisEngine

__all__ = [
    "AnalysisEngine",
    "AnalysisError",
    "AnalysisInput",
    "AnalysisSettings",
    "BuiltinAnalysisEngine",
    "LLMAnalysisEngine",
    "analyze_transcript",
    "create_analysis_engine",
]


def create_analysis_engine(settings: AnalysisSettings) -> AnalysisEngine:
    """The engine ``settings`` select. Raises ``ValueError`` for an incomplete LLM configuration
    (no base URL or model) or an unknown engine."""
    if settings.engine == "builtin":
        return BuiltinAnalysisEngine()
    if settings.engine == "llm":
        return LLMAnalysisEngine(settings)
    raise ValueError(f"unknown analysis engine {settings.engine!r}")
