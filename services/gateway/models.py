"""Request and response models of the public API, and the translation of validation errors.

Validation follows the spec's field tables. Every rule reports its field in the spec's path form
(``data[0].call.id``) with a readable message that starts with the field's own name
(``id should not be empty``). Unknown fields are accepted and carried along to the event.

The request is described with TypedDicts whose string rules are regular expressions, so
pydantic-core checks almost everything in Rust and hands back plain dicts that go straight into
the event; only the few rules a pattern cannot express run in Python.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
    with_config,
)
from pydantic_core import ErrorDetails, PydanticCustomError
from typing_extensions import TypedDict

from schemas.analysis import pattern_problem

MAX_BATCH = 50
MAX_METADATA_PAIRS = 5
MAX_CUSTOM_FIELDS = 10
MAX_TEXT = 255
MAX_URL = 2048

# Patterns (Rust regex syntax, checked by pydantic-core).
_NOT_BLANK = r"\S"
_E164 = r"^\+[1-9][0-9]{1,14}$"
# The spec's form (YYYY-MM-DDThh:mm:ssZ), with optional fractional seconds; UTC only.
_UTC_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:Z|\+00:00)$"
# WHATWG (HTML) e-mail syntax, plus a dot in the domain: what partners' own forms accept.
_EMAIL = (
    r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+$"
)
_PORT = r"(?::(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
_AUTHORITY = r"(?:[^\s/?#@]+@)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)" + _PORT
_HTTP_URL = r"^(?i:https?)://" + _AUTHORITY + r"(?:[/?#]\S*)?$"
_HTTPS_URL = r"^(?i:https)://" + _AUTHORITY + r"(?:[/?#]\S*)?$"

# What a pattern mismatch means, by field name.
_PATTERN_PREDICATES = {
    "id": "should not be empty",
    "customer_id": "should not be empty",
    "internal_name": "should not be empty",
    "email": "must be an email",
    "contact_number": "must be a phone number in E.164 format (e.g. +1234567890)",
    "start_time": "must be an ISO 8601 date-time in UTC (YYYY-MM-DDThh:mm:ssZ)",
    "end_time": "must be an ISO 8601 date-time in UTC (YYYY-MM-DDThh:mm:ssZ)",
    "recording_url": "must be an absolute http(s) URL",
    "callback_url": "must be a URL starting with https://",
    "labels": "should not be empty",
    "parameter_name": "should not be empty",
    "description": "should not be empty",
    "name": "must start with a letter and hold only letters, digits and underscores",
}


# Fields whose format says more than "must be a string" when something else is sent.
_FORMAT_FIRST = frozenset({"start_time", "end_time"})


def _fail(predicate: str, field: str | None = None) -> PydanticCustomError:
    """A rule violation; ``field_errors`` completes the message with the field's name. ``field``
    names a child of the validated object when a rule spans several of its fields."""
    return PydanticCustomError("rule", predicate, {"field": field} if field else None)


def _calendar_date(value: str) -> str:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise _fail(_PATTERN_PREDICATES["start_time"]) from None
    return value


def _end_after_start(call: CallIn) -> CallIn:
    if datetime.fromisoformat(call["end_time"]) <= datetime.fromisoformat(call["start_time"]):
        raise _fail("must be after start_time", field="end_time")
    return call


def _metadata_value(value: object) -> str | int | float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _fail("must be a string or a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail("must be a string or a number")
    return value


def _scalar(value: object) -> str | int | float | bool | None:
    if value is not None and not isinstance(value, str | int | float | bool):
        raise _fail("must be a string, a number, a boolean or null")
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail("must be a string, a number, a boolean or null")
    return value


Identifier = Annotated[str, Field(max_length=MAX_TEXT, pattern=_NOT_BLANK)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Email = Annotated[str, Field(max_length=MAX_TEXT, pattern=_EMAIL)]
UtcTimestamp = Annotated[
    str,
    Field(
        pattern=_UTC_TIMESTAMP, description="UTC, ISO 8601 (YYYY-MM-DDThh:mm:ssZ).", examples=["2023-01-01T10:00:00Z"]
    ),
    AfterValidator(_calendar_date),
]
MetadataValue = Annotated[Any, AfterValidator(_metadata_value), Field(json_schema_extra={"type": ["string", "number"]})]
Scalar = Annotated[
    Any, AfterValidator(_scalar), Field(json_schema_extra={"type": ["string", "number", "boolean", "null"]})
]

# Unknown fields are kept (the spec's own example sends `industry` and `function`).
_OPEN = ConfigDict(extra="allow")


@with_config(_OPEN)
class CallIn(TypedDict):
    id: Annotated[Identifier, Field(description="Unique for ever within your partner account.")]
    recording_url: Annotated[
        str,
        Field(
            max_length=MAX_URL,
            pattern=_HTTP_URL,
            description="Publicly accessible http(s) URL of the recording (MP3, WAV, AAC, M4A, MP4).",
        ),
    ]
    start_time: UtcTimestamp
    end_time: Annotated[UtcTimestamp, Field(description="UTC, ISO 8601; after start_time.")]
    contact_number: Annotated[str, Field(pattern=_E164, description="E.164, e.g. +1234567890.")]


@with_config(_OPEN)
class AgentIn(TypedDict):
    id: Identifier
    email: NotRequired[Email | None]
    name: NotRequired[Text | None]


@with_config(_OPEN)
class CustomerIn(TypedDict):
    id: Identifier
    name: NotRequired[Text | None]
    email: NotRequired[Email | None]
    disposition_status: NotRequired[Text | None]


@with_config(_OPEN)
class CustomFieldIn(TypedDict):
    internal_name: Identifier
    value: Scalar


@with_config(_OPEN)
class CallItemIn(TypedDict):
    call: Annotated[CallIn, AfterValidator(_end_after_start)]
    agent: AgentIn
    customer: CustomerIn
    callback_url: NotRequired[
        Annotated[
            str,
            Field(
                max_length=MAX_URL, pattern=_HTTPS_URL, description="HTTPS URL called back when processing is complete."
            ),
        ]
        | None
    ]
    metadata: NotRequired[
        Annotated[
            dict[str, MetadataValue],
            Field(
                max_length=MAX_METADATA_PAIRS,
                description="At most 5 pairs; values are strings or numbers. Sent back in the callback.",
            ),
        ]
        | None
    ]
    custom_fields: NotRequired[
        Annotated[
            list[CustomFieldIn], Field(max_length=MAX_CUSTOM_FIELDS, description="At most 10 {internal_name, value}.")
        ]
        | None
    ]


class BatchIn(TypedDict):
    """Body of ``POST /api/v1/partner/ingest/batch-call``."""

    data: Annotated[list[CallItemIn], Field(min_length=1, max_length=MAX_BATCH)]


BATCH = TypeAdapter(BatchIn)
#: Keys of a call item the spec defines; any other key is the partner's extra field.
ITEM_FIELDS = frozenset(CallItemIn.__annotations__)


# ---------------------------------------------------------------------------------------------
# Analysis configuration (PUT /api/v1/partner/analysis-config)
# ---------------------------------------------------------------------------------------------

MAX_LABELS = 20
MAX_RUBRIC = 30


def _unique(values: list[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        key = value.strip().casefold()
        if key in seen:
            raise _fail(f"must not repeat {what} {value.strip()!r}")
        seen.add(key)


class RubricParameterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parameter_name: Annotated[str, Field(max_length=100, pattern=_NOT_BLANK)]
    description: Annotated[str, Field(max_length=2000, pattern=_NOT_BLANK, description="What the agent should do.")]
    max_score: Annotated[int, Field(ge=1, le=100, strict=True)] = 10
    is_fatal: Annotated[bool, Field(strict=True)] = False


class ChannelMapIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    left: Literal["agent", "customer"] = "agent"
    right: Literal["agent", "customer"] = "customer"
    mono_first_speaker: Literal["agent", "customer"] | None = Field(
        None, description="On mono recordings, who speaks first; unset: decided from what each voice says."
    )

    @model_validator(mode="after")
    def _different(self) -> ChannelMapIn:
        if self.left == self.right:
            raise _fail("must map the two channels to different parties", field="right")
        return self


def _unique_labels(labels: list[str]) -> list[str]:
    _unique(labels, "the label")
    return labels


def _unique_parameters(rubric: list[RubricParameterIn]) -> list[RubricParameterIn]:
    _unique([p.parameter_name for p in rubric], "the parameter")
    return rubric


# Data protection (schemas.analysis.DataProtection): every key optional, so a subtenant overrides
# only what it sends. The limits repeat the schema's, checked here to answer in the spec's shape.
_MAX_DAYS = 36_500.0
# Strict: a whole number is a number, but true and "30" are not.
Days = Annotated[float, Field(gt=0, le=_MAX_DAYS, strict=True)]


class RetentionIn(BaseModel):
    """Days from the call's arrival each part is kept (fractions allowed); null keeps it until the
    call is erased; left out, inherited."""

    model_config = ConfigDict(extra="forbid")

    recording_days: Days | None = Field(None, description="The recording (default 30).")
    transcript_days: Days | None = Field(None, description="The transcript (default 365; never beyond the results).")
    results_days: Days | None = Field(
        None, description="The analysis results and stored callback bodies (default 365)."
    )


def _compiles(value: str) -> str:
    if (problem := pattern_problem(value)) is not None:
        raise _fail(problem)
    return value


class RedactionPatternIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")] = Field(
        description="Shown in the mask: [NAME]."
    )
    regex: Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_compiles)] = Field(
        description="Matched case-insensitively against transcript and result text."
    )


class RedactionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: Annotated[bool, Field(strict=True)] | None = None
    entities: list[Literal["card_number", "phone_number", "email"]] | None = Field(
        None, description="Built-in detectors applied (card_number, phone_number, email)."
    )
    patterns: Annotated[list[RedactionPatternIn], Field(max_length=20)] | None = None
    redact_audio: Annotated[bool, Field(strict=True)] | None = None


class DataProtectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retention: RetentionIn | None = None
    redaction: RedactionIn | None = None


class AnalysisConfigIn(BaseModel):
    """One level (tenant or subtenant) of a tenant's analysis configuration. A field left out
    (or null) is inherited: from the tenant level, then from the defaults."""

    model_config = ConfigDict(extra="forbid")

    labels: (
        Annotated[
            list[Annotated[str, Field(max_length=100, pattern=_NOT_BLANK)]],
            Field(min_length=1, max_length=MAX_LABELS, description="Qualification labels answered for every call."),
            AfterValidator(_unique_labels),
        ]
        | None
    ) = None
    rubric: (
        Annotated[
            list[RubricParameterIn],
            Field(min_length=1, max_length=MAX_RUBRIC, description="Quality parameters every call is scored on."),
            AfterValidator(_unique_parameters),
        ]
        | None
    ) = None
    channels: ChannelMapIn | None = Field(None, description="Which party each channel of a stereo recording carries.")

    data_protection: DataProtectionIn | None = Field(
        None, description="Retention of each part of a call and PII redaction; each key left out is inherited."
    )

    def stored(self) -> dict[str, Any]:
        """The level's document as stored: fields left out or null are dropped (inherited), except
        a retention period inside ``data_protection``, where null means something of its own (keep
        that part until the call is erased) and only a period left out is inherited."""
        document = self.model_dump(mode="json", exclude_none=True, exclude={"data_protection"})
        if self.data_protection is not None:
            protection = self.data_protection.model_dump(mode="json", exclude_unset=True)
            # Only a retention period has a meaning for null; a null redaction setting is
            # inherited like a field left out.
            if isinstance(redaction := protection.get("redaction"), dict):
                protection["redaction"] = {k: v for k, v in redaction.items() if v is not None}
            document["data_protection"] = {k: v for k, v in protection.items() if v is not None}
        return document


CONFIG = TypeAdapter(AnalysisConfigIn)


# ---------------------------------------------------------------------------------------------
# Erasure by customer (POST /api/v1/partner/erasures)
# ---------------------------------------------------------------------------------------------


class ErasureIn(BaseModel):
    """A data subject's erasure request: the calls of this customer id OR this contact number
    (either matches) in the tenant (and subtenant, when ``x-sub-tenant-id`` is sent) are erased."""

    model_config = ConfigDict(extra="forbid")

    customer_id: Identifier | None = Field(None, description="customer.id as sent at ingestion.")
    contact_number: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="call.contact_number as sent at ingestion (compared by its digits)."
    )


ERASURE = TypeAdapter(ErasureIn)


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
    "extra_forbidden": "should not exist",
    "int_type": "must be an integer number",
    "int_from_float": "must be an integer number",
    "bool_type": "must be a boolean",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "string_type": "must be a string",
    "string_too_short": "should not be empty",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be an array",
}


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _number(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _predicate(err: ErrorDetails, name: str) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "rule":
        return err["msg"]
    if kind == "string_pattern_mismatch" or (kind == "string_type" and name in _FORMAT_FIRST):
        return _PATTERN_PREDICATES.get(name.split("[", 1)[0], "is invalid")
    if kind == "too_short":
        return "should not be empty"
    if kind == "too_long":
        unit = "keys" if ctx.get("field_type") == "Dictionary" else "elements"
        return f"must contain no more than {ctx.get('max_length')} {unit}"
    if kind == "string_too_long":
        return f"must be shorter than or equal to {ctx.get('max_length')} characters"
    if kind == "greater_than":
        return f"must be greater than {_number(ctx.get('gt'))}"
    if kind == "literal_error":
        return "must be one of: " + ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
    if kind == "greater_than_equal":
        return f"must not be less than {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"must not be greater than {ctx.get('le')}"
    return _PREDICATES.get(kind, "is invalid")


# What can be stored and passed on: PostgreSQL text cannot hold U+0000, and JSON integers are
# 64-bit for orjson, Kafka consumers and most partners' parsers alike.
_INT64 = range(-(2**63), 2**63)
_NUL = "\x00"
NUL_PREDICATE = "must not contain the NUL character (U+0000)"


def _printable(key: str) -> str:
    return key.replace(_NUL, "\\u0000")


def unportable(value: object, path: str) -> list[dict[str, str]]:
    """Field errors for every string with U+0000 and every integer beyond 64 bits in ``value``
    (validated data, unknown fields included), in the same form as ``field_errors``."""
    errors: list[dict[str, str]] = []
    stack: list[tuple[object, str]] = [(value, path)]
    while stack:
        node, at = stack.pop()
        name = at.rsplit(".", 1)[-1]
        if isinstance(node, str):
            if _NUL in node:
                errors.append({"field": at, "message": f"{name} {NUL_PREDICATE}"})
        elif isinstance(node, bool):
            continue
        elif isinstance(node, int):
            if node not in _INT64:
                errors.append({"field": at, "message": f"{name} must be an integer that fits in 64 bits"})
        elif isinstance(node, dict):
            for key, child in node.items():
                child_at = f"{at}.{_printable(key)}"
                if _NUL in key:
                    errors.append({"field": child_at, "message": f"{_printable(key)} {NUL_PREDICATE}"})
                stack.append((child, child_at))
        elif isinstance(node, list):
            stack.extend((child, f"{at}[{i}]") for i, child in enumerate(node))
    errors.sort(key=lambda e: e["field"])
    return errors


#: The deepest nesting of arrays and objects a body may have, counting the body itself (the
#: known fields use 5 levels; the rest is for the partner's unknown fields). Later stages carry a
#: call inside their own events, a few levels deeper, and every JSON parser on the way has a
#: limit (pydantic-core's is about 250): this keeps them all far from it.
MAX_JSON_DEPTH = 32
DEPTH_PREDICATE = f"must not nest arrays or objects more than {MAX_JSON_DEPTH} levels deep in the body"

_CALL_FIELDS = frozenset(CallIn.__annotations__)
_AGENT_FIELDS = frozenset(AgentIn.__annotations__)
_CUSTOMER_FIELDS = frozenset(CustomerIn.__annotations__)
_CUSTOM_FIELD_FIELDS = frozenset(CustomFieldIn.__annotations__)
#: The contract's keys of the call item's objects; others are kept in place, as unknown fields.
ITEM_PART_FIELDS = {"call": _CALL_FIELDS, "agent": _AGENT_FIELDS, "customer": _CUSTOMER_FIELDS}


def _depth(value: object) -> int:
    """Nesting depth of ``value``: 0 for a scalar, 1 for a flat array or object, and so on."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def too_deep(items: list[CallItemIn]) -> list[dict[str, str]]:
    """Field errors for every unknown field (the only content whose nesting the contract does not
    fix) that takes the body deeper than ``MAX_JSON_DEPTH``. Only unknown keys are visited, so a
    body without any costs a few set comparisons per call."""
    errors: list[dict[str, str]] = []

    def check(value: object, at_depth: int, path: str) -> None:
        if isinstance(value, dict | list) and at_depth - 1 + _depth(value) > MAX_JSON_DEPTH:
            name = path.rsplit(".", 1)[-1]
            errors.append({"field": path, "message": f"{name} {DEPTH_PREDICATE}"})

    for i, item in enumerate(items):
        raw: dict[str, Any] = item  # type: ignore[assignment]
        if not raw.keys() <= ITEM_FIELDS:
            for key in sorted(raw.keys() - ITEM_FIELDS):
                check(raw[key], 4, f"data[{i}].{_printable(key)}")
        for name, known in (("call", _CALL_FIELDS), ("agent", _AGENT_FIELDS), ("customer", _CUSTOMER_FIELDS)):
            part: dict[str, Any] = raw[name]
            if not part.keys() <= known:
                for key in sorted(part.keys() - known):
                    check(part[key], 5, f"data[{i}].{name}.{_printable(key)}")
        for j, custom in enumerate(raw.get("custom_fields") or ()):
            if not custom.keys() <= _CUSTOM_FIELD_FIELDS:
                for key in sorted(custom.keys() - _CUSTOM_FIELD_FIELDS):
                    check(custom[key], 6, f"data[{i}].custom_fields[{j}].{_printable(key)}")
    return errors


