"""Mono diarization: voices told apart in festival speech (wideband and telephone), and labelled
agent and customer from what they say or from the tenant's configuration.

The diarizer is fed the scripted turns' own timings as its segments, so these tests see the
diarizer alone; through speech recognition it is measured by `make eval` and exercised by the
analyzer's integration tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.analysis import DEFAULT_CONFIG, AnalysisConfig, ChannelMap, TranscriptSegment
from services.analyzer import diarization
from services.analyzer.speakers import label_voices, voice_score
from tests.support import audio

needs_festival = pytest.mark.skipif(not audio.tools_available(), reason="festival is not installed")


def _segments(call: audio.RenderedCall) -> list[TranscriptSegment]:
    return [TranscriptSegment(speaker="unknown", start=t.start_s, end=t.end_s, text=t.text) for t in call.turns]


def _write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@needs_festival
@pytest.mark.parametrize("telephone", [False, True], ids=["16k-wav", "8k-mulaw"])
def test_two_voices_in_one_channel_are_told_apart(tmp_path: Path, telephone: bool) -> None:
    call = audio.render_conversation(audio.SCRIPTS["interested"], stereo=False)
    data = audio.telephone(call, "mulaw") if telephone else audio.encode(call, "wav")
    voices = diarization.diarize_file(_write(tmp_path, "call.wav", data), _segments(call))
    # Voice 0 is the one heard first (the agent here); every turn gets its speaker's voice.
    assert voices == [0 if t.speaker == "agent" else 1 for t in call.turns]


@needs_festival
def test_a_single_voice_is_one_voice(tmp_path: Path) -> None:
    turns = [t for t in audio.SCRIPTS["agenda_set"] + audio.SCRIPTS["no_agenda"] if t.speaker == "agent"]
    call = audio.render_conversation(turns, stereo=False)
    voices = diarization.diarize_file(_write(tmp_path, "agent.wav", audio.encode(call, "mp3")), _segments(call))
    assert set(voices) == {0}


@needs_festival
def test_the_same_recording_gives_the_same_voices(tmp_path: Path) -> None:
    call = audio.render_conversation(audio.SCRIPTS["price_objection"], stereo=False)
    path = _write(tmp_path, "call.mp3", audio.encode(call, "mp3"))
    assert diarization.diarize_file(path, _segments(call)) == diarization.diarize_file(path, _segments(call))


def test_no_segments_no_voices(tmp_path: Path) -> None:
    assert diarization.assign_voices([], []) == []


def _said(*texts: str) -> list[TranscriptSegment]:
    return [TranscriptSegment(speaker="unknown", start=2.0 * i, end=2.0 * i + 1.5, text=t) for i, t in enumerate(texts)]


def test_the_voice_that_introduces_itself_and_asks_is_the_agent() -> None:
    # An outbound call: the customer picks up first.
    segments = _said(
        "hello",
        "hi this is anna from acme i am calling about your delivery costs",
        "okay",
        "how do you ship your orders today",
        "we use a courier and it takes forever",
    )
    labelled = label_voices(segments, [0, 1, 0, 1, 0], ChannelMap())
    assert [s.speaker for s in labelled] == ["customer", "agent", "customer", "agent", "customer"]
    assert [s.text for s in labelled] == [s.text for s in segments]


def test_without_cues_the_first_voice_is_the_agent() -> None:
    labelled = label_voices(_said("good morning", "morning"), [0, 1], ChannelMap())
    assert [s.speaker for s in labelled] == ["agent", "customer"]


def test_the_tenants_configuration_decides() -> None:
    segments = _said("hi this is anna from acme", "hello who is this")
    assert [s.speaker for s in label_voices(segments, [0, 1], ChannelMap(mono_first_speaker="customer"))] == [
        "customer",
        "agent",
    ]


def test_a_single_voice_leaves_the_speakers_unknown() -> None:
    # One voice may be one party alone or two voices the diarizer cannot tell apart: calling it
    # one-sided would make a real conversation NO_CONVERSATION.
    for config in (ChannelMap(), ChannelMap(mono_first_speaker="agent")):
        segments = _said("hello hi this is tom from apex can you hear me", "we are not interested")
        assert {s.speaker for s in label_voices(segments, [0, 0], config)} == {"unknown"}


def test_cues_weigh_towards_the_agent_or_the_customer() -> None:
    assert voice_score(["this is mark from brightline", "what does your team use today"]) > 0
    assert voice_score(["we are not interested please remove us from your list"]) < 0


def test_the_new_setting_leaves_existing_configuration_ids_alone() -> None:
    unset = AnalysisConfig(labels=DEFAULT_CONFIG.labels, rubric=DEFAULT_CONFIG.rubric, channels=ChannelMap())
    assert unset.config_id() == DEFAULT_CONFIG.config_id()
    # The id every configuration had before the setting existed (a content hash of the rest).
    assert DEFAULT_CONFIG.config_id() == "cfg_d4ffcac4e410e03d"
    first = unset.model_copy(update={"channels": ChannelMap(mono_first_speaker="agent")})
    assert first.config_id() != unset.config_id()
