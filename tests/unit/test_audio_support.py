"""The synthesised test audio is what it claims to be: real speech, right channels, every format."""

from __future__ import annotations

import io
import time
from pathlib import Path

import av
import pytest

from tests.support import audio
from tests.support.audio import SAMPLE_RATE, Turn

pytestmark = pytest.mark.skipif(not audio.tools_available(), reason="festival and its voices are not installed")

SHORT = (
    Turn("agent", "Hello, this is Mark from Brightline."),
    Turn("customer", "Hi Mark, how can I help?"),
    Turn("agent", "I am calling about your sales calls."),
)

# How much longer than the PCM a decoded file may be. MP3 (LAME's gapless header) and WAV are
# exact. MP4/M4A trim the AAC encoder's priming with an edit list, but PyAV still returns the
# last frame whole: up to one 1024-sample frame more. Raw ADTS has no edit list: the priming
# frame and the padded last frame both come out, up to two frames (0.128 s at 16 kHz).
EXTRA_S = {"wav": 0.0, "mp3": 0.0, "m4a": 1024 / SAMPLE_RATE, "mp4": 1024 / SAMPLE_RATE, "aac": 2048 / SAMPLE_RATE}
ONE_SAMPLE = 1 / SAMPLE_RATE


@pytest.fixture(scope="module", params=["stereo", "mono"])
def call(request: pytest.FixtureRequest) -> audio.RenderedCall:
    return audio.render_conversation(SHORT, stereo=request.param == "stereo")


@pytest.fixture(scope="module")
def stereo_call() -> audio.RenderedCall:
    return audio.render_conversation(SHORT, stereo=True)


def test_rendering_places_turns_in_order_with_the_gaps() -> None:
    rendered = audio.render_conversation(SHORT, stereo=False, gap_s=0.5)
    assert [t.speaker for t in rendered.turns] == ["agent", "customer", "agent"]
    assert rendered.turns[0].start_s == pytest.approx(0.3)
    for before, after in zip(rendered.turns, rendered.turns[1:], strict=False):
        assert after.start_s - before.end_s == pytest.approx(0.5, abs=ONE_SAMPLE)
    assert rendered.duration_s == pytest.approx(rendered.turns[-1].end_s + 0.3, abs=ONE_SAMPLE)
    assert rendered.transcript.startswith("Hello, this is Mark")
    # Real speech lasts about as long as it takes to say: seconds, not milliseconds.
    assert all(0.8 < t.end_s - t.start_s < 4 for t in rendered.turns)


@pytest.mark.parametrize("fmt", audio.FORMATS)
def test_every_format_decodes_with_the_right_channels_and_duration(call: audio.RenderedCall, fmt: str) -> None:
    decoded = audio.decode(audio.encode(call, fmt))  # type: ignore[arg-type]
    assert decoded.channels == call.channels
    assert decoded.sample_rate == SAMPLE_RATE
    delta = decoded.duration_s - call.duration_s
    assert -ONE_SAMPLE <= delta <= EXTRA_S[fmt] + ONE_SAMPLE, f"{fmt}: {delta:+.4f} s"


@pytest.mark.parametrize(
    ("fmt", "sniffed"),
    [("mp3", b"ID3"), ("wav", b"RIFF"), ("aac", b"\xff\xf1"), ("m4a", b"ftypM4A "), ("mp4", b"ftypisom")],
)
def test_every_format_is_what_its_content_says(stereo_call: audio.RenderedCall, fmt: str, sniffed: bytes) -> None:
    data = audio.encode(stereo_call, fmt)  # type: ignore[arg-type]
    assert sniffed in data[:12]
    assert audio.decode(data).codec == {"mp3": "mp3float", "wav": "pcm_s16le"}.get(fmt, "aac")


@pytest.mark.parametrize("fmt", ["m4a", "mp4"])
def test_faststart_puts_the_index_first(stereo_call: audio.RenderedCall, fmt: str) -> None:
    plain, fast = audio.encode(stereo_call, fmt), audio.encode(stereo_call, fmt, faststart=True)  # type: ignore[arg-type]
    assert plain.index(b"mdat") < plain.index(b"moov")
    assert fast.index(b"moov") < fast.index(b"mdat")


@pytest.mark.parametrize("fmt", [None, *audio.FORMATS])
def test_stereo_keeps_each_party_on_its_own_channel(stereo_call: audio.RenderedCall, fmt: str | None) -> None:
    # None: the rendered PCM itself; otherwise what a decoder makes of the encoded file, since
    # joint-stereo coding could leak one side into the other.
    pcm = stereo_call if fmt is None else audio.decode(audio.encode(stereo_call, fmt)).as_call()  # type: ignore[arg-type]
    for turn in stereo_call.turns:
        speaking, silent = (0, 1) if turn.speaker == "agent" else (1, 0)
        assert audio.dbfs(pcm.channel(speaking, turn.start_s, turn.end_s)) > -35, turn
        assert audio.dbfs(pcm.channel(silent, turn.start_s, turn.end_s)) < -60, turn


def test_mono_has_both_parties_in_one_channel() -> None:
    rendered = audio.render_conversation(SHORT, stereo=False)
    assert rendered.channels == 1
    for turn in rendered.turns:
        assert audio.dbfs(rendered.channel(0, turn.start_s, turn.end_s)) > -35, turn
    gap = rendered.channel(0, rendered.turns[0].end_s + 0.05, rendered.turns[1].start_s - 0.05)
    assert audio.dbfs(gap) < -60


def test_the_two_default_voices_differ() -> None:
    same_text = "Thank you for calling."
    assert audio.synthesize(same_text, audio.MALE) != audio.synthesize(same_text, audio.FEMALE)


