"""Local validation of call items: the API's documented rules, checked before anything is sent,
reported exactly as the API reports them (same field paths, same messages), but relative to the
item (``call.id``, not ``data[0].call.id``).

The server stays the authority: rules it adds later come back as 422 errors naming the item, and
``submit_calls`` rejects just that item. A few checks exist only here because the server would
refuse the whole request for them (a NaN or Infinity is not JSON; a call bigger than a request).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from callpipe_client.models import CallItem, FieldError, utc_timestamp

MAX_BATCH_CALLS = 50
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_TEXT = 255
MAX_URL = 2048
MAX_METADATA_PAIRS = 5
MAX_CUSTOM_FIELDS = 10
#: Nesting of the whole request body, the body itself counting as one level.
MAX_JSON_DEPTH = 32
#: One call as the API stores and passes it on (its event: the item plus an envelope and the
#: tenant's analysis configuration), in bytes. The item alone is a lower bound of that.
MAX_CALL_BYTES = 1024 * 1024
_DEPTH_PREDICATE = f"must not nest arrays or objects more than {MAX_JSON_DEPTH} levels deep in the body"
# The contract's keys; others are kept in place (unknown fields) and only they can nest deeper.
_ITEM_KEYS = frozenset({"call", "agent", "customer", "callback_url", "metadata", "custom_fields"})
_PART_KEYS = {
    "call": frozenset({"id", "recording_url", "start_time", "end_time", "contact_number"}),
    "agent": frozenset({"id", "email", "name"}),
    "customer": frozenset({"id", "name", "email", "disposition_status"}),
}
_CUSTOM_FIELD_KEYS = frozenset({"internal_name", "value"})

_NOT_BLANK = re.compile(r"\S")
# The server's patterns, anchored with \Z: Python's ``$`` would also match before a final newline.
_E164 = re.compile(r"^\+[1-9][0-9]{1,14}\Z")
_UTC_TIMESTAMP = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(?:Z|\+00:00)\Z"
)
_EMAIL = re.compile(
    r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+\Z"
)
_PORT = r"(?::(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
_AUTHORITY = r"(?:[^\s/?#@]+@)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)" + _PORT
_HTTP_URL = re.compile(r"^(?i:https?)://" + _AUTHORITY + r"(?:[/?#]\S*)?\Z")
_HTTPS_URL = re.compile(r"^(?i:https)://" + _AUTHORITY + r"(?:[/?#]\S*)?\Z")

_TIMESTAMP_MESSAGE = "must be an ISO 8601 date-time in UTC (YYYY-MM-DDThh:mm:ssZ)"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NUL = "\x00"


class _Errors:
    """Collects errors; a message's subject is the last segment of the field's path, as the API
    words it (``metadata.campaign`` -> ``campaign must be ...``)."""

    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def add(self, path: str, predicate: str) -> None:
        name = path.rsplit(".", 1)[-1] if path else "item"
        self.items.append(FieldError(field=path, message=f"{name} {predicate}"))


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _string(
    errors: _Errors,
    obj: Mapping[str, Any],
    key: str,
    path: str,
    *,
    required: bool = False,
    max_length: int | None = MAX_TEXT,
    pattern: re.Pattern[str] | None = None,
    mismatch: str = "is invalid",
    wrong_type: str = "must be a string",
) -> str | None:
    """One string field; returns it when valid. Order of checks as the API: type, length, pattern."""
    at = _join(path, key)
    if key not in obj:
        if required:
            errors.add(at, "should not be empty")
        return None
    value = obj[key]
    if value is None and not required:
        return None
    if not isinstance(value, str):
        errors.add(at, wrong_type)
        return None
    if max_length is not None and len(value) > max_length:
        errors.add(at, f"must be shorter than or equal to {max_length} characters")
        return None
    if pattern is not None and not pattern.search(value):
        errors.add(at, mismatch)
        return None
    return value


def _identifier(errors: _Errors, obj: Mapping[str, Any], key: str, path: str) -> None:
    _string(errors, obj, key, path, required=True, pattern=_NOT_BLANK, mismatch="should not be empty")


def _timestamp(errors: _Errors, obj: Mapping[str, Any], key: str, path: str) -> datetime | None:
    at = _join(path, key)
    if key not in obj:
        errors.add(at, "should not be empty")
        return None
    value = obj[key]
    match = _UTC_TIMESTAMP.match(value) if isinstance(value, str) else None
    if match is None:
        errors.add(at, _TIMESTAMP_MESSAGE)
        return None
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        # A real calendar date and time of day; fractions beyond microseconds are cut, as the server does.
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=timezone.utc,
        )
    except ValueError:
        errors.add(at, _TIMESTAMP_MESSAGE)
        return None


def _object(errors: _Errors, obj: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
    at = _join(path, key)
    if key not in obj:
        errors.add(at, "should not be empty")
        return None
    value = obj[key]
    if not isinstance(value, Mapping):
        errors.add(at, "must be an object")
        return None
    return value


def _call(errors: _Errors, item: Mapping[str, Any]) -> None:
    call = _object(errors, item, "call", "")
    if call is None:
        return
    before = len(errors.items)
    _identifier(errors, call, "id", "call")
    _string(
        errors,
        call,
        "recording_url",
        "call",
        required=True,
        max_length=MAX_URL,
        pattern=_HTTP_URL,
        mismatch="must be an absolute http(s) URL",
    )
    start = _timestamp(errors, call, "start_time", "call")
    end = _timestamp(errors, call, "end_time", "call")
    _string(
        errors,
        call,
        "contact_number",
        "call",
        required=True,
        max_length=None,
        pattern=_E164,
        mismatch="must be a phone number in E.164 format (e.g. +1234567890)",
    )
    # As on the server, the order of the two times is only checked once the call is otherwise valid.
    if len(errors.items) == before and start is not None and end is not None and end <= start:
        errors.add("call.end_time", "must be after start_time")


def _party(errors: _Errors, item: Mapping[str, Any], who: str, texts: tuple[str, ...]) -> None:
    party = _object(errors, item, who, "")
    if party is None:
        return
    _identifier(errors, party, "id", who)
    for key in texts:
        if key == "email":
            _string(errors, party, key, who, pattern=_EMAIL, mismatch="must be an email")
        else:
            _string(errors, party, key, who)


def _metadata(errors: _Errors, item: Mapping[str, Any]) -> None:
    value = item.get("metadata")
    if value is None:
        return
    if not isinstance(value, Mapping):
        errors.add("metadata", "must be an object")
        return
    bad, good = _Errors(), 0
    for key, entry in value.items():
        finite_number = isinstance(entry, int | float) and not isinstance(entry, bool) and math.isfinite(entry)
        if isinstance(entry, str) or finite_number:
            good += 1
        else:
            bad.add(_join("metadata", str(key)), "must be a string or a number")
    # As the server words it: more than 5 good pairs is the only error then; else the bad values.
    if good > MAX_METADATA_PAIRS:
        errors.add("metadata", f"must contain no more than {MAX_METADATA_PAIRS} keys")
    else:
        errors.items.extend(bad.items)


def _custom_fields(errors: _Errors, item: Mapping[str, Any]) -> None:
    value = item.get("custom_fields")
    if value is None:
        return
    if not isinstance(value, list | tuple):
        errors.add("custom_fields", "must be an array")
        return
    if len(value) > MAX_CUSTOM_FIELDS:
        # As the server words it: too many fields is the only error then.
        errors.add("custom_fields", f"must contain no more than {MAX_CUSTOM_FIELDS} elements")
        return
    for i, entry in enumerate(value):
        at = _join("custom_fields", i)
        if not isinstance(entry, Mapping):
            errors.add(at, "must be an object")
            continue
        _identifier(errors, entry, "internal_name", at)
        if "value" not in entry:
            errors.add(_join(at, "value"), "should not be empty")
            continue
        scalar = entry["value"]
        finite = not isinstance(scalar, float) or math.isfinite(scalar)
        if not (scalar is None or isinstance(scalar, str | bool | int | float)) or not finite:
            errors.add(_join(at, "value"), "must be a string, a number, a boolean or null")


def _printable(key: str) -> str:
    return key.replace(_NUL, "\\u0000")


def _unportable(errors: _Errors, value: Any, path: str) -> None:
    """Anywhere in the item, unknown fields included: no U+0000 in strings or keys, integers
    within 64 bits (what nothing downstream can store)."""
    stack: list[tuple[Any, str]] = [(value, path)]
    found = _Errors()
    while stack:
        node, at = stack.pop()
        if isinstance(node, str):
            if _NUL in node:
                found.add(at, "must not contain the NUL character (U+0000)")
        elif isinstance(node, bool):
            continue
        elif isinstance(node, int):
            if not _INT64_MIN <= node <= _INT64_MAX:
                found.add(at, "must be an integer that fits in 64 bits")
        elif isinstance(node, Mapping):
            for key, child in node.items():
                child_at = _join(at, _printable(str(key)))
                if _NUL in str(key):
                    found.add(child_at, "must not contain the NUL character (U+0000)")
                stack.append((child, child_at))
        elif isinstance(node, list | tuple):
            stack.extend((child, _join(at, i)) for i, child in enumerate(node))
    errors.items.extend(sorted(found.items, key=lambda e: e.field))


def _depth(value: Any) -> int:
    """Nesting depth: 0 for a scalar, 1 for a flat array or object, ... (without recursion)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, Mapping):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list | tuple):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in node)
    return deepest


