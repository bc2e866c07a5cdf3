"""The LLM analysis engine: any OpenAI-compatible chat-completions endpoint (vLLM, Ollama,
OpenAI, ...).

One request per call (more when an answer must be corrected): a system prompt with the task,
the intents with their definitions, the concern categories, the tenant's labels and rubric; a
user message with the transcript as ``[mm:ss] speaker: text`` lines; and
``response_format={"type": "json_schema", "json_schema": {"strict": true, ...}}`` with a schema
derived from ``LLMAnalysis`` (everything in ``CallAnalysis`` but ``quality_score``), in which
the label and parameter names are enumerated from the tenant's configuration.

The answer is never trusted as is:

1. it must be JSON and validate against ``LLMAnalysis`` (pydantic);
2. every configured label and rubric parameter must be present exactly once (names compared
   case- and space-insensitively; items the configuration does not know are dropped);
3. what can be repaired deterministically is: unknown fields are dropped, items are put in the configured order with the
   configured spelling, ``parameter_score`` and ``is_fatal`` come from the configuration,
   ``inference_score`` is clamped to ``0..max_score``, the intent's case is fixed, concern
   categories are mapped onto ``CONCERN_CATEGORIES`` (unknown ones become "Other");
4. anything else (invalid JSON, schema errors, missing or repeated items) is sent back to the
   model with the problem, up to ``llm_max_attempts`` answers, then ``llm_invalid_output``.

``quality_score`` is always computed with ``schemas.analysis.quality_score``, never taken from
the model. Transport: connection errors, timeouts, HTTP 408/429/5xx are retried with
exponential backoff and jitter (honouring Retry-After), up to ``llm_max_attempts`` requests,
then ``llm_unavailable``; any other HTTP 4xx is ``llm_unavailable`` at once. Calls without a
conversation never reach the endpoint: they get the same analysis as from the built-in engine.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.analysis import (
    CONCERN_CATEGORIES,
    INTENTS,
    AnalysisConfig,
    Bant,
    CallAnalysis,
    Chapter,
    Intent,
    Qualification,
    QualityItem,
    TranscriptSegment,
    quality_score,
)
from services.common import backoff
from services.common.backoff import Backoff
from services.common.http import parse_retry_after

from .base import AnalysisInput, AnalysisSettings
from .errors import AnalysisError
from .noconversation import no_conversation_analysis, no_conversation_reason
from .text import build_units, clock

log = logging.getLogger(__name__)

LLM_NAME = "llm"
#: Bump when the prompt or the response schema changes (it is reported as the engine version).
PROMPT_VERSION = "2"
RETRY_AFTER_MAX_S = 30.0
BACKOFF_MAX_S = 30.0
#: How much of an invalid answer is sent back with the correction request.
_ECHO_MAX_CHARS = 20_000
_MAX_REPORTED_ERRORS = 10


# ------------------------------------------------------------------------------------------
# What the model must return
# ------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    # The schema sent to the model forbids extra fields (``_strict``); when one comes back all
    # the same (a model echoing a "quality_score", say), it is dropped, not argued about.
    model_config = ConfigDict(extra="ignore", frozen=True)


class LLMChapter(_Strict):
    chapter_name: str
    chapter_summary: str


class LLMBant(_Strict):
    needs: str | None = None
    objection: str | None = None
    concern_categories: str | None = None
    objection_handling: str | None = None
    budget: str | None = None
    authority: str | None = None
    timeline: str | None = None


class LLMQualification(_Strict):
    label: str
    answer: str


class LLMQualityItem(_Strict):
    parameter_name: str
    inference_score: float = Field(allow_inf_nan=False)
    justification: str
    suggestion: str
    # Filled from the configuration whatever the model says; optional so that a model that
    # leaves them out is not asked again for values we already know.
    parameter_score: float | None = None
    is_fatal: bool | None = None


class LLMAnalysis(_Strict):
    """The model's answer: ``CallAnalysis`` without ``quality_score``."""

    intent: Intent
    intent_justification: str
    summary: list[LLMChapter]
    bant: LLMBant
    qualification: list[LLMQualification]
    quality: list[LLMQualityItem]

    @field_validator("intent", mode="before")
    @classmethod
    def _intent_case(cls, value: object) -> object:
        # "interested" or "Not interested" mean what they say: repair rather than ask again.
        if isinstance(value, str):
            return value.strip().upper().replace(" ", "_").replace("-", "_")
        return value


