"""The transcription interface every engine implements (re-exported by the package)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from schemas.analysis import Speaker, TranscriptSegment

EngineName = Literal["pocketsphinx", "faster_whisper", "openai"]
#: One segment's words, each as (start, end) in recording seconds.
WordTimes = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class AsrRequest:
    """One recording to transcribe.

    ``channel_speakers`` names who speaks on each channel: ``("agent", "customer")`` for a
    stereo call-centre recording (left, right), ``("unknown",)`` for mono. How it meets the file:

    - two entries and a two-channel file: each channel is transcribed on its own and labelled;
    - one entry: the file is mixed down to mono (whatever its channel count) and labelled with it;
    - anything else (two entries for a mono file, more than two channels): mixed down to mono,
      labelled ``"unknown"``, since no channel can be attributed.

    ``duration_s`` is the duration the fetcher probed; it only sizes the timeout.
    """

    path: str
    channel_speakers: tuple[Speaker, ...] = ("unknown",)
    duration_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.channel_speakers:
            raise ValueError("channel_speakers needs at least one entry")
        if not math.isfinite(self.duration_s) or self.duration_s < 0:
            raise ValueError("duration_s must be a finite number of seconds >= 0")


@dataclass(frozen=True)
class AsrResult:
    """What was said, by whom and when, and which engine said so.

    ``segments`` are merged across channels and sorted by start time. ``speech_s`` is the
    voice-activity-detected speech in which the engine recognised words, summed over channels
    (noise the detector mistook for speech but that yields no words does not count).
    ``duration_s`` is the audio's duration as measured while decoding.

    ``word_times``, when the engine aligns words (PocketSphinx), runs parallel to ``segments``:
    the (start, end) seconds of each whitespace-separated word of the segment's text, in order.
    It stays inside the analyzer (it times the bleeps of a redacted copy of the audio) and is
    never part of the transcript partners see; None for engines that give segment times only.
    """

    segments: list[TranscriptSegment]
    speech_s: float
    duration_s: float
    engine: str
    model: str
    version: str
    word_times: list[WordTimes] | None = None


@runtime_checkable
class Transcriber(Protocol):
    """A speech recogniser. ``transcribe`` never blocks the event loop; errors are ``AsrError``."""

    name: str

    async def transcribe(self, request: AsrRequest) -> AsrResult:
        """Transcribe ``request.path``; raises ``AsrError`` (see ``asr.errors`` for the codes)."""
        ...

    async def close(self) -> None:
        """Release workers and connections. Calls in flight are abandoned."""
        ...


@dataclass(frozen=True)
class AsrSettings:
    """Which engine, and how it runs. ``create_transcriber`` validates the combination.

    The per-call timeout is ``timeout_base_s + timeout_per_audio_s * request.duration_s``.
    ``workers`` is the number of recognition processes (local engines) or of concurrent
    requests per call (``openai``).
    """

    engine: EngineName = "pocketsphinx"
    workers: int = 1
    timeout_base_s: float = 60.0
    timeout_per_audio_s: float = 1.0
    whisper_model_dir: str | None = None
    whisper_compute_type: str = "int8"
    whisper_beam_size: int = 1
    openai_base_url: str | None = None
    openai_api_key: str | None = field(default=None, repr=False)
    openai_model: str = "whisper-1"
    openai_timeout_s: float = 600

    def timeout_for(self, duration_s: float) -> float:
        """The time budget of one call of ``duration_s`` seconds of audio."""
        return self.timeout_base_s + self.timeout_per_audio_s * max(0.0, duration_s)


def merge_segments(per_channel: list[list[TranscriptSegment]]) -> list[TranscriptSegment]:
    """All channels' segments in one list, by start time (ties: end time, then speaker)."""
    merged = [s for channel in per_channel for s in channel]
    merged.sort(key=lambda s: (s.start, s.end, s.speaker))
    return merged
