"""The redacted ("bleeped") copy of a recording: what the redactor masked in the transcript is
covered in the audio by a tone, so a manager listening in the dashboard never hears it.

Two steps, both pure and blocking (run them off the event loop):

1. ``bleep_ranges``: each masked piece of text (``redaction.SegmentSpan``) becomes a time range.
   With word times from the engine (PocketSphinx aligns every word: ``AsrResult.word_times``),
   the range runs from the first to the last word the piece touches, padded by ``WORD_PAD_S``:
   the alignment is frame-exact, so the pad only covers co-articulation at the edges. Without
   them (Whisper-class engines give segment times only), it is interpolated by character offset
   within the segment, padded by ``INTERPOLATED_PAD_S`` each side and clipped to the segment:
   speech rate is roughly even within a short segment, and the generous pad absorbs the error
   (PocketSphinx splits at every pause of 0.3 s, so its segments are short anyway). Word times
   are preferred because interpolation errs most on digits read slowly among fast words.
2. ``render_bleeped``: the recording is decoded (the same 16 kHz PCM stream and channel plan the
   recogniser used), each range is replaced by a ``TONE_HZ`` tone at ``TONE_DBFS`` on the
   channel of the speaker who said it (a stereo call: that party's channel; mono: the whole
   signal), and the result is encoded as MP3 (every browser plays it; 16 kHz is more than a
   phone line carries). Chunk by chunk: memory stays flat however long the call.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import av.audio.stream
import numpy as np

from schemas.analysis import Speaker, TranscriptSegment
from services.analyzer.asr.audio import SAMPLE_RATE, PcmStream
from services.analyzer.asr.base import WordTimes
from services.analyzer.redaction import SegmentSpan

TONE_HZ = 1000.0
#: A moderate level: clearly a bleep, not louder than speech normalised near full scale.
TONE_DBFS = -14.0
WORD_PAD_S = 0.1
INTERPOLATED_PAD_S = 0.3
MEDIA_TYPE = "audio/mpeg"
#: Per channel: plenty for speech at 16 kHz.
BIT_RATE_PER_CHANNEL = 48_000


@dataclass(frozen=True)
class BleepRange:
    """Seconds of the recording to cover with the tone, on ``speaker``'s channel."""

    speaker: Speaker
    start: float
    end: float


@dataclass(frozen=True)
class Rendered:
    """The redacted copy written to a file: its digest, size, media type and what it covers."""

    sha256: str
    size: int
    media_type: str
    channels: int
    bleeped_s: float


def _tokens(text: str) -> list[tuple[int, int]]:
    """Character offsets of each whitespace-separated word of ``text``."""
    out = []
    pos = 0
    for word in text.split():
        start = text.index(word, pos)
        pos = start + len(word)
        out.append((start, pos))
    return out


def span_time(segment: TranscriptSegment, span: SegmentSpan, words: WordTimes | None) -> tuple[float, float]:
    """The seconds of ``segment`` in which the piece ``span`` of its text was said."""
    tokens = _tokens(segment.text)
    if words is not None and len(words) == len(tokens) and tokens:
        touched = [i for i, (a, b) in enumerate(tokens) if a < span.end and span.start < b]
        if touched:
            start = words[touched[0]][0] - WORD_PAD_S
            end = words[touched[-1]][1] + WORD_PAD_S
            return max(0.0, start), max(0.0, end)
    length = max(len(segment.text), 1)
    duration = max(segment.end - segment.start, 0.0)
    start = segment.start + duration * span.start / length - INTERPOLATED_PAD_S
    end = segment.start + duration * span.end / length + INTERPOLATED_PAD_S
    return max(segment.start, start), min(segment.end, end)


