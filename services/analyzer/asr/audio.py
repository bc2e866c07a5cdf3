"""Streamed decoding to 16 kHz PCM, voice-activity segmentation and pause-aligned windows.

Nothing here holds a whole recording: ``PcmStream`` decodes with PyAV packet by packet and
yields fixed-size chunks per channel (one second by default), so memory stays flat however long
the call is. ``SpeechSegmenter`` turns one channel's chunks into speech regions with
PocketSphinx's endpointer (WebRTC-style VAD with hysteresis), capping each region's length.
``ChannelWindows`` cuts one channel into windows of a few minutes at pauses, for engines that
want longer stretches of audio (Whisper-class models).

Everything here is blocking CPU work meant for a worker process or thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import av
import av.container
import pocketsphinx

from schemas.analysis import Speaker

from .errors import AsrError

# FFmpeg is chatty on stderr about damaged input; problems are reported as AsrError instead.
av.logging.set_level(av.logging.PANIC)
logging.getLogger("libav").setLevel(logging.CRITICAL)

log = logging.getLogger(__name__)

#: The rate every engine here is fed: what PocketSphinx's model and Whisper are trained on.
SAMPLE_RATE = 16_000
#: Signed 16-bit samples, native byte order (what PocketSphinx and numpy read).
SAMPLE_BYTES = 2
BYTES_PER_SECOND = SAMPLE_RATE * SAMPLE_BYTES


def plan_speakers(source_channels: int, requested: Sequence[Speaker]) -> tuple[Speaker, ...]:
    """The speaker of each channel to transcribe: two for a split stereo file, else one.

    Two requested speakers and a two-channel file: one stream per channel. One requested
    speaker: a mono mix labelled with it. Anything else (a mono file with two speakers asked
    for, more than two channels): a mono mix labelled ``"unknown"``.
    """
    if len(requested) == 1:
        return (requested[0],)
    if len(requested) == 2 and source_channels == 2:
        return (requested[0], requested[1])
    return ("unknown",)


def check_deadline(deadline: float | None) -> None:
    """Raise ``asr_timeout`` once ``time.monotonic()`` passed ``deadline``.

    ``time.monotonic`` is the system-wide CLOCK_MONOTONIC on Linux, so a deadline set in the
    event-loop process means the same instant in a worker process.
    """
    if deadline is not None and time.monotonic() > deadline:
        raise AsrError("asr_timeout", "recognition exceeded the call's time budget")


class PcmStream:
    """The first audio stream of a file as 16 kHz signed 16-bit PCM, in fixed-size chunks.

    Use as a context manager; iterate to get one ``bytes`` chunk per output channel (a tuple of
    one or two), each ``chunk_s`` seconds long except the last. Output channels and their
    speakers follow ``plan_speakers``. Memory held: one chunk and one decoded frame per channel.

    A file that cannot be opened, has no audio stream, or yields no audio because of errors
    raises ``AsrError("decode_error")``. Damaged packets in the middle are skipped, and a
    container that breaks off mid-file ends the stream there (as players do): what could be
    decoded is transcribed, and ``damaged`` says so.
    """

    def __init__(self, path: str, requested: Sequence[Speaker], *, chunk_s: float = 1.0) -> None:
        if chunk_s <= 0:
            raise ValueError("chunk_s must be positive")
        self.path = path
        self._requested = tuple(requested)
        self._chunk_bytes = max(SAMPLE_BYTES, round(chunk_s * SAMPLE_RATE) * SAMPLE_BYTES)
        self._container: av.container.InputContainer | None = None
        self.speakers: tuple[Speaker, ...] = ()
        self.source_channels = 0
        self._chunker: _Chunker | None = None
        self.damaged = False
        self.bad_packets = 0

    @property
    def samples(self) -> int:
        """Samples per channel produced so far (the measured duration once exhausted)."""
        return self._chunker.samples if self._chunker is not None else 0

    @property
    def duration_s(self) -> float:
        """Seconds of audio decoded so far."""
        return self.samples / SAMPLE_RATE

    def __enter__(self) -> PcmStream:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> None:
        """Open the file and decide the output channels (``speakers``)."""
        try:
            container = av.open(self.path, "r")
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            # The analyzer wrote this file itself: not being able to read it is an
            # infrastructure problem, not bad media.
            raise AsrError("asr_failed", f"cannot read the audio file: {exc}") from exc
        except (av.FFmpegError, UnicodeDecodeError, ValueError, OSError) as exc:
            raise AsrError("decode_error", f"not a readable media file: {exc}") from exc
        if not container.streams.audio:
            container.close()
            raise AsrError("decode_error", "the file has no audio stream")
        self._container = container
        ctx = container.streams.audio[0].codec_context
        # A few containers only learn the channel count from the first decoded frame; those
        # are mixed down to mono, which is always safe.
        self.source_channels = ctx.channels or 0
        self.speakers = plan_speakers(self.source_channels, self._requested)

    def close(self) -> None:
        """Release the file and FFmpeg's decoder state."""
        if self._container is not None:
            self._container.close()
            self._container = None

    def __iter__(self) -> Iterator[tuple[bytes, ...]]:
        if self._container is None:
            self.open()
        n_out = len(self.speakers)
        layout = "stereo" if n_out == 2 else "mono"
        # Planar output for stereo: FFmpeg splits the channels, Python only slices buffers.
        fmt = "s16p" if n_out == 2 else "s16"
        chunker = self._chunker = _Chunker(n_out, self._chunk_bytes)
        resampler: av.AudioResampler | None = None
        for frame in self._frames():
            if resampler is None:
                resampler = av.AudioResampler(format=fmt, layout=layout, rate=SAMPLE_RATE)
            try:
                converted = resampler.resample(frame)
            except ValueError:
                # The stream changed format or layout mid-way: drain the old resampler and
                # start a new one for the new input.
                yield from chunker.add(resampler.resample(None))
                resampler = av.AudioResampler(format=fmt, layout=layout, rate=SAMPLE_RATE)
                converted = resampler.resample(frame)
            yield from chunker.add(converted)
        if resampler is not None:
            yield from chunker.add(resampler.resample(None))
        yield from chunker.rest()

    def _frames(self) -> Iterator[av.AudioFrame]:
        """Decoded frames; damaged packets skipped, a broken container ends the stream."""
        container = self._container
        if container is None:
            return
        stream = container.streams.audio[0]
        decoded_any = False
        error: Exception | None = None
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets, None)
            except (av.FFmpegError, OSError) as exc:
                # The container itself breaks off (a truncated file): stop here.
                error = exc
                break
            if packet is None:
                break
            try:
                frames = packet.decode()
            except (av.FFmpegError, ValueError) as exc:
                # One damaged packet: skip it, as players do.
                error = exc
                self.bad_packets += 1
                continue
            for frame in frames:
                if isinstance(frame, av.AudioFrame):
                    decoded_any = True
                    yield frame
        if error is not None:
            if not decoded_any:
                raise AsrError("decode_error", f"no audio could be decoded: {error}")
            self.damaged = True
            log.warning("audio partly undecodable; transcribing what decoded", extra={"bad_packets": self.bad_packets})


