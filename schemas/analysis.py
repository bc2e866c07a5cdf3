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
from datetime import datetime, timedelta
from typing import Literal

import regex
from pydantic import BaseModel, ConfigDict, Field, field_validator

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


#: Default retention, in days, of what the system keeps of a call (documented in the README's
#: "Data protection"): the recording is needed only until the call is analysed and for playback.
DEFAULT_RECORDING_DAYS = 30.0
DEFAULT_TRANSCRIPT_DAYS = 365.0
DEFAULT_RESULTS_DAYS = 365.0
_MAX_DAYS = 36_500.0  # a hundred years: beyond this, "keep until erased" (null) says it better


class Retention(_Model):
    """How long each part of a call is kept, in days from its arrival (fractions allowed: 0.5 is
    twelve hours); null keeps it until the call is erased. Every service purges what it holds."""

    recording_days: float | None = Field(
        DEFAULT_RECORDING_DAYS, gt=0, le=_MAX_DAYS, description="The recording, in the blob store."
    )
    transcript_days: float | None = Field(
        DEFAULT_TRANSCRIPT_DAYS,
        gt=0,
        le=_MAX_DAYS,
        description="The transcript, wherever it is kept (results, callback bodies, dashboard).",
    )
    results_days: float | None = Field(
        DEFAULT_RESULTS_DAYS,
        gt=0,
        le=_MAX_DAYS,
        description="The analysis results and the stored callback bodies.",
    )

    def expiries(self, received_at: datetime) -> dict[str, datetime | None]:
        """When the recording, transcript and results of a call received at ``received_at``
        expire (None: never). The transcript is part of the results, so it never outlives them."""

        def at(days: float | None) -> datetime | None:
            return None if days is None else received_at + timedelta(days=days)

        results = at(self.results_days)
        transcript = at(self.transcript_days)
        if results is not None and (transcript is None or transcript > results):
            transcript = results
        return {"recording": at(self.recording_days), "transcript": transcript, "results": results}


RedactionEntity = Literal["card_number", "phone_number", "email"]
REDACTION_ENTITIES: tuple[RedactionEntity, ...] = ("card_number", "phone_number", "email")


class RedactionPattern(_Model):
    """A tenant's own pattern to mask (an account number format, say): a regular expression
    matched case-insensitively against transcript and result text."""

    name: str = Field(
        min_length=1, max_length=40, pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="Shown in the mask: [NAME]."
    )
    regex: str = Field(min_length=1, max_length=500)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        if (problem := pattern_problem(value)) is not None:
            raise ValueError(problem)
        return value


def pattern_problem(value: str) -> str | None:
    """Why ``value`` cannot be a redaction pattern (it does not compile, or matches empty text,
    which would mask nothing but split every text), or None: one rule for the API and the model."""
    try:
        compiled = regex.compile(value, regex.IGNORECASE)
    except regex.error as exc:
        return f"must be a valid regular expression ({exc})"
    try:
        matches_empty = compiled.search("", timeout=0.1) is not None
    except TimeoutError:
        matches_empty = True
    return "must not match empty text" if matches_empty else None


class Redaction(_Model):
    """PII masking applied by the analyzer before anything is stored or sent (off by default)."""

    enabled: bool = False
    entities: list[RedactionEntity] = Field(
        default_factory=lambda: list(REDACTION_ENTITIES), description="Built-in detectors applied."
    )
    patterns: list[RedactionPattern] = Field(default_factory=list, max_length=20)
    redact_audio: bool = Field(
        False, description="Also keep a copy of the recording with the masked spans bleeped, for the dashboard."
    )


class DataProtection(_Model):
    retention: Retention = Field(default_factory=Retention)
    redaction: Redaction = Field(default_factory=Redaction)


class AnalysisConfig(_Model):
    labels: list[str] = Field(description="Qualification labels answered for every call.")
    rubric: list[RubricParameter] = Field(description="Quality parameters every call is scored on.")
    channels: ChannelMap = Field(default_factory=ChannelMap)
    # Additive: retention and PII redaction, per tenant with subtenant overrides like the rest.
    data_protection: DataProtection = Field(default_factory=DataProtection)

    def config_id(self) -> str:
        """Content hash: equal configurations have equal ids, whatever their history."""
        data = self.model_dump(mode="json")
        # A field added later is left out while unset, so existing configurations keep their ids.
        if data.get("channels", {}).get("mono_first_speaker", "") is None:
            del data["channels"]["mono_first_speaker"]
        if data.get("data_protection") == DataProtection().model_dump(mode="json"):
            del data["data_protection"]
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
