"""Request and response models of the public API, and the translation of validation errors.

Validation follows the spec's field tables. Every rule reports its field in the spec's path form
(``data[0].call.id``) with a readable message that starts with the field's own name
(``id should not be empty``). Unknown fields are accepted and carried along to the event.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

MAX_BATCH = 50
MAX_METADATA_PAIRS = 5
MAX_CUSTOM_FIELDS = 10
MAX_TEXT = 255
MAX_URL = 2048

_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
# The spec's form (YYYY-MM-DDThh:mm:ssZ), with optional fractional seconds; UTC only.
_UTC_TIMESTAMP = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:Z|\+00:00)$")
# WHATWG (HTML) e-mail syntax, plus a dot in the domain: what partners' own forms accept.
_EMAIL = re.compile(
    r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+$"
)
_NETLOC = re.compile(r"^[A-Za-z0-9._~%!$&'()*+,;=:@\[\]-]+$")


def _fail(predicate: str) -> PydanticCustomError:
    """A rule violation; the message is completed with the field's name by ``field_errors``."""
    return PydanticCustomError("rule", predicate)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise _fail("should not be empty")
    return value


def _email(value: str) -> str:
    if len(value) > MAX_TEXT or not _EMAIL.match(value):
        raise _fail("must be an email")
    return value


def _e164(value: str) -> str:
    if not _E164.match(value):
        raise _fail("must be a phone number in E.164 format (e.g. +1234567890)")
    return value


def _utc_timestamp(value: Any) -> datetime:
    if not isinstance(value, str) or not _UTC_TIMESTAMP.match(value):
        raise _fail("must be an ISO 8601 date-time in UTC (YYYY-MM-DDThh:mm:ssZ)")
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:
        raise _fail("must be an ISO 8601 date-time in UTC (YYYY-MM-DDThh:mm:ssZ)") from None


def _url(value: str, schemes: tuple[str, ...], predicate: str) -> str:
    if len(value) > MAX_URL or any(c.isspace() for c in value):
        raise _fail(predicate)
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        raise _fail(predicate) from None
    host = parts.hostname or ""
    if parts.scheme.lower() not in schemes or not host or not _NETLOC.match(parts.netloc):
        raise _fail(predicate)
    return value


def _recording_url(value: str) -> str:
    return _url(value, ("http", "https"), "must be an absolute http(s) URL")


def _callback_url(value: str) -> str:
    return _url(value, ("https",), "must be a URL starting with https://")


def _metadata_value(value: object) -> str | int | float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _fail("must be a string or a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail("must be a string or a number")
    return value


def _scalar(value: Any) -> str | int | float | bool | None:
    if value is not None and not isinstance(value, str | int | float | bool):
        raise _fail("must be a string, a number, a boolean or null")
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail("must be a string, a number, a boolean or null")
    return value


Identifier = Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(_not_blank)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Email = Annotated[str, AfterValidator(_email)]
UtcTimestamp = Annotated[
    datetime,
    BeforeValidator(_utc_timestamp),
    Field(json_schema_extra={"type": "string", "format": "date-time"}),
]


class _In(BaseModel):
    # Unknown fields are kept (the spec's own example sends `industry` and `function`).
    model_config = ConfigDict(extra="allow")


class CallIn(_In):
    id: Identifier = Field(description="Unique for ever within your partner account.")
    recording_url: Annotated[str, AfterValidator(_recording_url)] = Field(
        description="Publicly accessible http(s) URL of the recording (MP3, WAV, AAC, M4A, MP4)."
    )
    start_time: UtcTimestamp = Field(description="UTC, ISO 8601 (YYYY-MM-DDThh:mm:ssZ).")
    end_time: UtcTimestamp = Field(description="UTC, ISO 8601; after start_time.")
    contact_number: Annotated[str, AfterValidator(_e164)] = Field(description="E.164, e.g. +1234567890.")

    @field_validator("end_time")
    @classmethod
    def _after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start_time")
        if start is not None and value <= start:
            raise _fail("must be after start_time")
        return value


class AgentIn(_In):
    id: Identifier
    email: Email | None = None
    name: Text | None = None


class CustomerIn(_In):
    id: Identifier
    name: Text | None = None
    email: Email | None = None
    disposition_status: Text | None = None


class CustomFieldIn(_In):
    internal_name: Identifier
    value: Annotated[Any, AfterValidator(_scalar)] = Field(
        json_schema_extra={"type": ["string", "number", "boolean", "null"]}
    )


MetadataValue = Annotated[Any, AfterValidator(_metadata_value), Field(json_schema_extra={"type": ["string", "number"]})]


class CallItemIn(_In):
    call: CallIn
    agent: AgentIn
    customer: CustomerIn
    callback_url: Annotated[str, AfterValidator(_callback_url)] | None = Field(
        None, description="HTTPS URL called back when processing is complete."
    )
    metadata: Annotated[dict[str, MetadataValue], Field(max_length=MAX_METADATA_PAIRS)] | None = Field(
        None, description="At most 5 pairs; values are strings or numbers. Sent back in the callback."
    )
    custom_fields: Annotated[list[CustomFieldIn], Field(max_length=MAX_CUSTOM_FIELDS)] | None = Field(
        None, description="At most 10 {internal_name, value} items."
    )


class BatchIn(BaseModel):
    """Body of ``POST /api/v1/partner/ingest/batch-call``."""

    data: list[CallItemIn] = Field(min_length=1, max_length=MAX_BATCH)


# ---------------------------------------------------------------------------------------------
# Responses (documentation and tests; handlers build the bodies directly)
# ---------------------------------------------------------------------------------------------


class CallOutcome(BaseModel):
    id: str
    status: str = Field(description='"accepted" (new) or "duplicate" (id seen before; not processed again)')


class BatchOutcome(BaseModel):
    calls: list[CallOutcome]


class SuccessResponse(BaseModel):
    success: bool = True
    data: BatchOutcome


class ErrorResponse(BaseModel):
    success: bool = False
    message: str


class FieldError(BaseModel):
    field: str
    message: str


class ValidationErrorResponse(ErrorResponse):
    errors: list[FieldError]


# ---------------------------------------------------------------------------------------------
# Error translation
# ---------------------------------------------------------------------------------------------

_PREDICATES = {
    "missing": "should not be empty",
    "string_type": "must be a string",
    "string_too_short": "should not be empty",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be an array",
    "int_type": "must be a number",
    "float_type": "must be a number",
}


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _predicate(err: ErrorDetails) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "rule":
        return err["msg"]
    if kind == "too_short":
        return "should not be empty"
    if kind == "too_long":
        unit = "keys" if ctx.get("field_type") == "Dictionary" else "elements"
        return f"must contain no more than {ctx.get('max_length')} {unit}"
    if kind == "string_too_long":
        return f"must be shorter than or equal to {ctx.get('max_length')} characters"
    return _PREDICATES.get(kind, "is invalid")


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Every error of the request as ``{"field": "data[0].call.id", "message": "id ..."}``."""
    result = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = tuple(err["loc"])
        path = _path(loc)
        name = path.rsplit(".", 1)[-1]
        result.append({"field": path, "message": f"{name} {_predicate(err)}"})
    return result