def test_silence_and_noise() -> None:
    silence = audio.render_silence(2.0, stereo=True)
    assert (silence.channels, silence.duration_s, silence.turns) == (2, 2.0, ())
    assert audio.dbfs(silence.samples) == float("-inf")
    noise = audio.render_silence(2.0, noise_dbfs=-50, seed=7)
    assert audio.dbfs(noise.samples) == pytest.approx(-50, abs=0.5)
    assert noise == audio.render_silence(2.0, noise_dbfs=-50, seed=7)
    assert noise != audio.render_silence(2.0, noise_dbfs=-50, seed=8)
    assert audio.decode(audio.encode(noise, "mp3")).duration_s == pytest.approx(2.0, abs=ONE_SAMPLE)


def test_the_cache_serves_identical_bytes_without_recomputing(
    stereo_call: audio.RenderedCall, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(audio, "CACHE_DIR", tmp_path)
    first = audio.encode(stereo_call, "m4a")

    def fail(*args: object) -> None:
        raise AssertionError("encoded again despite the cache")

    monkeypatch.setattr(audio, "_encode_into", fail)
    started = time.perf_counter()
    assert audio.encode(stereo_call, "m4a") == first
    assert time.perf_counter() - started < 0.5
    # Only the finished file is left: the temporary one it was written as is gone.
    assert [p.name.endswith(".m4a") and not p.name.startswith(".") for p in tmp_path.iterdir()] == [True]


def test_synthesis_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = audio.synthesize("Thank you for calling.", audio.FEMALE)

    def fail(*args: object) -> bytes:
        raise AssertionError("festival ran despite the cache")

    monkeypatch.setattr(audio, "_festival_wav", fail)
    assert audio.synthesize("Thank you for calling.", audio.FEMALE) == expected


def test_voice_names_are_checked() -> None:
    with pytest.raises(ValueError, match="not a festival voice"):
        audio.synthesize("Hello.", "kal_diphone) (quit")
    with pytest.raises(audio.AudioToolsMissing):
        audio.synthesize("Hello.", "no_such_voice")


# What a download cut in half looks like to a decoder, per format (faststart only for MP4s).
TRUNCATION = [
    ("mp3", False, "shorter"),  # a stream of self-contained frames: plays up to the cut
    ("wav", False, "shorter"),  # raw PCM after the header: plays up to the cut
    ("aac", False, "error"),  # the cut splits an ADTS frame, which the decoder rejects
    ("m4a", False, "unreadable"),  # the index (moov) follows the audio, so it is cut off
    ("mp4", False, "unreadable"),
    ("m4a", True, "error"),  # the index is intact but points past the end of the data
    ("mp4", True, "error"),
]


@pytest.mark.parametrize(("fmt", "faststart", "outcome"), TRUNCATION)
def test_a_truncated_file_does_not_decode_fully(
    stereo_call: audio.RenderedCall, fmt: str, faststart: bool, outcome: str
) -> None:
    damaged = audio.truncated(audio.encode(stereo_call, fmt, faststart=faststart), 0.5)  # type: ignore[arg-type]
    if outcome == "unreadable":
        with pytest.raises(av.InvalidDataError):
            audio.decode(damaged, strict=False)
        return
    if outcome == "error":
        with pytest.raises(av.FFmpegError):
            audio.decode(damaged)
    # Whatever decodes is the first part only: roughly the fraction kept.
    partial = audio.decode(damaged, strict=False)
    assert 0.3 * stereo_call.duration_s < partial.duration_s < 0.7 * stereo_call.duration_s


def test_truncated_keeps_a_prefix() -> None:
    assert audio.truncated(b"0123456789", 0.3) == b"012"
    with pytest.raises(ValueError):
        audio.truncated(b"0123456789", 1.0)


@pytest.mark.parametrize(("fmt", "brand"), [("mp4", b"ftypisom"), ("m4a", b"ftypM4A ")])
def test_a_video_only_file_has_no_audio_stream(fmt: str, brand: bytes) -> None:
    data = audio.video_only(fmt)  # type: ignore[arg-type]
    assert brand in data[:12]
    with av.open(io.BytesIO(data)) as container:
        assert [s.type for s in container.streams] == ["video"]
        assert sum(1 for _ in container.decode(video=0)) == 10
    with pytest.raises(ValueError, match="no audio stream"):
        audio.decode(data)


@pytest.mark.parametrize("name", sorted(audio.SCRIPTS))
def test_every_script_is_a_short_two_party_call(name: str) -> None:
    turns = audio.SCRIPTS[name]
    assert {t.speaker for t in turns} == {"agent", "customer"}
    assert not any(ch.isdigit() for t in turns for ch in t.text), "festival reads digits badly"
    rendered = audio.render_conversation(turns, stereo=True)
    assert 20 <= rendered.duration_s <= 40


@pytest.mark.parametrize(
    ("name", "speaker", "phrase"),
    [
        ("interested", "customer", "How much does it cost?"),
        ("interested", "customer", "What are the next steps?"),
        ("not_interested", "customer", "We are not interested, please remove us from your list"),
        ("budget_and_timeline", "customer", "ten thousand dollars"),
        ("budget_and_timeline", "customer", "by the end of March"),
        ("price_objection", "customer", "it's too expensive"),
        ("agenda_set", "agent", "agenda"),
    ],
)
def test_scripts_say_what_they_are_named_for(name: str, speaker: str, phrase: str) -> None:
    assert any(phrase in t.text for t in audio.SCRIPTS[name] if t.speaker == speaker)


def test_the_no_agenda_script_never_states_one() -> None:
    text = " ".join(t.text for t in audio.SCRIPTS["no_agenda"]).lower()
    assert "agenda" not in text
    assert "first," not in text
