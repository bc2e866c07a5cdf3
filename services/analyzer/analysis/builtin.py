"""The built-in analysis engine: offline, deterministic, pure (no I/O), fast.

It reads the transcript as ASR writes it (lowercase, unpunctuated, numbers as words, some words
wrong) through a lexicon of short cue phrases (``lexicon``), and builds every field of the
callback from what it hears, quoting the utterances it relied on:

- intent and its justification: ``findings.decide_intent``;
- chapters: ``chapters`` (lexical-cohesion topic segmentation) and ``summary`` (third-person
  sentences of what each side said and agreed);
- BANT: ``findings`` (needs, objections and their categories, the agent's replies, amounts,
  decision makers, dates);
- qualification: ``labels``; quality: ``scoring``; quality_score: ``schemas.analysis.quality_score``;
- calls without a conversation: ``noconversation``.

The same input always gives the same output: no randomness, no clock, every ranking has a
deterministic tie-break. A two-hour transcript takes a fraction of a second.
"""

from __future__ import annotations

import asyncio
import logging

from schemas.analysis import Bant, CallAnalysis, Qualification, quality_score

from . import findings as fx
from .base import AnalysisInput
from .chapters import chapters
from .errors import AnalysisError
from .labels import answer
from .noconversation import no_conversation_analysis, no_conversation_reason
from .scoring import score_parameter
from .text import build_units

log = logging.getLogger(__name__)

BUILTIN_NAME = "builtin"
BUILTIN_MODEL = "callpipe-lexicon"
#: Bump when a rule change can change the output for the same input.
BUILTIN_VERSION = "1.0.0"
#: Above this many words the analysis runs in a worker thread, so the event loop keeps serving
#: (heartbeats, health checks) while it runs; below, the hop costs more than the work.
THREAD_ABOVE_WORDS = 5_000


def analyze_transcript(data: AnalysisInput) -> CallAnalysis:
    """The built-in analysis of one call (synchronous and pure: safe in a thread or process pool)."""
    units = build_units(data.transcript)
    reason = no_conversation_reason(units, data.speech_s)
    if reason is not None:
        return no_conversation_analysis(data.config, reason)
    f = fx.analyse(units, data.duration_s)
    intent, justification = fx.decide_intent(f)
    quality = [score_parameter(p, f) for p in data.config.rubric]
    return CallAnalysis(
        intent=intent,  # type: ignore[arg-type]  # one of INTENTS by construction
        intent_justification=justification,
        quality_score=quality_score(quality),
        summary=chapters(units, f),
        bant=Bant(
            needs=fx.needs_text(f),
            objection=fx.objection_text(f),
            concern_categories=", ".join(f.concern_categories) or None,
            objection_handling=fx.objection_handling_text(f),
            budget=fx.budget_text(f),
            authority=fx.authority_text(f),
            timeline=fx.timeline_text(f),
        ),
        qualification=[
            Qualification(label=label, answer=answer(label, f, intent, justification)) for label in data.config.labels
        ],
        quality=quality,
    )


class BuiltinAnalysisEngine:
    """``AnalysisEngine`` backed by ``analyze_transcript``."""

    name = BUILTIN_NAME
    model = BUILTIN_MODEL
    version = BUILTIN_VERSION

    async def analyze(self, data: AnalysisInput) -> CallAnalysis:
        """Analyse one call; an unexpected failure becomes ``AnalysisError("analysis_failed")``
        (not retryable: the engine is deterministic, a retry would fail the same way)."""
        words = sum(len(s.text.split()) for s in data.transcript)
        try:
            if words > THREAD_ABOVE_WORDS:
                return await asyncio.to_thread(analyze_transcript, data)
            return analyze_transcript(data)
        except Exception as exc:
            log.exception("built-in analysis failed", extra={"segments": len(data.transcript)})
            raise AnalysisError("analysis_failed", f"the built-in analysis failed: {type(exc).__name__}") from exc

    async def close(self) -> None:
        """Nothing to release."""