def _too_deep(errors: _Errors, item: Mapping[str, Any]) -> None:
    """Unknown fields that take the body past ``MAX_JSON_DEPTH`` (the item sits at level 3:
    the body, ``data``, the item), named as the API names them."""

    def check(value: Any, level: int, path: str) -> None:
        if isinstance(value, Mapping | list | tuple) and level - 1 + _depth(value) > MAX_JSON_DEPTH:
            errors.add(path, _DEPTH_PREDICATE)

    for key in sorted(set(item) - _ITEM_KEYS):
        check(item[key], 4, _printable(key))
    for part, known in _PART_KEYS.items():
        for key in sorted(set(item[part]) - known):
            check(item[part][key], 5, f"{part}.{_printable(key)}")
    for j, custom in enumerate(item.get("custom_fields") or ()):
        for key in sorted(set(custom) - _CUSTOM_FIELD_KEYS):
            check(custom[key], 6, f"custom_fields[{j}].{_printable(key)}")


def call_size_error(item: Mapping[str, Any], encoded_size: int) -> FieldError | None:
    """A call bigger than the API takes, named by its largest unknown field (what can be left
    out), as the API names it. The API counts the call's event, a little bigger than the item:
    a call just under the limit here may still be refused there (and only that call is)."""
    if encoded_size <= MAX_CALL_BYTES:
        return None
    unknown = [(len(encode_item(item[k])), _printable(k)) for k in set(item) - _ITEM_KEYS]
    for part, known in _PART_KEYS.items():
        if isinstance(item.get(part), Mapping):
            unknown += [(len(encode_item(item[part][k])), f"{part}.{_printable(k)}") for k in set(item[part]) - known]
    field = max(unknown)[1] if unknown else ""
    name = field.rsplit(".", 1)[-1] if field else "item"
    return FieldError(
        field=field,
        message=f"{name} makes the call more than {MAX_CALL_BYTES} bytes once encoded; "
        f"a call may take at most {MAX_CALL_BYTES} bytes",
    )


