"""The callback bodies partners receive, built once per delivery (every retry sends the same bytes).

Result callback (a completed call), exactly the spec's "Callback Payload" names, nesting and types::

    call_id, intent, intent_justification, quality_score,
    summary[{chapter_name, chapter_summary}],
    bant{needs, objection, concern_categories, objection_handling},
    qualification[{label, answer}],
    quality[{justification, suggestion, parameter_name, inference_score, parameter_score, is_fatal}],
    meta

plus these additive fields (documented; partners that do not know them ignore them):

- ``status``: ``"completed"``, so one receiver can tell a result from a failure callback;
- ``bant.budget``, ``bant.authority``, ``bant.timeline``: the B, A and T of BANT heard in the call.

Text the analysis did not find (no objection in the call, say) is an empty string, never null, so
every spec field keeps the spec's JSON type and a typed client needs no null handling.
``quality_score`` and ``inference_score`` are null only when there was nothing to score (no
conversation), where any number would be made up.

Deliberately left out: the transcript (it can be large; the status API serves it), the engines,
audio statistics and configuration id, and any field the analyzer may add later (the body is
built field by field, so nothing internal leaks into partners' callbacks).

Failure callback (a call that could not be processed)::

    {"call_id", "status": "failed", "error": {"stage", "code", "message"}, "meta"}

``meta``: ``source`` (``"webhook"``) and ``timestamp`` (when the callback was prepared, ISO 8601
UTC with milliseconds and ``Z``), then every key-value of the request's ``metadata``. The spec says
``meta`` "contains the same metadata that was provided in the original request", so on a key
collision (a partner's ``source`` or ``timestamp`` key) the partner's value wins.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.analysis import Chapter, QualityItem
from schemas.events import CallAnalyzedPayload, CallFailedPayload

META_SOURCE = "webhook"


def iso_utc_ms(when: datetime) -> str:
    """``2025-05-08T04:53:11.110Z``: ISO 8601, UTC, milliseconds, ``Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.astimezone(UTC).microsecond // 1000:03d}Z"


def meta(metadata: dict[str, str | int | float], prepared_at: datetime) -> dict[str, Any]:
    """``source`` and ``timestamp``, overridden by the partner's own metadata keys."""
    return {"source": META_SOURCE, "timestamp": iso_utc_ms(prepared_at), **metadata}


def _number(value: float | None) -> int | float | None:
    """Integral scores as JSON integers (``42``, as in the spec's example), others as they are."""
    if value is not None and float(value).is_integer():
        return int(value)
    return value


def _text(value: str | None) -> str:
    return value or ""


def _chapter(c: Chapter) -> dict[str, Any]:
    return {"chapter_name": _text(c.chapter_name), "chapter_summary": _text(c.chapter_summary)}


def _quality(q: QualityItem) -> dict[str, Any]:
    return {
        "justification": _text(q.justification),
        "suggestion": _text(q.suggestion),
        "parameter_name": _text(q.parameter_name),
        "inference_score": _number(q.inference_score),
        "parameter_score": _number(q.parameter_score),
        "is_fatal": q.is_fatal,
    }


def result_body(call_id: str, analysis: CallAnalyzedPayload, prepared_at: datetime) -> bytes:
    """The result callback's JSON bytes."""
    bant = analysis.bant
    body = {
        "call_id": call_id,
        "status": "completed",
        "intent": analysis.intent,
        "intent_justification": _text(analysis.intent_justification),
        "quality_score": _number(analysis.quality_score),
        "summary": [_chapter(c) for c in analysis.summary],
        "bant": {
            "needs": _text(bant.needs),
            "objection": _text(bant.objection),
            "concern_categories": _text(bant.concern_categories),
            "objection_handling": _text(bant.objection_handling),
            "budget": _text(bant.budget),
            "authority": _text(bant.authority),
            "timeline": _text(bant.timeline),
        },
        "qualification": [{"label": _text(q.label), "answer": _text(q.answer)} for q in analysis.qualification],
        "quality": [_quality(q) for q in analysis.quality],
        "meta": meta(analysis.ingested.metadata, prepared_at),
    }
    return orjson.dumps(body)


def failure_body(call_id: str, failure: CallFailedPayload, prepared_at: datetime) -> bytes:
    """The failure callback's JSON bytes (``failure.ingested`` must be set)."""
    metadata = failure.ingested.metadata if failure.ingested is not None else {}
    body = {
        "call_id": call_id,
        "status": "failed",
        "error": {"stage": failure.stage, "code": failure.code, "message": failure.message},
        "meta": meta(metadata, prepared_at),
    }
    return orjson.dumps(body)
