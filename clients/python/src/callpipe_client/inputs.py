"""Reading calls from files: CSV with a column mapping, or JSON Lines in the API's item shape.

CSV columns (header names are matched without regard to case, spaces or dashes):

=============================================  ==========================================
column                                         becomes
=============================================  ==========================================
``call_id`` (or ``id``)                        ``call.id``
``recording_url``                              ``call.recording_url``
``start_time``, ``end_time``                   ``call.start_time``, ``call.end_time``
``contact_number``                             ``call.contact_number``
``agent_id``, ``agent_email``, ``agent_name``  ``agent.id``, ``agent.email``, ``agent.name``
``customer_id``, ``customer_name``,            ``customer.id``, ``customer.name``,
``customer_email``, ``disposition_status``     ``customer.email``, ``customer.disposition_status``
``callback_url``                               ``callback_url``
``metadata.<key>``                             ``metadata`` ``{"<key>": value}``
``custom.<name>``                              ``custom_fields`` ``[{"internal_name": "<name>", "value": value}]``
``extra.<name>``                               a top-level field ``<name>`` (forwarded with the call)
``call.<x>``, ``agent.<x>``, ``customer.<x>``  that field (any name; unknown ones are forwarded)
=============================================  ==========================================

Cells are trimmed; an empty cell leaves its field out. Every value is a string. A column that
is none of the above is an error (a typo would otherwise be dropped silently): map it with
``--map 'Your Column=field'`` or ignore it with ``--map 'Your Column='``. The columns
``callpipe_line`` and ``callpipe_errors`` that a rejected-rows file adds are ignored, so a
corrected rejected-rows file can be submitted as it is.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from callpipe_client.errors import CallpipeError
from callpipe_client.models import FieldError

#: Columns a rejected-rows file adds (ignored when it is read back).
REJECTED_COLUMNS = ("callpipe_line", "callpipe_errors")

_ALIASES: dict[str, str] = {
    "call_id": "call.id",
    "id": "call.id",
    "recording_url": "call.recording_url",
    "start_time": "call.start_time",
    "end_time": "call.end_time",
    "contact_number": "call.contact_number",
    "agent_id": "agent.id",
    "agent_email": "agent.email",
    "agent_name": "agent.name",
    "customer_id": "customer.id",
    "customer_name": "customer.name",
    "customer_email": "customer.email",
    "disposition_status": "customer.disposition_status",
    "customer_disposition_status": "customer.disposition_status",
    "callback_url": "callback_url",
}
_PREFIXES = ("call.", "agent.", "customer.", "metadata.", "custom.", "extra.")


class InputError(CallpipeError):
    """The input cannot be read as calls at all (unreadable file, unknown columns)."""

    code = "input"


@dataclass
class Row:
    """One record of the input: where it starts, the item it makes (None when it makes none),
    and the errors found while reading it."""

    line: int
    item: dict[str, Any] | None
    errors: list[FieldError] = field(default_factory=list)
    raw: Any = None  # the CSV row (dict) or the JSON text, for the rejected-rows file


def _normal(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def field_for(column: str) -> str | None:
    """The item field a CSV column fills, by the default mapping; None when it has none."""
    name = column.strip()
    lowered = name.lower()
    for prefix in _PREFIXES:
        if lowered.startswith(prefix) and len(name) > len(prefix):
            # The part after the prefix keeps its case: it is a metadata key or a field name.
            return prefix + name[len(prefix) :]
    return _ALIASES.get(_normal(name))


def plan_columns(header: list[str], mapping: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Column -> target field (None: ignored). Raises ``InputError`` naming every unknown column."""
    explicit = {k.strip(): v.strip() for k, v in (mapping or {}).items()}
    plan: dict[str, str | None] = {}
    unknown: list[str] = []
    for column in header:
        if column.strip() in explicit:
            given = explicit[column.strip()]
            plan[column] = (field_for(given) or given) if given else None
        elif _normal(column) in REJECTED_COLUMNS:
            plan[column] = None
        else:
            target = field_for(column)
            if target is None:
                unknown.append(column)
            plan[column] = target
    if unknown:
        listed = ", ".join(repr(c) for c in unknown)
        raise InputError(
            f"unknown column(s) {listed}: map each with --map 'COLUMN=FIELD' (e.g. 'Recording=recording_url'), "
            "prefix it with extra. to forward it, or ignore it with --map 'COLUMN='"
        )
    targets = [t for t in plan.values() if t is not None]
    if "call.id" not in targets:
        raise InputError("no column for the call id (call_id): map one with --map 'COLUMN=call_id'")
    return plan