def _strict(node: Any) -> Any:
    """A JSON Schema in the form strict structured output requires: every property required,
    no additional properties, no defaults or titles."""
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items() if k not in ("default", "title")}
        if out.get("type") == "object" and "properties" in out:
            out["required"] = list(out["properties"])
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


_BASE_SCHEMA: dict[str, Any] = _strict(LLMAnalysis.model_json_schema())


def response_schema(config: AnalysisConfig) -> dict[str, Any]:
    """The JSON Schema of the answer for ``config``: label and parameter names enumerated."""
    schema = copy.deepcopy(_BASE_SCHEMA)
    defs = schema["$defs"]
    names = list(dict.fromkeys(p.parameter_name for p in config.rubric))
    labels = list(dict.fromkeys(config.labels))
    if names:
        defs["LLMQualityItem"]["properties"]["parameter_name"]["enum"] = names
    if labels:
        defs["LLMQualification"]["properties"]["label"]["enum"] = labels
    return schema


# ------------------------------------------------------------------------------------------
# Prompt
# ------------------------------------------------------------------------------------------


def transcript_lines(transcript: Sequence[TranscriptSegment]) -> str:
    """``[mm:ss] speaker: text``, one line per segment with words, in time order ("speaker" when
    it is unknown)."""
    ordered = sorted(transcript, key=lambda s: (s.start, s.end))
    return "\n".join(
        f"[{clock(s.start)}] {'speaker' if s.speaker == 'unknown' else s.speaker}: {' '.join(s.text.split())}"
        for s in ordered
        if s.text.strip()
    )


def system_prompt(config: AnalysisConfig) -> str:
    """The task, the intents, the concern categories, the labels and the rubric."""
    intents = "\n".join(f"  - {name}: {meaning}" for name, meaning in INTENTS.items())
    labels = "\n".join(f"  {i}. {label}" for i, label in enumerate(config.labels, 1)) or "  (none)"
    rubric = (
        "\n".join(
            f"  {i}. {p.parameter_name} (max score {p.max_score}, fatal: {'yes' if p.is_fatal else 'no'}): "
            f"{p.description}"
            for i, p in enumerate(config.rubric, 1)
        )
        or "  (none)"
    )
    return f"""You analyse one sales call between an agent (the salesperson) and a customer, from its \
transcript, for the agent's sales team. The transcript comes from speech recognition: it may be \
lowercase, unpunctuated, spell numbers as words and contain misrecognised words. Lines are \
"[mm:ss] speaker: text"; the speaker is "agent", "customer", or "speaker" when the recording is mono \
and the two parties were not separated (then infer who is who from what they say).

Answer with one JSON object following the given JSON Schema exactly, in English, and nothing else. \
Base everything on the transcript; never invent facts. Quote what was said, with speaker and time \
(for example: customer at 01:23: "we are not interested"), to justify your judgements.

Fields:
- intent: the customer's intent, exactly one of:
{intents}
- intent_justification: why, quoting the utterances that decided it.
- summary: the call cut into consecutive chapters by topic; each with a short chapter_name \
(e.g. "Introduction", "Pricing", "Next steps") and a chapter_summary of two to five sentences in \
the third person saying what each side said and agreed: facts, numbers, objections, commitments \
(for example: "The customer said they have about $5,000 for this. The agent offered the basic plan \
and will send a quote this afternoon."). No timestamps and no lists of quotes in summaries.
- bant: needs (the customer's needs), objection (the customer's objections or concerns), \
concern_categories (comma-separated, only from: {", ".join(CONCERN_CATEGORIES)}), objection_handling \
(how the agent answered the objections), budget (amounts the customer mentioned, written like \
"$10,000"), authority (who decides or must approve), timeline (dates or periods mentioned). Use null \
for anything the call did not touch.
- qualification: one item per label below, in this order, with the label copied exactly; the answer \
from the call, or "Not discussed in the call." when it did not come up.
- quality: one item per rubric parameter below, in this order, with parameter_name copied exactly: \
inference_score an integer from 0 to the parameter's max score, parameter_score its max score, \
is_fatal as given, a justification citing what was said, and an actionable suggestion addressed \
to the agent as "you".

Labels:
{labels}

Rubric (what the agent should do):
{rubric}"""


def user_prompt(transcript: Sequence[TranscriptSegment], duration_s: float) -> str:
    """The transcript."""
    return f"Call duration: {clock(duration_s)}.\n\nTranscript:\n{transcript_lines(transcript)}"


# ------------------------------------------------------------------------------------------
# Checking and repairing the answer
# ------------------------------------------------------------------------------------------


def _key(name: str | None) -> str:
    return " ".join((name or "").lower().split())


