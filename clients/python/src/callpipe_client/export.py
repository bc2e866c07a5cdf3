"""Results as flat rows for spreadsheets: one row per call, one column per value.

Fixed columns first (ids, status, stage times, intent, score, BANT, error, callback), then one
column per qualification label (``qualification.<label>``) and two per rubric parameter
(``quality.<parameter>`` for the score, ``quality.<parameter>.max``), in the order first met.
Chapters are joined as ``name: summary`` lines in one ``summary`` cell; the transcript, when
asked for, as ``speaker: text`` lines.

Text that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or
carriage return; a call's words come from its speakers) is written with a leading ``'``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import datetime
from typing import IO, Any

from callpipe_client.models import CallbackDelivery, CallStatus, CallSummary, utc_timestamp

FIXED_COLUMNS = [
    "call_id",
    "status",
    "tenant_id",
    "subtenant_id",
    "agent_id",
    "received_at",
    "completed_at",
    "failed_at",
    "intent",
    "intent_justification",
    "quality_score",
    "summary",
    "bant.needs",
    "bant.objection",
    "bant.concern_categories",
    "bant.objection_handling",
    "bant.budget",
    "bant.authority",
    "bant.timeline",
    "error.stage",
    "error.code",
    "error.message",
    "callback.state",
    "callback.attempts",
    "config_id",
]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _time(value: datetime | None) -> str | None:
    return utc_timestamp(value) if value is not None else None


def _number(value: float | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def flatten(call: CallStatus | CallSummary, *, transcript: bool = False) -> dict[str, Any]:
    """One call as a flat mapping of column -> value (None for nothing). A list item
    (``CallSummary``) has no result and no attempts: those columns stay empty."""
    if isinstance(call, CallSummary):
        status = CallStatus(
            call_id=call.call_id,
            status=call.status,
            tenant_id=call.tenant_id,
            subtenant_id=call.subtenant_id,
            agent_id=call.agent_id,
            timestamps=call.timestamps,
            error=call.error,
            callback=CallbackDelivery(state=call.callback_state) if call.callback_state else None,
        )
        flat = flatten(status, transcript=transcript)
        flat["callback.attempts"] = None
        return flat
    result, error, callback = call.result, call.error, call.callback
    bant = result.bant if result is not None else None
    row: dict[str, Any] = {
        "call_id": call.call_id,
        "status": call.status,
        "tenant_id": call.tenant_id,
        "subtenant_id": call.subtenant_id,
        "agent_id": call.agent_id,
        "received_at": _time(call.timestamps.received),
        "completed_at": _time(call.timestamps.completed),
        "failed_at": _time(call.timestamps.failed),
        "intent": result.intent if result else None,
        "intent_justification": result.intent_justification if result else None,
        "quality_score": _number(result.quality_score) if result else None,
        "summary": "\n".join(f"{c.chapter_name}: {c.chapter_summary}" for c in result.summary) if result else None,
        "error.stage": error.stage if error else None,
        "error.code": error.code if error else None,
        "error.message": error.message if error else None,
        "callback.state": callback.state if callback else None,
        "callback.attempts": len(callback.attempts) if callback else None,
        "config_id": result.config_id if result else None,
    }
    for name in ("needs", "objection", "concern_categories", "objection_handling", "budget", "authority", "timeline"):
        row[f"bant.{name}"] = getattr(bant, name) if bant is not None else None
    if result is not None:
        for answer in result.qualification:
            row[f"qualification.{answer.label}"] = answer.answer
        for item in result.quality:
            row[f"quality.{item.parameter_name}"] = _number(item.inference_score)
            row[f"quality.{item.parameter_name}.max"] = _number(item.parameter_score)
        if transcript:
            row["transcript"] = "\n".join(f"{s.speaker}: {s.text}" for s in result.transcript)
    elif transcript:
        row["transcript"] = None
    return row


def _safe(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_csv(rows: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """Flattened rows as CSV, header from every row's columns (fixed ones first); returns the count."""
    buffered = list(rows)
    columns = list(FIXED_COLUMNS)
    for row in buffered:
        columns.extend(c for c in row if c not in columns)
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in buffered:
        writer.writerow({k: _safe(v) for k, v in row.items()})
    return len(buffered)
