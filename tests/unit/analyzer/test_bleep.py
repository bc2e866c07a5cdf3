"""The bleeped copy: masked text to time ranges, and ranges to a tone in the audio (synthetic
PCM, real PyAV encoding and decoding)."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pytest

from schemas.analysis import TranscriptSegment
from services.analyzer.bleep import (
    INTERPOLATED_PAD_S,
    TONE_HZ,
    WORD_PAD_S,
    BleepRange,
    bleep_pcm,
    bleep_ranges,
    render_bleeped,
    span_time,
)
from services.analyzer.redaction import Redactor, SegmentSpan

RATE = 16_000


def seg(text: str, start: float, end: float, speaker: str = "customer") -> TranscriptSegment:
    return TranscriptSegment(speaker=speaker, start=start, end=end, text=text)  # type: ignore[arg-type]


def tone_level(pcm: np.ndarray, start_s: float, end_s: float, hz: float = TONE_HZ) -> float:
    """Amplitude of the ``hz`` component of ``pcm[start_s:end_s]`` (a single-bin DFT)."""
    x = pcm[round(start_s * RATE) : round(end_s * RATE)].astype(np.float64)
    if len(x) == 0:
        return 0.0
    n = np.arange(len(x))
    return float(abs(np.sum(x * np.exp(-2j * math.pi * hz * n / RATE))) * 2 / len(x))


# -- span to time ---------------------------------------------------------------------------


def test_word_times_bound_the_masked_words() -> None:
    segment = seg("my card is four one one one", 10.0, 13.0)
    words = ((10.0, 10.2), (10.2, 10.6), (10.6, 10.8), (11.0, 11.4), (11.5, 11.8), (11.9, 12.3), (12.4, 13.0))
    span = SegmentSpan(0, segment.text.index("four"), len(segment.text))
    assert span_time(segment, span, words) == pytest.approx((11.0 - WORD_PAD_S, 13.0 + WORD_PAD_S))
    # A span starting mid-word takes the whole word.
    inner = SegmentSpan(0, segment.text.index("our"), segment.text.index(" one"))
    assert span_time(segment, inner, words) == pytest.approx((11.0 - WORD_PAD_S, 11.4 + WORD_PAD_S))


def test_without_word_times_the_time_is_interpolated_padded_and_clipped() -> None:
    segment = seg("a" * 50 + "b" * 50, 20.0, 30.0)
    middle = SegmentSpan(0, 50, 60)
    assert span_time(segment, middle, None) == pytest.approx((25.0 - INTERPOLATED_PAD_S, 26.0 + INTERPOLATED_PAD_S))
    whole = SegmentSpan(0, 0, 100)
    assert span_time(segment, whole, None) == pytest.approx((20.0, 30.0))
    # Word times that do not match the text's words are not trusted.
    assert span_time(segment, middle, ((20.0, 21.0), (21.0, 22.0))) == pytest.approx((24.7, 26.3))


def test_the_redactor_says_where_it_masked_and_ranges_follow_the_speaker() -> None:
    transcript = [
        seg("thanks what is the card number", 0.0, 2.0, "agent"),
        seg("it is four five three two double one five one", 2.5, 6.0),
        seg("mhm", 6.2, 6.5, "agent"),
        seg("two eight three oh seven two one seven", 7.0, 10.0),
    ]
    masked, spans = Redactor().redact_transcript(transcript)
    assert masked[1].text == "it is [CARD]" and masked[3].text == "[CARD]"
    assert [(s.index, s.start, s.end) for s in spans] == [
        (1, 6, len(transcript[1].text)),
        (3, 0, len(transcript[3].text)),
    ]
    ranges = bleep_ranges(transcript, spans, None)
    assert all(r.speaker == "customer" for r in ranges)
    assert ranges[0].start > 2.5 and ranges[0].end == 6.0
    assert (ranges[1].start, ranges[1].end) == (7.0, 10.0)
    # Overlapping ranges of one speaker merge.
    assert bleep_ranges([seg("a b c d", 0, 4)], [SegmentSpan(0, 0, 3), SegmentSpan(0, 2, 7)], None) == [
        BleepRange("customer", 0.0, 4.0)
    ]


# -- the tone -------------------------------------------------------------------------------


def test_bleep_pcm_replaces_the_range_with_the_tone_and_keeps_the_rest() -> None:
    rng = np.random.default_rng(1)
    pcm = rng.integers(-3000, 3000, RATE * 3, dtype=np.int16)
    # Given in a chunk starting at 1 s: the range 1.5-2.5 s is 0.5-1.5 s into the chunk.
    out = bleep_pcm(pcm, RATE, [(1.5, 2.5), (10.0, 11.0)])
    a, b = RATE // 2, RATE + RATE // 2
    assert np.array_equal(out[:a], pcm[:a]) and np.array_equal(out[b:], pcm[b:])
    assert tone_level(out, 0.55, 1.45) > 5000
    assert tone_level(pcm, 0.55, 1.45) < 200


def write_wav(path: Path, channels: list[np.ndarray]) -> None:
    layout = "stereo" if len(channels) == 2 else "mono"
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=RATE, layout=layout)
        interleaved = np.stack(channels, axis=1).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(interleaved, format="s16", layout=layout)
        frame.sample_rate = RATE
        for packet in stream.encode(frame):  # type: ignore[attr-defined]
            out.mux(packet)
        for packet in stream.encode(None):  # type: ignore[attr-defined]
            out.mux(packet)


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        planes: list[list[np.ndarray]] = []
        for frame in container.decode(stream):
            data = frame.to_ndarray()
            if frame.format.is_planar:
                rows = [data[i] for i in range(data.shape[0])]
            else:
                rows = [data[0][i :: stream.codec_context.channels] for i in range(stream.codec_context.channels)]
            if not planes:
                planes = [[] for _ in rows]
            for p, r in zip(planes, rows, strict=True):
                p.append(r)
        return [
            np.concatenate(p).astype(np.float64) * (32767 if np.issubdtype(p[0].dtype, np.floating) else 1)
            for p in planes
        ]


def test_a_stereo_recording_is_bleeped_on_the_speakers_channel_only(tmp_path: Path) -> None:
    seconds = 4
    t = np.arange(RATE * seconds) / RATE
    # Speech stand-ins: the agent at 300 Hz on the left, the customer at 450 Hz on the right.
    left = np.round(8000 * np.sin(2 * math.pi * 300 * t)).astype(np.int16)
    right = np.round(8000 * np.sin(2 * math.pi * 450 * t)).astype(np.int16)
    source = tmp_path / "call.wav"
    write_wav(source, [left, right])
    target = tmp_path / "bleeped.mp3"
    rendered = render_bleeped(str(source), ("agent", "customer"), [BleepRange("customer", 1.0, 2.0)], target)
    assert rendered.channels == 2 and rendered.media_type == "audio/mpeg" and rendered.bleeped_s == 1.0
    assert rendered.size == target.stat().st_size
    decoded_left, decoded_right = decode(target)
    # The tone is where the range is, on the customer's channel only (edges left out: the
    # encoder's frames smear a few milliseconds).
    assert tone_level(decoded_right, 1.1, 1.9) > 3000
    assert tone_level(decoded_right, 1.1, 1.9, 450) < 500
    for start, end in ((0.1, 0.9), (2.1, 3.9)):
        assert tone_level(decoded_right, start, end) < 300
        assert tone_level(decoded_right, start, end, 450) > 5000
    assert tone_level(decoded_left, 0.1, 3.9) < 300
    assert tone_level(decoded_left, 1.1, 1.9, 300) > 5000


def test_a_mono_recording_is_bleeped_whoever_spoke(tmp_path: Path) -> None:
    t = np.arange(RATE * 3) / RATE
    mono = np.round(8000 * np.sin(2 * math.pi * 300 * t)).astype(np.int16)
    source = tmp_path / "mono.wav"
    write_wav(source, [mono])
    target = tmp_path / "bleeped.mp3"
    rendered = render_bleeped(str(source), ("unknown",), [BleepRange("agent", 0.5, 1.5)], target)
    assert rendered.channels == 1
    [decoded] = decode(target)
    assert tone_level(decoded, 0.6, 1.4) > 3000
    assert tone_level(decoded, 1.6, 2.9) < 300
