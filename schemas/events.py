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

from typing import Annotated, Any, Literal, TypeAlias
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION: Literal[1] = 1

TOPIC_INGESTED = "calls.ingested.v1"
TOPIC_FETCHED = "calls.fetched.v1"
TOPIC_FAILED = "calls.failed.v1"


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


# ---------------------------------------------------------------------------------------------
# calls.fetched.v1 / calls.failed.v1
# ---------------------------------------------------------------------------------------------


class CallFetchedPayload(_Open):
    blob_uri: str
    sha256: str
    bytes: int
    container: str
    codec: str
    duration_s: float
    channels: int
    sample_rate: int


class CallFailedPayload(_Open):
    stage: str = Field(description="Stage that gave up: fetch, analyze or notify.")
    code: str
    message: str
    retryable: bool = False


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


AnyEvent: TypeAlias = CallIngested | CallFetched | CallFailed
Event = Annotated[AnyEvent, Field(discriminator="type")]

#: Event class -> the topic it is published on.
TOPICS: dict[type[_Envelope], str] = {
    CallIngested: TOPIC_INGESTED,
    CallFetched: TOPIC_FETCHED,
    CallFailed: TOPIC_FAILED,
}

# mypy reads the Annotated union as a value, not a type form; pydantic accepts it.
_EVENT_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(Event)  # type: ignore[arg-type]


def parse_event(raw: bytes | str) -> AnyEvent:
    """Decode one Kafka message value into its typed event (raises ``ValidationError``)."""
    return _EVENT_ADAPTER.validate_json(raw)


def dump_event(event: _Envelope) -> bytes:
    """Encode an event as the JSON bytes put on Kafka."""
    return event.model_dump_json().encode()