class _Chunker:
    """Collects resampled frames per channel and hands out fixed-size chunks."""

    def __init__(self, channels: int, chunk_bytes: int) -> None:
        self._buffers = [bytearray() for _ in range(channels)]
        self._size = chunk_bytes
        self.samples = 0

    def add(self, frames: list[av.AudioFrame]) -> Iterator[tuple[bytes, ...]]:
        size = self._size
        for frame in frames:
            n = frame.samples * SAMPLE_BYTES
            # Planes may carry alignment padding past the samples: copy only the samples.
            for buffer, plane in zip(self._buffers, frame.planes, strict=False):
                buffer.extend(memoryview(plane)[:n])
            self.samples += frame.samples
            while len(self._buffers[0]) >= size:
                yield tuple(bytes(b[:size]) for b in self._buffers)
                for b in self._buffers:
                    del b[:size]

    def rest(self) -> Iterator[tuple[bytes, ...]]:
        if self._buffers[0]:
            yield tuple(bytes(b) for b in self._buffers)
            for b in self._buffers:
                b.clear()


@dataclass(frozen=True)
class VadSettings:
    """PocketSphinx endpointer parameters (see ``pocketsphinx.Endpointer``).

    ``window_s`` of audio is judged at a time; speech starts (ends) once ``ratio`` of it is
    (is not) speech. The endpointer hands back the whole window on a start, so each region
    begins with up to ``window_s`` of lead-in, which helps the recogniser with first words.
    ``vad_mode`` 0 is the loosest (keeps quiet speech), 3 the strictest.
    """

    window_s: float = 0.5
    ratio: float = 0.8
    vad_mode: int = 0


@dataclass(frozen=True)
class SpeechRegion:
    """A stretch of one channel the endpointer classed as speech, in recording seconds."""

    start_s: float
    end_s: float
    pcm: bytes = b""


