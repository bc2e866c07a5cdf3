"""Typed models of the partner API: what you send (a call item, an analysis configuration) and
what you get back (per-call outcomes, a call's status, list pages, redeliveries, the analysis
configuration, callbacks).

Every response model keeps fields it does not know (``extra="allow"``): the API only adds fields
within a version, and an older client must keep reading a newer server.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, field_serializer

#: A call's statuses, in pipeline order; the last two are final.
STATUSES = ("received", "fetching", "fetched", "analyzing", "completed", "failed")
FINAL_STATUSES = frozenset({"completed", "failed"})
#: What the ingestion endpoint answers for each call of a batch.
OUTCOMES = ("accepted", "duplicate")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class FieldError(BaseModel):
    """One invalid field: ``field`` in the API's path form (``data[0].call.id``), ``message``
    starting with the field's own name (``id should not be empty``)."""

    model_config = ConfigDict(frozen=True)

    field: str
    message: str


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------


def utc_timestamp(value: datetime) -> str:
    """``value`` as the API wants timestamps: ISO 8601 in UTC with ``Z``. Naive datetimes are
    refused (their zone is unknown)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: give it a timezone (the API takes UTC)")
    text = value.astimezone(timezone.utc).isoformat()
    return text.replace("+00:00", "Z")


class Call(_Open):
    id: StrictStr
    recording_url: StrictStr
    start_time: StrictStr | datetime
    end_time: StrictStr | datetime
    contact_number: StrictStr

    @field_serializer("start_time", "end_time")
    def _timestamp(self, value: str | datetime) -> str:
        return utc_timestamp(value) if isinstance(value, datetime) else value


class Agent(_Open):
    id: StrictStr
    email: StrictStr | None = None
    name: StrictStr | None = None


class Customer(_Open):
    id: StrictStr
    name: StrictStr | None = None
    email: StrictStr | None = None
    disposition_status: StrictStr | None = None


class CustomField(_Open):
    internal_name: StrictStr
    value: StrictStr | StrictInt | StrictFloat | StrictBool | None


class CallItem(_Open):
    """One call of a batch, in the API's shape. Fields the API does not define are kept and sent
    (they are forwarded with the call)."""

    call: Call
    agent: Agent
    customer: Customer
    callback_url: StrictStr | None = None
    metadata: dict[str, StrictStr | StrictInt | StrictFloat] | None = None
    custom_fields: list[CustomField] | None = None

    def to_json(self) -> dict[str, Any]:
        """The item as JSON-ready data, without the optional fields left unset."""
        return self.model_dump(mode="json", exclude_unset=True)


class RubricParameter(_Open):
    parameter_name: str
    description: str
    max_score: int = 10
    is_fatal: bool = False


class ChannelMap(_Open):
    left: str = "agent"
    right: str = "customer"
    mono_first_speaker: str | None = Field(
        None, description="On mono recordings, who speaks first (agent or customer); unset: decided by the analyzer."
    )


class AnalysisConfig(BaseModel):
    """One level (tenant or subtenant) of the analysis configuration, as sent with ``PUT``:
    a field left out (None) is inherited; all None clears the level."""

    model_config = ConfigDict(extra="forbid")

    labels: list[str] | None = None
    rubric: list[RubricParameter] | None = None
    channels: ChannelMap | None = None
    #: ``{"retention": {"recording_days", "transcript_days", "results_days"}, "redaction": {...}}``;
    #: each key left out is inherited, a retention period set to None keeps that part until erased.
    data_protection: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


# ---------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------


class CallOutcome(_Open):
    """What the ingestion endpoint answered for one call: ``accepted`` (new, will be processed)
    or ``duplicate`` (the id was known; not processed again)."""

    id: str
    status: str


class StageTimestamps(_Open):
    received: datetime | None = None
    fetching: datetime | None = None
    fetched: datetime | None = None
    analyzing: datetime | None = None
    completed: datetime | None = None
    failed: datetime | None = None


class Chapter(_Open):
    chapter_name: str | None = None
    chapter_summary: str | None = None


class Bant(_Open):
    needs: str | None = None
    objection: str | None = None
    concern_categories: str | None = None
    objection_handling: str | None = None
    budget: str | None = None
    authority: str | None = None
    timeline: str | None = None


class QualificationAnswer(_Open):
    label: str | None = None
    answer: str | None = None


class QualityItem(_Open):
    justification: str | None = None
    suggestion: str | None = None
    parameter_name: str | None = None
    inference_score: float | None = None
    parameter_score: float | None = None
    is_fatal: bool | None = None


class TranscriptSegment(_Open):
    speaker: str | None = None
    start: float | None = None
    end: float | None = None
    text: str | None = None


class Engines(_Open):
    asr_engine: str | None = None
    asr_model: str | None = None
    asr_version: str | None = None
    analysis_engine: str | None = None
    analysis_model: str | None = None
    analysis_version: str | None = None


class AnalysisResult(_Open):
    """A completed call's analysis: the callback's fields, plus ``transcript``, ``engines`` and
    ``config_id`` (status API only)."""

    call_id: str
    intent: str | None = None
    intent_justification: str | None = None
    quality_score: float | None = None
    summary: list[Chapter] = Field(default_factory=list)
    bant: Bant | None = None
    qualification: list[QualificationAnswer] = Field(default_factory=list)
    quality: list[QualityItem] = Field(default_factory=list)
    transcript: list[TranscriptSegment] = Field(default_factory=list)
    engines: Engines | None = None
    config_id: str | None = None


class CallError(_Open):
    """Why a call failed: the stage (fetch, analyze, ...), a code, and a readable message."""

    stage: str
    code: str
    message: str


class DeliveryAttempt(_Open):
    delivery_id: str | None = None
    kind: str | None = None
    number: int | None = None
    started_at: datetime | None = None
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None


class CallbackDelivery(_Open):
    """The call's callback: the latest delivery's state and every attempt (redeliveries included)."""

    url: str | None = None
    delivery_id: str | None = None
    kind: str | None = None
    state: str | None = None
    next_attempt_at: datetime | None = None
    error: str | None = None
    attempts: list[DeliveryAttempt] = Field(default_factory=list)


class RetentionPart(_Open):
    """When one part of a call (recording, transcript, results) expires and when it was purged."""

    expires_at: datetime | None = None
    purged_at: datetime | None = None


class CallRetention(_Open):
    recording: RetentionPart = Field(default_factory=RetentionPart)
    transcript: RetentionPart = Field(default_factory=RetentionPart)
    results: RetentionPart = Field(default_factory=RetentionPart)


class CallDataProtection(_Open):
    retention: CallRetention = Field(default_factory=CallRetention)


class CallStatus(_Open):
    """``GET /api/v1/partner/calls/{id}``."""

    call_id: str
    status: str
    tenant_id: str | None = None
    subtenant_id: str | None = None
    agent_id: str | None = None
    timestamps: StageTimestamps = Field(default_factory=StageTimestamps)
    result: AnalysisResult | None = None
    error: CallError | None = None
    callback: CallbackDelivery | None = None
    data_protection: CallDataProtection | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


class CallSummary(_Open):
    """One item of ``GET /api/v1/partner/calls`` (no result, no attempts)."""

    call_id: str
    status: str
    tenant_id: str | None = None
    subtenant_id: str | None = None
    agent_id: str | None = None
    timestamps: StageTimestamps = Field(default_factory=StageTimestamps)
    intent: str | None = None
    quality_score: float | None = None
    error: CallError | None = None
    callback_state: str | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


class CallPage(_Open):
    calls: list[CallSummary]
    next_cursor: str | None = None


class Redelivery(_Open):
    """``202`` of ``POST .../callback/redeliver``."""

    call_id: str
    delivery_id: str | None = None
    requested_at: datetime | None = None
    command_id: str | None = None


class ErasureAccepted(_Open):
    """``202`` of ``DELETE /calls/{id}`` and ``POST /erasures``: the erasure, its status
    (``pending`` until every service confirmed, ``completed`` at once for 0 calls) and how many
    calls it covers."""

    erasure_id: str
    status: str
    calls: int


class ServiceConfirmations(_Open):
    confirmed: int
    of: int


class Erasure(_Open):
    """``GET /api/v1/partner/erasures/{id}``: scope (``call`` or ``customer``), status and, per
    service (gateway, fetcher, analyzer, notifier), how many of the calls it confirmed erasing."""

    erasure_id: str
    scope: str
    status: str
    requested_at: datetime | None = None
    completed_at: datetime | None = None
    calls: int
    services: dict[str, ServiceConfirmations] = Field(default_factory=dict)

    @property
    def is_completed(self) -> bool:
        return self.status == "completed"


class DashboardToken(_Open):
    """``GET /api/v1/partner/dashboard/auth/token``: a single-use token and the URL to embed."""

    token: str
    url: str = Field(description="Put this in an iframe on one of your allowed origins before redeem_by.")
    redeem_by: datetime = Field(description="The token must be exchanged (the iframe loaded) before this.")
    expires_at: datetime = Field(description="When the dashboard session it opens ends.")
    tenant_id: str
    subtenant_id: str
    agent_id: str | None = None
    read_only: bool = False


class DashboardSessionsRevoked(_Open):
    """``POST /api/v1/partner/dashboard/sessions/revoke``."""

    sessions_ended: int
    tokens_voided: int


class EffectiveConfig(_Open):
    labels: list[str] = Field(default_factory=list)
    rubric: list[RubricParameter] = Field(default_factory=list)
    channels: ChannelMap = Field(default_factory=ChannelMap)


class ConfigLevel(_Open):
    version: int
    updated_at: datetime | None = None
    config: dict[str, Any] = Field(default_factory=dict)


class ConfigView(_Open):
    """``GET``/``PUT /api/v1/partner/analysis-config``: the configuration in effect and the
    levels it comes from."""

    config_id: str
    source: str
    effective: EffectiveConfig
    tenant: ConfigLevel | None = None
    subtenant: ConfigLevel | None = None


class CallbackMeta(_Open):
    """``source``, ``timestamp``, then every key of the request's ``metadata`` (as extra fields;
    ``model_extra`` or ``dict(meta)`` gives them)."""

    source: str | None = None
    timestamp: str | None = None


class Callback(_Open):
    """A callback body: a completed call's analysis (``status`` ``completed``) or a failure
    (``status`` ``failed`` with ``error``)."""

    call_id: str
    status: str | None = None  # "completed" or "failed"
    intent: str | None = None
    intent_justification: str | None = None
    quality_score: float | None = None
    summary: list[Chapter] = Field(default_factory=list)
    bant: Bant | None = None
    qualification: list[QualificationAnswer] = Field(default_factory=list)
    quality: list[QualityItem] = Field(default_factory=list)
    error: CallError | None = None
    meta: CallbackMeta | None = None

    @property
    def failed(self) -> bool:
        return self.status == "failed" or self.error is not None