def bleep_ranges(
    segments: Sequence[TranscriptSegment], spans: Sequence[SegmentSpan], word_times: Sequence[WordTimes] | None
) -> list[BleepRange]:
    """The time ranges to bleep, per speaker, overlapping ones merged. ``segments`` is the
    transcript before masking (the offsets refer to its text); ``word_times`` runs parallel to
    it, or is None."""
    per_speaker: dict[Speaker, list[tuple[float, float]]] = {}
    for span in spans:
        segment = segments[span.index]
        words = word_times[span.index] if word_times is not None and span.index < len(word_times) else None
        start, end = span_time(segment, span, words)
        if end > start:
            per_speaker.setdefault(segment.speaker, []).append((start, end))
    out = []
    for speaker, ranges in per_speaker.items():
        ranges.sort()
        merged = [ranges[0]]
        for start, end in ranges[1:]:
            if start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        out += [BleepRange(speaker, round(a, 3), round(b, 3)) for a, b in merged]
    out.sort(key=lambda r: (r.start, r.end, r.speaker))
    return out


def tone(first_sample: int, count: int) -> np.ndarray:
    """``count`` samples of the bleep tone from sample ``first_sample`` on (phase-continuous)."""
    amplitude = 32767 * 10 ** (TONE_DBFS / 20)
    n = np.arange(first_sample, first_sample + count, dtype=np.float64)
    return np.round(amplitude * np.sin(2 * math.pi * TONE_HZ * n / SAMPLE_RATE)).astype(np.int16)


def bleep_pcm(pcm: np.ndarray, first_sample: int, ranges: Sequence[tuple[float, float]]) -> np.ndarray:
    """One channel's 16 kHz samples starting at ``first_sample``, with every range that falls
    in them replaced by the tone (a copy; the rest is unchanged)."""
    out = pcm.copy()
    end_sample = first_sample + len(pcm)
    for start_s, end_s in ranges:
        a = max(round(start_s * SAMPLE_RATE), first_sample)
        b = min(round(end_s * SAMPLE_RATE), end_sample)
        if b > a:
            out[a - first_sample : b - first_sample] = tone(a, b - a)
    return out


def _channel_ranges(
    stream_speakers: Sequence[Speaker], ranges: Sequence[BleepRange]
) -> list[list[tuple[float, float]]]:
    """The ranges each output channel gets: all of them on a mono signal; on a stereo one, those
    of the channel's speaker (a range whose speaker has no channel goes on both, to be safe)."""
    if len(stream_speakers) == 1:
        return [[(r.start, r.end) for r in ranges]]
    return [
        [(r.start, r.end) for r in ranges if r.speaker == speaker or r.speaker not in stream_speakers]
        for speaker in stream_speakers
    ]


def render_bleeped(
    source: str, channel_speakers: Sequence[Speaker], ranges: Sequence[BleepRange], target: Path
) -> Rendered:
    """Write the bleeped copy of ``source`` to ``target`` (MP3). ``channel_speakers`` is what the
    recogniser was asked for (``AsrRequest.channel_speakers``), so the channels and their speakers
    are the ones the transcript's times refer to. Raises ``asr.AsrError`` when the source cannot
    be decoded and ``av.FFmpegError`` when encoding fails."""
    digest = hashlib.sha256()
    with PcmStream(source, channel_speakers) as stream:
        per_channel = _channel_ranges(stream.speakers, ranges)
        channels = len(stream.speakers)
        layout = "stereo" if channels == 2 else "mono"
        with av.open(str(target), "w", format="mp3") as out:
            encoder = out.add_stream("libmp3lame", rate=SAMPLE_RATE, layout=layout)
            if not isinstance(encoder, av.audio.stream.AudioStream):
                raise TypeError("libmp3lame is not an audio encoder")
            encoder.bit_rate = BIT_RATE_PER_CHANNEL * channels
            position = 0
            for chunks in stream:
                pcm = [
                    bleep_pcm(np.frombuffer(c, dtype=np.int16), position, r)
                    for c, r in zip(chunks, per_channel, strict=True)
                ]
                samples = len(pcm[0])
                frame = av.AudioFrame.from_ndarray(
                    np.stack(pcm) if channels == 2 else pcm[0].reshape(1, -1),
                    format="s16p" if channels == 2 else "s16",
                    layout=layout,
                )
                frame.sample_rate = SAMPLE_RATE
                frame.pts = position
                out.mux(encoder.encode(frame))
                position += samples
            out.mux(encoder.encode(None))
    with target.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    bleeped = sum(r.end - r.start for r in ranges)
    return Rendered(digest.hexdigest(), target.stat().st_size, MEDIA_TYPE, channels, round(bleeped, 3))