def first_too_deep(value: object) -> str | None:
    """The field under which ``value`` (a whole body, parsed) first nests deeper than
    ``MAX_JSON_DEPTH``, named as ``too_deep`` names it (the unknown field, not the path down
    inside it); None if it does not."""
    stack: list[tuple[object, int, str, bool]] = [(value, 1, "body", True)]
    while stack:
        node, depth, at, known = stack.pop()
        if not isinstance(node, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            return at
        if isinstance(node, dict):
            children = [(f"{at}.{_printable(k)}" if at != "body" else _printable(k), c) for k, c in node.items()]
        else:
            children = [(f"{at}[{i}]", c) for i, c in enumerate(node)]
        for child_at, child in children:
            # The contract's containers are named further down; inside an unknown field, not.
            inside_known = known and _KNOWN_CONTAINER.match(child_at) is not None
            stack.append((child, depth + 1, child_at if known else at, inside_known))
    return None


# The contract's own containers in a batch body, by path: the data array, the items, their
# call/agent/customer/metadata objects, the custom_fields array and its objects.
_KNOWN_CONTAINER = re.compile(
    r"^(data|data\[\d+\]|data\[\d+\]\.(call|agent|customer|metadata|custom_fields)|"
    r"data\[\d+\]\.custom_fields\[\d+\])$"
)


# The raw body's number shapes, at C speed: digits become "0", e/E "e", signs "+", all else
# "x"; then plain substring searches find what a regular expression would, tens of times faster.
_SHAPES = bytes(
    ord("0") if chr(b).isdigit() and b < 128 else ord("e") if b in b"eE" else ord("+") if b in b"+-" else ord("x")
    for b in range(256)
)
_LONG_DIGITS = b"0" * 19  # an integer beyond 64 bits has at least 19 digits
_HUGE_EXPONENTS = (b"e000", b"e+000")  # a three-digit exponent can leave a double's range
_NOT_JSON_TOKENS = (b"NaN", b"Infinity")


def may_hold_non_json_numbers(body: bytes, shapes: bytes | None = None) -> bool:
    """A cheap scan of the raw JSON: can it hold NaN, Infinity or a number beyond a double?
    (Mostly such text is inside strings, which the strict parse that follows clears.)"""
    shapes = shapes if shapes is not None else body.translate(_SHAPES)
    return any(t in body for t in _NOT_JSON_TOKENS) or any(e in shapes for e in _HUGE_EXPONENTS)


def may_be_unportable(body: bytes, shapes: bytes | None = None) -> bool:
    """A cheap scan of the raw JSON: can it hold a NUL escape or an integer beyond 64 bits?
    (19 or more digits in a row; most such runs are inside strings, which the full check clears.)"""
    shapes = shapes if shapes is not None else body.translate(_SHAPES)
    return b"\\u0000" in body or _LONG_DIGITS in shapes


def number_shapes(body: bytes) -> bytes:
    """The body as the two scans above read it, computed once for both."""
    return body.translate(_SHAPES)


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Every error of the request as ``{"field": "data[0].call.id", "message": "id ..."}``."""
    result = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = tuple(err["loc"])
        child = (err.get("ctx") or {}).get("field") if err["type"] == "rule" else None
        if child:
            loc = (*loc, child)
        path = _path(loc)
        name = path.rsplit(".", 1)[-1]
        result.append({"field": path, "message": f"{name} {_predicate(err, name)}"})
    return result