def _categories(value: str | None) -> str | None:
    if value is None:
        return None
    canonical = {c.lower(): c for c in CONCERN_CATEGORIES}
    found = {canonical.get(part.strip().lower(), "Other") for part in value.split(",") if part.strip()}
    return ", ".join(c for c in CONCERN_CATEGORIES if c in found) or None


def _match(configured: Sequence[str], answered: Sequence[str], what: str) -> tuple[list[int], list[str]]:
    """For each configured name, the index of its answer; and the problems (missing, repeated)."""
    unused: dict[str, list[int]] = {}
    for i, name in enumerate(answered):
        unused.setdefault(_key(name), []).append(i)
    chosen: list[int] = []
    missing: list[str] = []
    for name in configured:
        indexes = unused.get(_key(name))
        if indexes:
            chosen.append(indexes.pop(0))
        else:
            missing.append(name)
    problems = []
    if missing:
        problems.append(f"{what} is missing " + ", ".join(f'"{m}"' for m in missing))
    configured_keys = {_key(n) for n in configured}
    repeated = sorted({answered[i] for k, rest in unused.items() if k in configured_keys for i in rest})
    if repeated:
        problems.append(f"{what} lists more than once " + ", ".join(f'"{r}"' for r in repeated))
    return chosen, problems


def to_call_analysis(answer: LLMAnalysis, config: AnalysisConfig) -> tuple[CallAnalysis | None, list[str]]:
    """The checked and repaired analysis, or the problems to send back to the model."""
    q_index, q_problems = _match(
        [p.parameter_name for p in config.rubric], [q.parameter_name for q in answer.quality], "quality"
    )
    l_index, l_problems = _match(config.labels, [q.label for q in answer.qualification], "qualification")
    problems = q_problems + l_problems
    if problems:
        return None, problems
    quality = []
    for parameter, i in zip(config.rubric, q_index, strict=True):
        item = answer.quality[i]
        quality.append(
            QualityItem(
                justification=item.justification,
                suggestion=item.suggestion,
                parameter_name=parameter.parameter_name,
                inference_score=min(float(parameter.max_score), max(0.0, item.inference_score)),
                parameter_score=float(parameter.max_score),
                is_fatal=parameter.is_fatal,
            )
        )
    qualification = [
        Qualification(label=label, answer=answer.qualification[i].answer)
        for label, i in zip(config.labels, l_index, strict=True)
    ]
    bant = answer.bant.model_dump()
    bant["concern_categories"] = _categories(answer.bant.concern_categories)
    return (
        CallAnalysis(
            intent=answer.intent,
            intent_justification=answer.intent_justification,
            quality_score=quality_score(quality),
            summary=[Chapter(chapter_name=c.chapter_name, chapter_summary=c.chapter_summary) for c in answer.summary],
            bant=Bant(**bant),
            qualification=qualification,
            quality=quality,
        ),
        [],
    )