class SpeechSegmenter:
    """Speech regions of one channel's PCM stream, fed in chunks of any size.

    A region longer than ``max_region_s`` is cut there (and continues as a new region), which
    bounds the PCM held (``keep_pcm``) and the length of one recogniser utterance.
    """

    def __init__(self, vad: VadSettings = VadSettings(), *, max_region_s: float = 30.0, keep_pcm: bool = True) -> None:
        self._ep: Any = pocketsphinx.Endpointer(
            window=vad.window_s, ratio=vad.ratio, vad_mode=vad.vad_mode, sample_rate=SAMPLE_RATE
        )
        self._frame_bytes: int = self._ep.frame_bytes
        self._frame_s: float = self._ep.frame_length
        self._max_bytes = max(self._frame_bytes, round(max_region_s * SAMPLE_RATE) * SAMPLE_BYTES)
        self._keep_pcm = keep_pcm
        self._carry = bytearray()
        self._pcm = bytearray()
        self._start: float | None = None
        self._frames = 0  # frames in the current region (so cut regions get exact times)

    @property
    def in_speech(self) -> bool:
        """Whether the stream currently is inside a speech region."""
        return self._start is not None

    def feed(self, pcm: bytes) -> list[SpeechRegion]:
        """Consume ``pcm``; return the regions that ended within it."""
        self._carry += pcm
        done: list[SpeechRegion] = []
        step = self._frame_bytes
        whole = len(self._carry) - len(self._carry) % step
        view = memoryview(self._carry)
        try:
            for offset in range(0, whole, step):
                self._take(self._ep.process(view[offset : offset + step]), done)
        finally:
            view.release()
        del self._carry[:whole]
        return done

    def finish(self) -> list[SpeechRegion]:
        """End of stream: flush and return the regions still open."""
        done: list[SpeechRegion] = []
        # end_stream needs at least one sample; a lone zero sample changes nothing.
        self._take(self._ep.end_stream(bytes(self._carry) or bytes(SAMPLE_BYTES)), done, final=True)
        self._carry.clear()
        if self._start is not None:
            done.append(self._close(self._start + self._frames * self._frame_s))
        return done

    def _take(self, speech: bytes | None, done: list[SpeechRegion], *, final: bool = False) -> None:
        if speech is None:
            return
        if self._start is None:
            self._start = float(self._ep.speech_start)
            self._frames = 0
        if self._keep_pcm:
            self._pcm += speech
        self._frames += max(1, round(len(speech) / self._frame_bytes))
        if not self._ep.in_speech or final:
            done.append(self._close(float(self._ep.speech_end)))
        elif self._frames * self._frame_bytes >= self._max_bytes:
            end = self._start + self._frames * self._frame_s
            done.append(self._close(end))
            # The speech goes on: the next frame opens a new region where this one stopped.
            self._start, self._frames = end, 0

    def _close(self, end_s: float) -> SpeechRegion:
        start = self._start if self._start is not None else end_s
        region = SpeechRegion(start, max(start, end_s), bytes(self._pcm))
        self._pcm.clear()
        self._start = None
        return region


@dataclass(frozen=True)
class Window:
    """A stretch of one channel's audio (all of it, not only speech), in recording seconds."""

    start_s: float
    pcm: bytes
    #: Whether the voice-activity detector heard speech in it.
    has_speech: bool

    @property
    def end_s(self) -> float:
        """Where the window ends."""
        return self.start_s + len(self.pcm) / BYTES_PER_SECOND


class ChannelWindows:
    """Cut one channel's stream into windows of about ``target_s``, at pauses.

    A window closes at the first chunk boundary after ``target_s`` where the channel is not in
    speech, or at ``max_s`` regardless. Chunks are the unit of cutting, so feed short chunks
    (``PcmStream``'s one second is fine). ``regions`` collects the channel's speech regions
    (times only), for gating an engine's output and counting speech.
    """

    def __init__(self, *, target_s: float, max_s: float, vad: VadSettings = VadSettings()) -> None:
        if not 0 < target_s <= max_s:
            raise ValueError("need 0 < target_s <= max_s")
        self._segmenter = SpeechSegmenter(vad, max_region_s=max_s, keep_pcm=False)
        self._target = round(target_s * SAMPLE_RATE) * SAMPLE_BYTES
        self._max = round(max_s * SAMPLE_RATE) * SAMPLE_BYTES
        self._pcm = bytearray()
        self._start_s = 0.0
        self.regions: list[SpeechRegion] = []

    def feed(self, pcm: bytes) -> Window | None:
        """Consume ``pcm``; return a window when one closed."""
        self._pcm += pcm
        self.regions.extend(self._segmenter.feed(pcm))
        if len(self._pcm) >= self._max or (len(self._pcm) >= self._target and not self._segmenter.in_speech):
            return self._cut()
        return None

    def finish(self) -> Window | None:
        """End of stream: the last window, if any audio is left."""
        self.regions.extend(self._segmenter.finish())
        return self._cut() if self._pcm else None

    def _cut(self) -> Window:
        start = self._start_s
        end = start + len(self._pcm) / BYTES_PER_SECOND
        has_speech = self._segmenter.in_speech or any(
            r.end_s > start and r.start_s < end for r in reversed(self.regions) if r.end_s > start
        )
        window = Window(start, bytes(self._pcm), has_speech)
        self._pcm.clear()
        self._start_s = end
        return window


def overlaps(start_s: float, end_s: float, regions: Sequence[SpeechRegion]) -> bool:
    """Whether ``[start_s, end_s]`` overlaps any of ``regions``."""
    return any(r.start_s < end_s and start_s < r.end_s for r in regions)


def speech_seconds(regions: Sequence[SpeechRegion], spans: Sequence[tuple[float, float]]) -> float:
    """Total length of the ``regions`` that overlap at least one of ``spans`` (recognised speech)."""
    return sum(r.end_s - r.start_s for r in regions if any(r.start_s < e and s < r.end_s for s, e in spans))
