"""The LLM analysis engine against a real local server speaking the OpenAI chat-completions API
(tests/support/openai_chat_server.py): request shape, validation, repair, retries, failures."""

from __future__ import annotations

import copy
import json
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from schemas.analysis import DEFAULT_CONFIG, INTENTS, AnalysisConfig, RubricParameter, TranscriptSegment, quality_score
from services.analyzer.analysis import (
    AnalysisError,
    AnalysisInput,
    AnalysisSettings,
    LLMAnalysisEngine,
    analyze_transcript,
    create_analysis_engine,
)
from tests.support.audio import SCRIPTS
from tests.support.openai_chat_server import ChatServer, openai_chat_server

MODEL = "callpipe-test-model"
CONFIG = AnalysisConfig(
    labels=["Needs", "Budget", "Objection Handling"],
    rubric=[
        RubricParameter(
            parameter_name="Setting Context",
            description="State the purpose and agenda of the call.",
            is_fatal=True,
        ),
        RubricParameter(parameter_name="Next Steps", description="Agree on a concrete next step.", max_score=5),
        RubricParameter(parameter_name="USP Audits", description="Explain the AI audit feature.", max_score=20),
    ],
)


def transcript(name: str = "interested") -> AnalysisInput:
    t = 0.3
    segments = []
    for turn in SCRIPTS[name]:
        text = " ".join(re.sub(r"[^\w\s']", " ", turn.text.lower()).split())
        duration = len(text.split()) / 2.6
        segments.append(
            TranscriptSegment(speaker=turn.speaker, start=round(t, 2), end=round(t + duration, 2), text=text)
        )
        t += duration + 0.4
    return AnalysisInput(segments, CONFIG, t, t * 0.8)


def valid_answer(config: AnalysisConfig = CONFIG) -> dict[str, Any]:
    """An answer a well-behaved model gives for ``config``."""
    return {
        "intent": "INTERESTED",
        "intent_justification": 'The customer asked for a proposal: customer at 00:27: "can you send me a proposal".',
        "summary": [
            {"chapter_name": "Introduction", "chapter_summary": "The agent introduced Brightline."},
            {"chapter_name": "Next steps", "chapter_summary": "The agent agreed to send a proposal and book a demo."},
        ],
        "bant": {
            "needs": "Reviewing calls by hand takes forever.",
            "objection": None,
            "concern_categories": None,
            "objection_handling": None,
            "budget": None,
            "authority": None,
            "timeline": "next Tuesday",
        },
        "qualification": [{"label": label, "answer": f"About {label.lower()}."} for label in config.labels],
        "quality": [
            {
                "parameter_name": p.parameter_name,
                "inference_score": p.max_score // 2,
                "justification": f"Partly done: {p.parameter_name}.",
                "suggestion": f"You could do better at {p.parameter_name.lower()}.",
                "parameter_score": p.max_score,
                "is_fatal": p.is_fatal,
            }
            for p in config.rubric
        ],
    }


@pytest.fixture
async def llm() -> AsyncIterator[ChatServer]:
    async with openai_chat_server() as server:
        yield server


def make_engine(server: ChatServer, **overrides: Any) -> LLMAnalysisEngine:
    settings: dict[str, Any] = {
        "engine": "llm",
        "llm_base_url": server.base_url,
        "llm_model": MODEL,
        "llm_temperature": 0.0,
        "llm_max_attempts": 3,
        "llm_retry_backoff_s": 0.01,
        "llm_timeout_s": 5.0,
    }
    settings.update(overrides)
    engine = create_analysis_engine(AnalysisSettings(**settings))
    assert isinstance(engine, LLMAnalysisEngine)
    return engine


@pytest.fixture
async def engine(llm: ChatServer) -> AsyncIterator[LLMAnalysisEngine]:
    engine = make_engine(llm)
    yield engine
    await engine.close()


# ------------------------------------------------------------------------------------------
# Success
# ------------------------------------------------------------------------------------------