def _not_json(errors: _Errors, value: Any, path: str) -> None:
    """What JSON cannot carry at all (the server would refuse the whole request as malformed)."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, at = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            errors.add(at, "must be a finite number (NaN and Infinity are not JSON)")
        elif isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                errors.add(at, "must be valid Unicode text")
        elif isinstance(node, Mapping):
            for key, child in node.items():
                if not isinstance(key, str):
                    errors.add(at, "must have string keys")
                    continue
                stack.append((child, _join(at, key)))
        elif isinstance(node, list | tuple):
            stack.extend((child, _join(at, i)) for i, child in enumerate(node))
        elif node is not None and not isinstance(node, bool | int | float | str):
            errors.add(at, f"must be a JSON value (got {type(node).__name__})")


def json_errors(item: Any) -> list[FieldError]:
    """Only what stops the item from being sent at all: not an object, not JSON, no call id."""
    errors = _Errors()
    if not isinstance(item, Mapping):
        errors.add("", "must be an object")
        return errors.items
    _not_json(errors, item, "")
    if not errors.items and call_id_of(item) is None:
        errors.add("call.id", "should not be empty")
    return errors.items


def normalize(item: CallItem | Mapping[str, Any]) -> Any:
    """The item as plain JSON-ready data: a ``CallItem`` dumped; in a mapping, timezone-aware
    datetimes become UTC timestamps (naive ones are left for validation to refuse)."""
    if isinstance(item, CallItem):
        return item.to_json()
    try:
        return _convert(item)
    except RecursionError:
        return item  # nested too deep to walk: validation refuses it as such


def _convert(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {k: _convert(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_convert(v) for v in node]
    if isinstance(node, datetime) and node.tzinfo is not None:
        return utc_timestamp(node)
    return node


def validate_item(item: Any) -> list[FieldError]:
    """Every error of one call item (already ``normalize``d), with fields relative to the item.
    An empty list means the API's documented rules accept it."""
    errors = _Errors()
    if not isinstance(item, Mapping):
        errors.add("", "must be an object")
        return errors.items
    _not_json(errors, item, "")
    if errors.items:
        return errors.items
    _call(errors, item)
    _party(errors, item, "agent", ("email", "name"))
    _party(errors, item, "customer", ("name", "email", "disposition_status"))
    _string(
        errors,
        item,
        "callback_url",
        "",
        max_length=MAX_URL,
        pattern=_HTTPS_URL,
        mismatch="must be a URL starting with https://",
    )
    _metadata(errors, item)
    _custom_fields(errors, item)
    if not errors.items:
        # As the API: past the contract's rules, what no later stage could carry.
        _too_deep(errors, item)
        _unportable(errors, item, "")
    return errors.items


