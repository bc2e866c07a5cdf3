"""The analysis contract: what a tenant configures, and what an analysis produces.

``AnalysisConfig`` is set per tenant (with subtenant overrides) through the gateway and copied,
as effective for the call, into its ``calls.ingested.v1`` event, so the analyzer reads no other
service's data and every analysis can be reproduced from its events.

``CallAnalysis`` holds exactly the partner callback's analysis fields (spec: "Callback Payload")
with their names, nesting and types; ``calls.analyzed.v1`` adds the transcript and the engines
used.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Speaker = Literal["agent", "customer", "unknown"]
Intent = Literal["INTERESTED", "NOT_INTERESTED", "FOLLOW_UP", "UNDECIDED", "NO_CONVERSATION"]

#: Intents, with what each means (documented for partners and for the LLM engine's prompt).
INTENTS: dict[str, str] = {
    "INTERESTED": (
        "The customer wants to go further: asks about price, a demo, a trial or next steps, or agrees to them."
    ),
    "NOT_INTERESTED": "The customer declines: says they are not interested, asks to be removed or not called again.",
    "FOLLOW_UP": "The customer defers: asks to be called back, to receive information, or to talk later.",
    "UNDECIDED": "There was a conversation but no clear signal either way.",
    "NO_CONVERSATION": "There was no conversation to analyse: silence, music, voicemail tone or too little speech.",
}

#: Objection categories ``bant.concern_categories`` uses.
CONCERN_CATEGORIES = ("Pricing", "Functionality", "Integration", "Timing", "Competition", "Trust", "Authority", "Other")


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


# ---------------------------------------------------------------------------------------------
# Configuration (per tenant, snapshotted into each call's events)
# ---------------------------------------------------------------------------------------------


class RubricParameter(_Model):
    parameter_name: str = Field(min_length=1, max_length=100)
    description: str = Field(min_length=1, max_length=2000, description="What the agent should do.")
    max_score: int = Field(10, ge=1, le=100, description="Reported as parameter_score.")
    is_fatal: bool = False


class ChannelMap(_Model):
    """Which party each channel of a stereo recording carries, and who speaks first on a mono one."""

    left: Literal["agent", "customer"] = "agent"
    right: Literal["agent", "customer"] = "customer"
    # Additive: mono recordings are split into two voices; this names the first one when the
    # tenant knows (its recorder starts on the agent's greeting, say). Unset, the analyzer
    # decides from what each voice says.
    mono_first_speaker: Literal["agent", "customer"] | None = Field(
        None, description="On mono recordings, who speaks first; unset: decided from what each voice says."
    )


class AnalysisConfig(_Model):
    labels: list[str] = Field(description="Qualification labels answered for every call.")
    rubric: list[RubricParameter] = Field(description="Quality parameters every call is scored on.")
    channels: ChannelMap = Field(default_factory=ChannelMap)

    def config_id(self) -> str:
        """Content hash: equal configurations have equal ids, whatever their history."""
        data = self.model_dump(mode="json")
        # A field added later is left out while unset, so existing configurations keep their ids.
        if data.get("channels", {}).get("mono_first_speaker", "") is None:
            del data["channels"]["mono_first_speaker"]
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return "cfg_" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


DEFAULT_LABELS = ["Needs", "Objection", "Objection Handling"]

DEFAULT_RUBRIC = [
    RubricParameter(
        parameter_name="Setting Context",
        description="Open the call by introducing yourself and stating its purpose and agenda.",
    ),
    RubricParameter(
        parameter_name="Needs Discovery",
        description="Ask open questions about the customer's situation, goals and problems before pitching.",
    ),
    RubricParameter(
        parameter_name="Product Pitch",
        description="Present the product and how its features answer the needs the customer described.",
    ),
    RubricParameter(
        parameter_name="Objection Handling",
        description="Acknowledge each objection or concern and answer it with a relevant response.",
    ),
    RubricParameter(
        parameter_name="Next Steps",
        description="Agree on a concrete next step with the customer: a meeting, a demo, a trial or a follow-up.",
    ),
    RubricParameter(
        parameter_name="Professionalism",
        description="Stay polite and courteous: greet the customer, thank them and close the call properly.",
    ),
]

DEFAULT_CONFIG = AnalysisConfig(labels=DEFAULT_LABELS, rubric=DEFAULT_RUBRIC)


class ConfigSnapshot(_Model):
    """The effective configuration of one call, as the gateway resolved it at ingestion."""

    config_id: str
    config: AnalysisConfig
    source: str = Field(description='"subtenant", "tenant" or "default": the most specific level that applied.')


# ---------------------------------------------------------------------------------------------
# Result: the callback's analysis fields, exactly as the spec names and nests them
# ---------------------------------------------------------------------------------------------


class Chapter(_Model):
    chapter_name: str | None = None
    chapter_summary: str | None = None


class Bant(_Model):
    needs: str | None = None
    objection: str | None = None
    concern_categories: str | None = None
    objection_handling: str | None = None
    # Additive: the budget, authority and timeline cues heard in the call.
    budget: str | None = None
    authority: str | None = None
    timeline: str | None = None


class Qualification(_Model):
    label: str | None = None
    answer: str | None = None


class QualityItem(_Model):
    justification: str | None = None
    suggestion: str | None = None
    parameter_name: str | None = None
    inference_score: float | None = None
    parameter_score: float | None = None
    is_fatal: bool | None = None


class CallAnalysis(_Model):
    intent: Intent | None = None
    intent_justification: str | None = None
    quality_score: float | None = Field(None, ge=0, le=100)
    summary: list[Chapter] = Field(default_factory=list)
    bant: Bant = Field(default_factory=Bant)
    qualification: list[Qualification] = Field(default_factory=list)
    quality: list[QualityItem] = Field(default_factory=list)


# A failed fatal parameter halves the score; a parameter fails below half of its maximum.
FATAL_FAIL_RATIO = 0.5
FATAL_PENALTY = 0.5


def quality_score(items: list[QualityItem]) -> float | None:
    """0-100: the share of available points earned, halved once per failed fatal parameter.

    ``100 * sum(inference_score) / sum(parameter_score) * 0.5 ** failed_fatal``, where a fatal
    parameter fails when it earns less than half of its ``parameter_score``. None with no items.
    """
    scored = [i for i in items if i.parameter_score and i.inference_score is not None]
    if not scored:
        return None
    earned = sum(i.inference_score or 0.0 for i in scored)
    available = sum(i.parameter_score or 0.0 for i in scored)
    failed_fatal = sum(
        1 for i in scored if i.is_fatal and (i.inference_score or 0.0) < FATAL_FAIL_RATIO * (i.parameter_score or 0.0)
    )
    return round(100 * earned / available * FATAL_PENALTY**failed_fatal, 1)


# ---------------------------------------------------------------------------------------------
# Transcript and engines
# ---------------------------------------------------------------------------------------------


class TranscriptSegment(_Model):
    speaker: Speaker
    start: float = Field(ge=0, description="Seconds from the start of the recording.")
    end: float = Field(ge=0)
    text: str
    confidence: float | None = Field(None, ge=0, le=1)


class EngineInfo(_Model):
    asr_engine: str
    asr_model: str
    asr_version: str
    analysis_engine: str
    analysis_model: str
    analysis_version: str
    # Additive: the diarizer that separated the speakers of a mono recording (null otherwise).
    diarization: str | None = None
