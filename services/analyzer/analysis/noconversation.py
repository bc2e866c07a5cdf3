"""Calls without a conversation: detected the same way, and reported the same way, by every
engine (the LLM engine skips its endpoint for them).

A call has no conversation when

- fewer than ``MIN_WORDS`` words were recognised, or less than ``MIN_SPEECH_S`` seconds of
  speech was detected (silence, music, a ring tone, a hang-up);
- on a stereo recording (speakers known), one party said fewer than ``MIN_PARTY_WORDS`` words
  (nobody answered, or the agent talked to a voicemail);
- the customer's side is a voicemail or carrier announcement ("leave a message after the
  tone", "the person you are calling is not available") of at most ``VOICEMAIL_MAX_WORDS`` words;
- on a mono recording whose speakers could not be told apart, at most ``NO_ANSWER_MAX_WORDS``
  words of which some say nobody is there ("Hello? Can you hear me? I will try again later").

The analysis then says so and invents nothing: intent NO_CONVERSATION with the reason, no
chapters, every BANT field null, every label answered "not discussed", and every rubric
parameter listed unscored (``inference_score`` null, so ``quality_score`` is null too: a call
that did not happen neither earns nor loses the agent points).
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.analysis import AnalysisConfig, Bant, CallAnalysis, Qualification, QualityItem, quality_score

from . import lexicon as lx
from .text import Unit, word_count

MIN_WORDS = 10
MIN_SPEECH_S = 2.0
MIN_PARTY_WORDS = 3
VOICEMAIL_MAX_WORDS = 40
NO_ANSWER_MAX_WORDS = 60
NOT_DISCUSSED_NO_CONVERSATION = "Not discussed in the call (no conversation was detected)."
NOT_ASSESSED = "No conversation was detected, so this parameter could not be assessed."


def no_conversation_reason(units: Sequence[Unit], speech_s: float) -> str | None:
    """Why ``units`` are not a conversation, or None when they are one."""
    words = word_count(units)
    if words == 0:
        return "no speech was recognised"
    if words < MIN_WORDS:
        return f"only {words} word(s) were recognised"
    if speech_s < MIN_SPEECH_S:
        return f"only {speech_s:.1f} s of speech was detected"
    customer_side = [u for u in units if u.speaker != "agent"]
    if any(u.speaker != "unknown" for u in units):
        agent_words = word_count(u for u in units if u.speaker == "agent")
        customer_words = word_count(u for u in units if u.speaker == "customer")
        if customer_words < MIN_PARTY_WORDS:
            return "only the agent spoke (no answer, or a voicemail)"
        if agent_words < MIN_PARTY_WORDS:
            return "only the customer's side had speech"
    if all(u.speaker == "unknown" for u in units) and words <= NO_ANSWER_MAX_WORDS:
        asked = [u for u in units if lx.NO_ANSWER.search(u.norm)]
        if asked:
            return f"nobody seems to have answered ({asked[0].cite()})"
    if word_count(customer_side) <= VOICEMAIL_MAX_WORDS:
        for unit in customer_side:
            if lx.VOICEMAIL.search(unit.norm):
                return f"the call reached a voicemail or an announcement ({unit.cite()})"
    return None


def no_conversation_analysis(config: AnalysisConfig, reason: str) -> CallAnalysis:
    """The analysis of a call without a conversation (see the module docstring)."""
    quality = [
        QualityItem(
            justification=NOT_ASSESSED,
            suggestion=None,
            parameter_name=p.parameter_name,
            inference_score=None,
            parameter_score=float(p.max_score),
            is_fatal=p.is_fatal,
        )
        for p in config.rubric
    ]
    return CallAnalysis(
        intent="NO_CONVERSATION",
        intent_justification=f"No conversation was detected: {reason}.",
        quality_score=quality_score(quality),
        summary=[],
        bant=Bant(),
        qualification=[Qualification(label=label, answer=NOT_DISCUSSED_NO_CONVERSATION) for label in config.labels],
        quality=quality,
    )