def encode_item(item: Any) -> bytes:
    """The item's JSON, compact and UTF-8 (what is sent, and what counts towards the size limit)."""
    return json.dumps(item, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


#: ``{"data":[`` + ``]}`` around the items, and one comma between two of them.
BATCH_OVERHEAD = len(b'{"data":[]}')


def batch_body(encoded: list[bytes]) -> bytes:
    return b'{"data":[' + b",".join(encoded) + b"]}"


def size_errors(item: Mapping[str, Any], encoded: bytes, max_batch_bytes: int = MAX_BATCH_BYTES) -> list[FieldError]:
    """What makes a valid item too big to send: bigger than a call may be, or than a request."""
    found = call_size_error(item, len(encoded)) or size_error(len(encoded), max_batch_bytes)
    return [found] if found is not None else []


def size_error(encoded_size: int, max_batch_bytes: int = MAX_BATCH_BYTES) -> FieldError | None:
    """An item that cannot fit in a request even alone."""
    if encoded_size + BATCH_OVERHEAD <= max_batch_bytes:
        return None
    limit = f"{max_batch_bytes / (1024 * 1024):g} MB"
    return FieldError(field="", message=f"item is larger than the {limit} request limit ({encoded_size} bytes)")


def call_id_of(item: Any) -> str | None:
    """The item's ``call.id`` when it has a usable one."""
    if isinstance(item, Mapping):
        call = item.get("call")
        if isinstance(call, Mapping) and isinstance(call.get("id"), str):
            return str(call["id"])
    return None


_INDEXED = re.compile(r"^data\[(\d+)\](.*)\Z", re.DOTALL)


def rebase(error: FieldError) -> tuple[int | None, FieldError]:
    """A server error's item index and the error relative to that item
    (``data[3].call.id`` -> ``3``, ``call.id``); ``None`` when it names no item."""
    match = _INDEXED.match(error.field)
    if match is None:
        return None, error
    rest = match.group(2).removeprefix(".")
    return int(match.group(1)), FieldError(field=rest, message=error.message)


Validator = Callable[[Any], list[FieldError]]