def _describe(error: ValidationError) -> str:
    parts = []
    for e in error.errors()[:_MAX_REPORTED_ERRORS]:
        where = ".".join(str(p) for p in e["loc"]) or "(root)"
        parts.append(f"{where}: {e['msg']}")
    more = error.error_count() - _MAX_REPORTED_ERRORS
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _content(body: Any) -> str:
    """The assistant message's text, or ``_Invalid`` when the response has none."""
    try:
        choice = body["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise _Invalid("the response has no choices[0].message.content") from None
    if not isinstance(content, str) or not content.strip():
        raise _Invalid("the answer was empty")
    if choice.get("finish_reason") == "length":
        raise _Invalid("the answer was cut off (finish_reason=length); answer more concisely")
    text = content.strip()
    if text.startswith("```"):
        # Models without schema enforcement like to fence their JSON.
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text


def parse_answer(text: str, config: AnalysisConfig) -> CallAnalysis:
    """The analysis in ``text``; raises ``_Invalid`` with what is wrong."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _Invalid(f"the answer is not valid JSON ({exc})") from None
    try:
        answer = LLMAnalysis.model_validate(data)
    except ValidationError as exc:
        raise _Invalid(f"the answer does not match the schema: {_describe(exc)}") from None
    analysis, problems = to_call_analysis(answer, config)
    if analysis is None:
        raise _Invalid("; ".join(problems))
    return analysis


class _Invalid(Exception):
    """The model's answer is unusable; the message says why (and is sent back to it)."""


class _Transient(Exception):
    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


# ------------------------------------------------------------------------------------------
# The engine
# ------------------------------------------------------------------------------------------


class LLMAnalysisEngine:
    """``AnalysisEngine`` over an OpenAI-compatible chat-completions endpoint (see the module
    docstring). The HTTP session is created on first use and closed by ``close``."""

    name = LLM_NAME
    version = PROMPT_VERSION

    def __init__(self, settings: AnalysisSettings) -> None:
        if not settings.llm_base_url or not settings.llm_model:
            raise ValueError("the LLM analysis engine needs llm_base_url and llm_model")
        if settings.llm_max_attempts < 1:
            raise ValueError("llm_max_attempts must be at least 1")
        self.model = settings.llm_model
        self._settings = settings
        self._url = settings.llm_base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if settings.llm_api_key:
            self._headers["Authorization"] = f"Bearer {settings.llm_api_key}"
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        # Never show the headers: they hold the API key.
        return f"LLMAnalysisEngine(url={self._url!r}, model={self.model!r})"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._settings.llm_timeout_s))
        return self._session

    async def close(self) -> None:
        """Close the HTTP session (idempotent)."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def analyze(self, data: AnalysisInput) -> CallAnalysis:
        """Analyse one call (raises ``AnalysisError`` with ``llm_unavailable`` or
        ``llm_invalid_output``)."""
        units = build_units(data.transcript)
        reason = no_conversation_reason(units, data.speech_s)
        if reason is not None:
            return no_conversation_analysis(data.config, reason)
        base_messages: list[dict[str, str]] = [
            {"role": "system", "content": system_prompt(data.config)},
            {"role": "user", "content": user_prompt(data.transcript, data.duration_s)},
        ]
        schema = response_schema(data.config)
        correction: list[dict[str, str]] = []
        problem = ""
        for attempt in range(1, self._settings.llm_max_attempts + 1):
            payload = {
                "model": self.model,
                "temperature": self._settings.llm_temperature,
                "messages": base_messages + correction,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "call_analysis", "strict": True, "schema": schema},
                },
            }
            body = await self._post(payload)
            text = ""
            try:
                text = _content(body)
                return parse_answer(text, data.config)
            except _Invalid as exc:
                problem = str(exc)
                log.warning(
                    "LLM answer rejected",
                    extra={
                        "attempt": attempt,
                        "max_attempts": self._settings.llm_max_attempts,
                        "problem": problem[:500],
                    },
                )
                # Only the latest wrong answer goes back, so the conversation does not grow
                # with every attempt.
                correction = [
                    {"role": "assistant", "content": text[:_ECHO_MAX_CHARS]},
                    {
                        "role": "user",
                        "content": f"That answer is invalid: {problem}. Reply again with the complete, corrected JSON "
                        "object only, following the schema exactly.",
                    },
                ]
        raise AnalysisError(
            "llm_invalid_output",
            f"no valid analysis after {self._settings.llm_max_attempts} answer(s): {problem[:500]}",
        )

    async def _post(self, payload: dict[str, Any]) -> Any:
        """POST with retries on transient failures; the decoded JSON response body."""
        attempts = self._settings.llm_max_attempts
        for attempt in range(1, attempts + 1):
            try:
                return await self._post_once(payload)
            except _Transient as exc:
                if attempt >= attempts:
                    raise AnalysisError(
                        "llm_unavailable", f"the LLM endpoint failed {attempts} time(s): {exc}", retryable=True
                    ) from None
                delay = Backoff(
                    self._settings.llm_retry_backoff_s, BACKOFF_MAX_S, retry_after_max_s=RETRY_AFTER_MAX_S
                ).delay(attempt, exc.retry_after_s)
                log.warning(
                    "LLM request failed, retrying", extra={"attempt": attempt, "error": str(exc), "delay_s": delay}
                )
                await backoff.wait(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post_once(self, payload: dict[str, Any]) -> Any:
        try:
            async with self._client().post(self._url, data=orjson.dumps(payload), headers=self._headers) as response:
                status = response.status
                if status in (408, 429) or status >= 500:
                    raise _Transient(f"HTTP {status}", parse_retry_after(response.headers.get("Retry-After")))
                if status >= 400:
                    detail = (await response.text(errors="replace"))[:300]
                    raise AnalysisError(
                        "llm_unavailable", f"the LLM endpoint refused the request: HTTP {status} {detail}"
                    )
                raw = await response.read()
        except TimeoutError:
            raise _Transient("timed out") from None
        except aiohttp.ClientError as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            # A 200 that is not JSON at all: a proxy's error page, say. Treat it as a bad answer.
            return {"choices": []}
