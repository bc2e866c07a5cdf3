"""Versioned events every service exchanges over Kafka.

Every message is an envelope (event id, type, schema version, occurred_at, tenancy, call id) with
a typed payload; ``Event`` is the discriminated union of all of them, keyed by ``type``.

Compatibility rules for ``schema_version`` 1 (the ``.v1`` topics):
- producers may add optional fields; readers keep unknown fields (``extra="allow"``) so a v1
  reader accepts every v1 message, including ones written by newer code;
- renaming, removing or retyping a field is a new major version on a new topic (``.v2``).

The message key of every event is ``call_key(partner_id, call_id)``, so all events of one call
land on one partition, in order.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeAlias, get_args, get_origin
from uuid import UUID

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from schemas.analysis import CallAnalysis, ConfigSnapshot, EngineInfo, TranscriptSegment

SCHEMA_VERSION: Literal[1] = 1

TOPIC_INGESTED = "calls.ingested.v1"
TOPIC_FETCHED = "calls.fetched.v1"
TOPIC_FAILED = "calls.failed.v1"
TOPIC_ANALYZED = "calls.analyzed.v1"
TOPIC_PROGRESS = "calls.progress.v1"
TOPIC_DELIVERIES = "callbacks.deliveries.v1"
TOPIC_CALLBACK_COMMANDS = "callbacks.commands.v1"
TOPIC_ERASED = "calls.erased.v1"
TOPIC_ERASURE_CONFIRMED = "calls.erasure_confirmed.v1"

#: Every service that holds a call's data, and so confirms each erasure.
ErasureService = Literal["gateway", "fetcher", "analyzer", "notifier"]
ERASURE_SERVICES: tuple[ErasureService, ...] = ("gateway", "fetcher", "analyzer", "notifier")


def call_key(partner_id: str, call_id: str) -> str:
    """Kafka message key of every event about one call (partner ids never contain '/')."""
    return f"{partner_id}/{call_id}"


class _Open(BaseModel):
    """Base of every event model: unknown fields are kept, for forward compatibility."""

    model_config = ConfigDict(extra="allow", frozen=True)


# ---------------------------------------------------------------------------------------------
# calls.ingested.v1: everything later stages need, so none of them reads the gateway's tables
# ---------------------------------------------------------------------------------------------


class CallInfo(_Open):
    id: str
    recording_url: str
    start_time: AwareDatetime
    end_time: AwareDatetime
    contact_number: str


class AgentInfo(_Open):
    id: str
    email: str | None = None
    name: str | None = None


class CustomerInfo(_Open):
    id: str
    name: str | None = None
    email: str | None = None
    disposition_status: str | None = None


class CustomField(_Open):
    internal_name: str
    value: str | int | float | bool | None = None


class CallIngestedPayload(_Open):
    call: CallInfo
    agent: AgentInfo
    customer: CustomerInfo
    callback_url: str | None = None
    metadata: dict[str, str | int | float] = Field(default_factory=dict)
    custom_fields: list[CustomField] = Field(default_factory=list)
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="Fields the partner sent on the call item beyond the spec (e.g. industry).",
    )
    received_at: AwareDatetime
    analysis_config: ConfigSnapshot | None = Field(
        None, description="The tenant's effective analysis configuration when the call arrived."
    )


# ---------------------------------------------------------------------------------------------
# calls.fetched.v1 / calls.failed.v1
# ---------------------------------------------------------------------------------------------


class CallFetchedPayload(_Open):
    ingested: CallIngestedPayload = Field(
        description="The call as ingested, carried along so later stages need no other service's data."
    )
    blob_uri: str
    sha256: str
    bytes: int
    container: str
    codec: str
    duration_s: float
    channels: int
    sample_rate: int


#: The stage that gave up on a call: ``ingest`` (the gateway could not publish its event),
#: ``fetch``, ``analyze``, or ``notify`` (the callback; never fails a completed call).
FailureStage = Literal["ingest", "fetch", "analyze", "notify"]
#: Why a recording could not be fetched or accepted.
FetchFailureCode = Literal[
    "http_status",
    "timeout",
    "connection_error",
    "too_large",
    "empty_body",
    "blocked_address",
    "invalid_url",
    "unsupported_scheme",
    "too_many_redirects",
    "unsupported_format",
    "no_audio_stream",
    "corrupt",
]
#: Why a fetched recording could not be analysed.
AnalyzeFailureCode = Literal[
    "blob_missing",
    "decode_error",
    "asr_timeout",
    "asr_failed",
    "asr_unavailable",
    "analysis_failed",
    "llm_unavailable",
    "llm_invalid_output",
]
#: Failures of the pipeline itself, any stage: a message given up after its retries
#: (``internal_error``), one that could not be decoded at all (``undecodable_event``), one that
#: Kafka refuses for its size (``event_too_large``).
PipelineFailureCode = Literal["internal_error", "undecodable_event", "event_too_large"]
#: The closed set of ``calls.failed.v1`` codes, shared by every producer and consumer. A new code
#: is a schema change: consumers are deployed before producers that emit it.
FailureCode = FetchFailureCode | AnalyzeFailureCode | PipelineFailureCode
FAILURE_CODES: frozenset[str] = frozenset(
    code for alias in (FetchFailureCode, AnalyzeFailureCode, PipelineFailureCode) for code in get_args(alias)
)


def failure_code(code: str) -> FailureCode:
    """``code`` as a member of the closed set, for codes that arrive as plain strings (an
    exception's class attribute, say); any other value is a programming error (ValueError)."""
    if code not in FAILURE_CODES:
        raise ValueError(f"{code!r} is not a calls.failed.v1 code")
    return typing.cast(FailureCode, code)


class CallFailedPayload(_Open):
    stage: FailureStage = Field(description="Stage that gave up: ingest, fetch, analyze or notify.")
    code: FailureCode
    message: str
    retryable: bool = False
    ingested: CallIngestedPayload | None = Field(
        None, description="The call as ingested (callback_url, metadata, ...), for the failure callback."
    )


class AudioStats(_Open):
    duration_s: float
    speech_s: float = Field(description="Seconds in which speech was detected.")
    channels: int


class RedactedRecording(_Open):
    """The copy of the recording with the redacted spans bleeped, stored by the analyzer (which
    deletes it on erasure and at the recording's retention expiry)."""

    blob_uri: str
    sha256: str
    media_type: str = Field(description="What the dashboard's player is told, e.g. audio/mpeg.")


class CallAnalyzedPayload(CallAnalysis):
    """The spec's callback analysis fields, plus how they were obtained."""

    model_config = ConfigDict(extra="allow", frozen=True)

    transcript: list[TranscriptSegment]
    engines: EngineInfo
    audio: AudioStats
    config_id: str = Field(description="The analysis configuration applied (see ingested.analysis_config).")
    ingested: CallIngestedPayload
    # Additive: set when the tenant's redaction bleeps the audio too; the dashboard then serves
    # this copy and never the original.
    redacted_recording: RedactedRecording | None = None


# ---------------------------------------------------------------------------------------------
# calls.progress.v1, callbacks.deliveries.v1, callbacks.commands.v1
# ---------------------------------------------------------------------------------------------


class CallStageStartedPayload(_Open):
    stage: Literal["fetch", "analyze"] = Field(description="The stage that started working on the call.")


class DeliveryAttempt(_Open):
    number: int = Field(description="1 for the first attempt of a delivery, counting redeliveries on.")
    started_at: AwareDatetime
    status_code: int | None = Field(None, description="The receiver's HTTP status, if it answered.")
    latency_ms: float | None = None
    error: str | None = Field(None, description="Why the attempt failed, if it did (no internals).")


class CallbackDeliveryPayload(_Open):
    delivery_id: str = Field(description="The webhook-id header: stable across retries of one delivery.")
    kind: Literal["result", "failure"]
    state: Literal["pending", "retrying", "delivered", "failed"]
    url: str
    attempt: DeliveryAttempt | None = Field(None, description="The attempt that led to this state, if any.")
    next_attempt_at: AwareDatetime | None = None
    error: str | None = Field(
        None,
        description="Why the delivery failed without any attempt (e.g. 'https_required: ...').",
    )
    redelivery_command_id: UUID | None = Field(
        None,
        description="The callback.redeliver_requested command this event answers (the first event after the "
        "notifier acted on it, whether or not it re-armed the delivery).",
    )


class CallbackRedeliverRequestedPayload(_Open):
    requested_by: str = Field(description="Who asked: the partner's API key id, or an operator.")


class CallErasedPayload(_Open):
    """A partner erased the call: every service removes what it holds of it and refuses to hold
    anything of it again. It carries no personal data (the erasure's scope is in its audit
    record, by hash)."""

    erasure_id: UUID = Field(description="The erasure this call belongs to (one erasure may cover many calls).")
    requested_at: AwareDatetime


class CallErasureConfirmedPayload(_Open):
    erasure_id: UUID
    service: ErasureService = Field(description="The service that removed everything it held of the call.")
    removed: dict[str, int] = Field(
        default_factory=dict, description="What was removed, by kind (rows, blobs, bodies), for the audit."
    )


# ---------------------------------------------------------------------------------------------
# Envelopes
# ---------------------------------------------------------------------------------------------


class _Envelope(_Open):
    event_id: UUID
    schema_version: Literal[1] = SCHEMA_VERSION
    occurred_at: AwareDatetime
    partner_id: str
    tenant_id: str
    subtenant_id: str
    call_id: str
    source: str = Field(description="Service that produced the event.")

    def key(self) -> bytes:
        return call_key(self.partner_id, self.call_id).encode()


class CallIngested(_Envelope):
    type: Literal["call.ingested"] = "call.ingested"
    payload: CallIngestedPayload


class CallFetched(_Envelope):
    type: Literal["call.fetched"] = "call.fetched"
    payload: CallFetchedPayload


class CallFailed(_Envelope):
    type: Literal["call.failed"] = "call.failed"
    payload: CallFailedPayload


class CallAnalyzed(_Envelope):
    type: Literal["call.analyzed"] = "call.analyzed"
    payload: CallAnalyzedPayload


class CallStageStarted(_Envelope):
    type: Literal["call.stage_started"] = "call.stage_started"
    payload: CallStageStartedPayload


class CallbackDelivery(_Envelope):
    type: Literal["callback.delivery"] = "callback.delivery"
    payload: CallbackDeliveryPayload


class CallbackRedeliverRequested(_Envelope):
    type: Literal["callback.redeliver_requested"] = "callback.redeliver_requested"
    payload: CallbackRedeliverRequestedPayload


class CallErased(_Envelope):
    type: Literal["call.erased"] = "call.erased"
    payload: CallErasedPayload


class CallErasureConfirmed(_Envelope):
    type: Literal["call.erasure_confirmed"] = "call.erasure_confirmed"
    payload: CallErasureConfirmedPayload


AnyEvent: TypeAlias = (
    CallIngested
    | CallFetched
    | CallFailed
    | CallAnalyzed
    | CallStageStarted
    | CallbackDelivery
    | CallbackRedeliverRequested
    | CallErased
    | CallErasureConfirmed
)
Event = Annotated[AnyEvent, Field(discriminator="type")]

#: Event class -> the topic it is published on.
TOPICS: dict[type[_Envelope], str] = {
    CallIngested: TOPIC_INGESTED,
    CallFetched: TOPIC_FETCHED,
    CallFailed: TOPIC_FAILED,
    CallAnalyzed: TOPIC_ANALYZED,
    CallStageStarted: TOPIC_PROGRESS,
    CallbackDelivery: TOPIC_DELIVERIES,
    CallbackRedeliverRequested: TOPIC_CALLBACK_COMMANDS,
    CallErased: TOPIC_ERASED,
    CallErasureConfirmed: TOPIC_ERASURE_CONFIRMED,
}

# mypy reads the Annotated union as a value, not a type form, or not, depending on its cache (a
# fresh run and an incremental one disagree); pydantic accepts it either way.
_EVENT_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(Event)  # type: ignore[arg-type, unused-ignore]


def follow_up(event: _Envelope, *, event_id: UUID, source: str) -> dict[str, Any]:
    """The envelope of an event that follows ``event`` for the same call: its own id and time,
    the same tenancy and call id. Use as ``CallFetched(**follow_up(...), payload=...)``."""
    return {
        "event_id": event_id,
        "occurred_at": datetime.now(UTC),
        "partner_id": event.partner_id,
        "tenant_id": event.tenant_id,
        "subtenant_id": event.subtenant_id,
        "call_id": event.call_id,
        "source": source,
    }


def parse_event(raw: bytes | str) -> AnyEvent:
    """Decode one Kafka message value into its typed event (raises ``ValidationError``)."""
    return _EVENT_ADAPTER.validate_json(raw)


def dump_event(event: _Envelope) -> bytes:
    """Encode an event as the JSON bytes put on Kafka."""
    return event.model_dump_json().encode()


# ---------------------------------------------------------------------------------------------
# Salvage: what a consumer does with a message that does not decode
# ---------------------------------------------------------------------------------------------

_BY_TYPE: dict[str, type[_Envelope]] = {cls.model_fields["type"].default: cls for cls in TOPICS}


def _models_in(annotation: Any, *, in_list: bool = False) -> list[type[BaseModel]]:
    """The model classes an annotation holds directly (``X``, ``X | None``, ``Annotated[X]``),
    or with ``in_list`` as the items of a list (``list[X]``, ``list[X] | None``)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _models_in(get_args(annotation)[0], in_list=in_list)
    if origin in (typing.Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _models_in(arg, in_list=in_list)]
    if in_list:
        return _models_in(get_args(annotation)[0]) if origin is list else []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _free_form(annotation: Any) -> bool:
    """``dict[str, Any]`` and the like: content the partner chose, with no declared shape."""
    return annotation is Any or (get_origin(annotation) is dict and get_args(annotation)[1:] == (Any,))


def _declared(model: type[BaseModel], value: Any) -> Any:
    """``value`` reduced to ``model``'s declared fields, recursively: unknown keys are dropped, and
    free-form content is dropped where the field has a default (the partner's unknown fields)."""
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name not in value:
            continue
        child = value[name]
        if _free_form(field.annotation) and not field.is_required():
            continue
        if models := _models_in(field.annotation):
            child = _declared(models[0], child)
        elif (items := _models_in(field.annotation, in_list=True)) and isinstance(child, list):
            child = [_declared(items[0], c) for c in child]
        out[name] = child
    return out


def salvage_event(raw: bytes | str) -> AnyEvent | None:
    """The event in a message ``parse_event`` refused, rebuilt from its declared fields only, or
    None when even those do not make a valid event.

    What makes a message undecodable in practice is what the partner put in it beyond the contract
    (unknown fields carried along, nested deeper than the JSON parser's limit, say): dropping that
    content keeps the call going instead of stranding it."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        return None
    model = _BY_TYPE.get(data["type"])
    if model is None:
        return None
    try:
        return model.model_validate({**_declared(model, data), "type": data["type"]})  # type: ignore[return-value]
    except (ValidationError, ValueError, TypeError):
        return None


def split_call_key(key: bytes | None) -> tuple[str, str] | None:
    """(partner_id, call_id) from a message key made by ``call_key``; None if it is not one."""
    if not key:
        return None
    try:
        text = key.decode()
    except UnicodeDecodeError:
        return None
    partner_id, sep, call_id = text.partition("/")
    return (partner_id, call_id) if sep and partner_id and call_id else None


def failure_from_key(
    key: bytes | None, raw: bytes, *, stage: FailureStage, source: str, event_id: UUID
) -> CallFailed | None:
    """The ``calls.failed.v1`` ending the call of a message nothing can be salvaged from: its
    identity comes from the message key, its tenancy from the raw JSON when that much is readable
    (else empty). It carries no ingested call, so no callback URL: the failure is on the status API."""
    ids = split_call_key(key)
    if ids is None:
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None

    def text(name: str) -> str:
        value = data.get(name) if isinstance(data, dict) else None
        return value if isinstance(value, str) else ""

    return CallFailed(
        event_id=event_id,
        occurred_at=datetime.now(UTC),
        partner_id=ids[0],
        tenant_id=text("tenant_id"),
        subtenant_id=text("subtenant_id"),
        call_id=ids[1],
        source=source,
        payload=CallFailedPayload(
            stage=stage,
            code="undecodable_event",
            message="The call's data could not be read by the pipeline.",
            retryable=False,
        ),
    )


# ---------------------------------------------------------------------------------------------
# Fast encoding for the gateway's hot path
# ---------------------------------------------------------------------------------------------


def new_event_ids(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs as strings, from one read of the OS entropy pool."""
    raw = bytearray(os.urandom(16 * count))
    ids = []
    for i in range(0, 16 * count, 16):
        raw[i + 6] = (raw[i + 6] & 0x0F) | 0x40
        raw[i + 8] = (raw[i + 8] & 0x3F) | 0x80
        h = raw[i : i + 16].hex()
        ids.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return ids


def _utc(value: str) -> str:
    return value[:-6] + "Z" if value.endswith("+00:00") else value


def encode_call_ingested(
    *,
    event_id: str,
    occurred_at: datetime,
    partner_id: str,
    tenant_id: str,
    subtenant_id: str,
    source: str,
    call: Mapping[str, Any],
    agent: Mapping[str, Any],
    customer: Mapping[str, Any],
    callback_url: str | None,
    metadata: Mapping[str, Any] | None,
    custom_fields: list[Mapping[str, Any]] | None,
    extra: Mapping[str, Any],
    analysis_config: Mapping[str, Any] | None = None,
) -> bytes:
    """The JSON of a ``CallIngested`` built straight from data the gateway has already
    validated, without constructing the models (the ingestion hot path encodes 50 per request).
    Tests check the output parses as ``CallIngested`` and matches ``schemas/json``."""
    call_out = dict(call)
    call_out["start_time"] = _utc(call["start_time"])
    call_out["end_time"] = _utc(call["end_time"])
    return orjson.dumps(
        {
            "event_id": event_id,
            "schema_version": SCHEMA_VERSION,
            "occurred_at": occurred_at,
            "partner_id": partner_id,
            "tenant_id": tenant_id,
            "subtenant_id": subtenant_id,
            "call_id": call["id"],
            "source": source,
            "type": "call.ingested",
            "payload": {
                "call": call_out,
                "agent": agent,
                "customer": customer,
                "callback_url": callback_url,
                "metadata": metadata or {},
                "custom_fields": custom_fields or [],
                "extra": extra,
                "received_at": occurred_at,
                "analysis_config": analysis_config,
            },
        },
        option=orjson.OPT_UTC_Z,
    )