async def test_a_valid_answer_becomes_the_analysis_with_the_formula_score(
    llm: ChatServer, engine: LLMAnalysisEngine
) -> None:
    answer = valid_answer()
    answer["quality_score"] = 99  # never trusted: the score is computed
    answer["quality"][0]["inference_score"] = 2  # the fatal Setting Context fails (2 < 5)
    llm.reply_json(answer)

    analysis = await engine.analyze(transcript())

    assert len(llm.requests) == 1
    assert analysis.intent == "INTERESTED"
    assert analysis.intent_justification == answer["intent_justification"]
    assert [c.chapter_name for c in analysis.summary] == ["Introduction", "Next steps"]
    assert analysis.bant.timeline == "next Tuesday"
    assert [q.label for q in analysis.qualification] == CONFIG.labels
    assert [q.inference_score for q in analysis.quality] == [2, 2, 10]
    # 100 * (2 + 2 + 10) / (10 + 5 + 20), halved once for the failed fatal parameter.
    assert analysis.quality_score == quality_score(analysis.quality) == round(100 * 14 / 35 * 0.5, 1)


async def test_the_request_carries_model_temperature_schema_rubric_labels_and_transcript(llm: ChatServer) -> None:
    engine = make_engine(llm, llm_api_key="sk-test-secret", llm_temperature=0.2)
    llm.reply_json(valid_answer())
    try:
        await engine.analyze(transcript())
    finally:
        await engine.close()

    (request,) = llm.requests
    assert request.headers["Authorization"] == "Bearer sk-test-secret"
    assert "sk-test-secret" not in repr(engine)
    body = request.body
    assert body["model"] == MODEL
    assert body["temperature"] == 0.2
    response_format = body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "call_analysis"
    assert response_format["json_schema"]["strict"] is True
    schema = response_format["json_schema"]["schema"]
    assert set(schema["required"]) == {"intent", "intent_justification", "summary", "bant", "qualification", "quality"}
    assert "quality_score" not in schema["properties"]
    assert schema["additionalProperties"] is False
    defs = schema["$defs"]
    assert defs["LLMQualityItem"]["properties"]["parameter_name"]["enum"] == [p.parameter_name for p in CONFIG.rubric]
    assert defs["LLMQualification"]["properties"]["label"]["enum"] == CONFIG.labels
    assert all(set(d["required"]) == set(d["properties"]) for d in defs.values() if "properties" in d)

    system, user = body["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    for name in INTENTS:
        assert name in system["content"]
    for p in CONFIG.rubric:
        assert p.parameter_name in system["content"]
        assert p.description in system["content"]
    assert "Setting Context (max score 10, fatal: yes)" in system["content"]
    assert "USP Audits (max score 20, fatal: no)" in system["content"]
    for label in CONFIG.labels:
        assert label in system["content"]
    assert "Pricing" in system["content"]  # the concern categories
    assert "[00:00] agent: hi this is mark from brightline software" in user["content"]
    assert re.search(r"\[00:\d\d\] customer: great i look forward to it", user["content"])


async def test_no_authorization_header_without_a_key(llm: ChatServer, engine: LLMAnalysisEngine) -> None:
    llm.reply_json(valid_answer())
    await engine.analyze(transcript())
    assert "Authorization" not in llm.requests[0].headers


async def test_deterministic_repairs_need_no_second_request(llm: ChatServer, engine: LLMAnalysisEngine) -> None:
    answer = valid_answer()
    answer["intent"] = "not interested"
    answer["quality"] = [
        # Out of order, odd spelling, wrong or missing parameter_score / is_fatal, out of range.
        {**answer["quality"][2], "parameter_name": "usp audits", "inference_score": 35, "parameter_score": 100},
        {**answer["quality"][0], "parameter_name": "SETTING  CONTEXT", "inference_score": -3, "is_fatal": False},
        {k: v for k, v in answer["quality"][1].items() if k not in ("parameter_score", "is_fatal")},
        {**answer["quality"][1], "parameter_name": "Rapport"},  # not in the rubric: dropped
    ]
    answer["qualification"] = list(reversed(answer["qualification"]))
    answer["bant"]["concern_categories"] = "pricing, Budget,Trust"
    llm.reply_json(answer)

    analysis = await engine.analyze(transcript())

    assert len(llm.requests) == 1
    assert analysis.intent == "NOT_INTERESTED"
    assert [q.parameter_name for q in analysis.quality] == ["Setting Context", "Next Steps", "USP Audits"]
    assert [q.inference_score for q in analysis.quality] == [0, 2, 20]
    assert [q.parameter_score for q in analysis.quality] == [10, 5, 20]
    assert [q.is_fatal for q in analysis.quality] == [True, False, False]
    assert [q.label for q in analysis.qualification] == CONFIG.labels
    assert analysis.bant.concern_categories == "Pricing, Trust, Other"
    assert analysis.quality_score == quality_score(analysis.quality)


async def test_a_fenced_answer_is_accepted(llm: ChatServer, engine: LLMAnalysisEngine) -> None:
    llm.reply_content("```json\n" + json.dumps(valid_answer()) + "\n```")
    assert (await engine.analyze(transcript())).intent == "INTERESTED"


# ------------------------------------------------------------------------------------------
# Invalid answers: corrected by the model, or given up on
# ------------------------------------------------------------------------------------------


async def test_a_malformed_first_answer_is_sent_back_and_the_second_accepted(
    llm: ChatServer, engine: LLMAnalysisEngine
) -> None:
    llm.reply_content('{"intent": "INTERESTED", "summary": [')
    llm.reply_json(valid_answer())

    analysis = await engine.analyze(transcript())

    assert analysis.intent == "INTERESTED"
    assert len(llm.requests) == 2
    first, second = (r.messages for r in llm.requests)
    assert len(first) == 2
    assert second[:2] == first
    assert second[2] == {"role": "assistant", "content": '{"intent": "INTERESTED", "summary": ['}
    assert second[3]["role"] == "user"
    assert "not valid JSON" in second[3]["content"]


async def test_a_schema_error_is_explained_to_the_model(llm: ChatServer, engine: LLMAnalysisEngine) -> None:
    broken = valid_answer()
    broken["intent"] = "MAYBE"
    del broken["bant"]
    llm.reply_json(broken)
    llm.reply_json(valid_answer())

    await engine.analyze(transcript())

    feedback = llm.requests[1].messages[-1]["content"]
    assert "does not match the schema" in feedback
    assert "intent" in feedback and "bant" in feedback


async def test_a_missing_rubric_item_or_label_is_asked_for_again(llm: ChatServer, engine: LLMAnalysisEngine) -> None:
    incomplete = valid_answer()
    incomplete["quality"] = incomplete["quality"][:2]  # no "USP Audits"
    incomplete["qualification"] = incomplete["qualification"][1:]  # no "Needs"
    llm.reply_json(incomplete)
    llm.reply_json(valid_answer())

    analysis = await engine.analyze(transcript())

    assert [q.parameter_name for q in analysis.quality] == [p.parameter_name for p in CONFIG.rubric]
    feedback = llm.requests[1].messages[-1]["content"]
    assert 'quality is missing "USP Audits"' in feedback
    assert 'qualification is missing "Needs"' in feedback


async def test_a_repeated_rubric_item_is_asked_for_again(llm: ChatServer, engine: LLMAnalysisEngine) -> None:
    repeated = valid_answer()
    repeated["quality"].append(copy.deepcopy(repeated["quality"][1]))
    llm.reply_json(repeated)
    llm.reply_json(valid_answer())

    await engine.analyze(transcript())

    assert 'quality lists more than once "Next Steps"' in llm.requests[1].messages[-1]["content"]


async def test_invalid_every_time_is_llm_invalid_output_after_max_attempts(
    llm: ChatServer, engine: LLMAnalysisEngine
) -> None:
    llm.reply_content("I am sorry, I cannot help with that.")
    llm.reply_json({"intent": "INTERESTED"})
    llm.reply_content('{"unfinished": ', finish_reason="length")

    with pytest.raises(AnalysisError) as raised:
        await engine.analyze(transcript())

    assert raised.value.code == "llm_invalid_output"
    assert "cut off" in raised.value.message  # the last problem is reported
    assert len(llm.requests) == 3
    # Only the latest wrong answer goes back: the conversation does not grow.
    assert len(llm.requests[2].messages) == 4


# ------------------------------------------------------------------------------------------
# Transport
# ------------------------------------------------------------------------------------------


async def test_a_server_error_is_retried(llm: ChatServer, engine: LLMAnalysisEngine) -> None:
    llm.reply_status(500)
    llm.reply_status(503, headers={"Retry-After": "0"})
    llm.reply_json(valid_answer())

    assert (await engine.analyze(transcript())).intent == "INTERESTED"
    assert len(llm.requests) == 3


async def test_server_errors_every_time_are_llm_unavailable(llm: ChatServer, engine: LLMAnalysisEngine) -> None:
    for _ in range(3):
        llm.reply_status(502)
    with pytest.raises(AnalysisError) as raised:
        await engine.analyze(transcript())
    assert raised.value.code == "llm_unavailable"
    assert raised.value.retryable is True
    assert len(llm.requests) == 3


async def test_unauthorized_is_llm_unavailable_at_once(llm: ChatServer) -> None:
    engine = make_engine(llm, llm_api_key="sk-wrong")
    llm.reply_status(401)
    llm.reply_json(valid_answer())  # never asked for
    try:
        with pytest.raises(AnalysisError) as raised:
            await engine.analyze(transcript())
    finally:
        await engine.close()
    assert raised.value.code == "llm_unavailable"
    assert raised.value.retryable is False
    assert "401" in raised.value.message
    assert "sk-wrong" not in str(raised.value)
    assert len(llm.requests) == 1


async def test_a_slow_endpoint_times_out_and_is_llm_unavailable(llm: ChatServer) -> None:
    engine = make_engine(llm, llm_timeout_s=0.2, llm_max_attempts=2)
    llm.reply_json(valid_answer(), delay_s=5)
    llm.reply_json(valid_answer(), delay_s=5)
    try:
        with pytest.raises(AnalysisError) as raised:
            await engine.analyze(transcript())
    finally:
        await engine.close()
    assert raised.value.code == "llm_unavailable"
    assert "timed out" in raised.value.message
    assert len(llm.requests) == 2


async def test_an_unreachable_endpoint_is_llm_unavailable() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = create_analysis_engine(
        AnalysisSettings(
            engine="llm", llm_base_url=f"http://127.0.0.1:{port}/v1", llm_model=MODEL, llm_retry_backoff_s=0.01
        )
    )
    try:
        with pytest.raises(AnalysisError) as raised:
            await engine.analyze(transcript())
    finally:
        await engine.close()
    assert raised.value.code == "llm_unavailable"


# ------------------------------------------------------------------------------------------
# No conversation, configuration
# ------------------------------------------------------------------------------------------


async def test_no_conversation_skips_the_llm_and_matches_the_builtin_engine(
    llm: ChatServer, engine: LLMAnalysisEngine
) -> None:
    silent = AnalysisInput([], DEFAULT_CONFIG, duration_s=42.0, speech_s=0.0)
    analysis = await engine.analyze(silent)
    assert analysis.intent == "NO_CONVERSATION"
    assert analysis == analyze_transcript(silent)
    assert llm.requests == []


def test_the_llm_engine_needs_a_base_url_and_a_model() -> None:
    with pytest.raises(ValueError, match="llm_base_url"):
        create_analysis_engine(AnalysisSettings(engine="llm", llm_model=MODEL))
    with pytest.raises(ValueError, match="llm_model"):
        create_analysis_engine(AnalysisSettings(engine="llm", llm_base_url="http://127.0.0.1:1/v1"))
    engine = create_analysis_engine(AnalysisSettings(engine="llm", llm_base_url="http://x/v1/", llm_model=MODEL))
    assert (engine.name, engine.model) == ("llm", MODEL)