def row_to_item(row: Mapping[str, str], plan: Mapping[str, str | None]) -> dict[str, Any]:
    """A CSV row as a call item; empty cells leave their field out."""
    item: dict[str, Any] = {"call": {}, "agent": {}, "customer": {}}
    for column, target in plan.items():
        if target is None:
            continue
        value = (row.get(column) or "").strip()
        if not value:
            continue
        head, _, rest = target.partition(".")
        if head in ("call", "agent", "customer") and rest:
            item[head][rest] = value
        elif head == "metadata" and rest:
            item.setdefault("metadata", {})[rest] = value
        elif head == "custom" and rest:
            item.setdefault("custom_fields", []).append({"internal_name": rest, "value": value})
        elif head == "extra" and rest:
            item[rest] = value
        else:
            item[target] = value
    # A party with no cell at all is left out, so the API's "should not be empty" names it.
    for party in ("agent", "customer"):
        if not item[party]:
            del item[party]
    return item


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def detect_format(path: str, first_bytes: bytes) -> str:
    """``csv`` or ``jsonl``: by extension, else by content (JSON Lines start with ``{``)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    return "jsonl" if first_bytes.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else "csv"


def _open(path: str) -> tuple[IO[str], bytes]:
    """A text stream over ``path`` (``-``: standard input, read whole) and its first bytes."""
    if path == "-":
        data = sys.stdin.buffer.read()
        return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline=""), data[:256]
    try:
        with open(path, "rb") as raw:
            head = raw.read(256)
        return open(path, encoding="utf-8-sig", newline=""), head
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None


def read_csv(stream: IO[str], mapping: Mapping[str, str] | None = None) -> Iterator[Row]:
    reader = csv.DictReader(stream)
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise InputError(f"cannot read the CSV header: {exc}") from None
    if not header:
        return
    plan = plan_columns(list(header), mapping)
    line = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Row(line, None, [FieldError(field="", message=f"row is not valid CSV: {exc}")])
            line = reader.line_num + 1
            continue
        except UnicodeDecodeError:
            raise InputError(f"line {line}: the file is not UTF-8 text") from None
        if None in record:  # more cells than header columns
            extra = FieldError(field="", message="row has more cells than the header has columns")
            yield Row(line, None, [extra], raw=record)
        else:
            yield Row(line, row_to_item(record, plan), raw=record)
        line = reader.line_num + 1


def read_jsonl(stream: IO[str]) -> Iterator[Row]:
    for number, text in enumerate(stream, 1):
        if not text.strip():
            continue
        try:
            item = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            yield Row(number, None, [FieldError(field="", message=f"line is not valid JSON: {exc}")], raw=text)
            continue
        if not isinstance(item, dict):
            yield Row(number, None, [FieldError(field="", message="item must be an object")], raw=text)
            continue
        for key in (*REJECTED_COLUMNS, "callpipe_raw"):  # what a rejected-rows file adds
            item.pop(key, None)
        yield Row(number, item, raw=text)


def read_rows(path: str, fmt: str | None = None, mapping: Mapping[str, str] | None = None) -> Iterator[Row]:
    """Every record of ``path`` (``-``: standard input) as ``Row``s, in order."""
    stream, head = _open(path)
    with stream:
        fmt = fmt or detect_format(path, head)
        if fmt == "csv":
            yield from read_csv(stream, mapping)
        elif fmt == "jsonl":
            yield from read_jsonl(stream)
        else:
            raise InputError(f"unknown format {fmt!r} (csv or jsonl)")


def parse_mapping(pairs: list[str]) -> dict[str, str]:
    """``--map 'Column=field'`` options as a dict (an empty field ignores the column)."""
    mapping = {}
    for pair in pairs:
        column, sep, target = pair.partition("=")
        if not sep or not column.strip():
            raise InputError(f"--map takes COLUMN=FIELD, got {pair!r}")
        mapping[column.strip()] = target.strip()
    return mapping
