"""What a downloaded file really is: format by content, then a probe with PyAV.

The extension and the Content-Type are ignored: an HTML error page served as ``audio/mpeg`` is
refused, an MP3 served as ``application/octet-stream`` is accepted. Accepted: MP3, WAV, AAC
(ADTS), M4A, and MP4 with an audio track.

``probe_file`` is CPU and file work meant for a process pool. It returns plain data or a
``MediaProblem`` (never raises for bad media), so results cross the process boundary cheaply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import av

# FFmpeg is chatty on stderr about damaged input; the probe reports problems itself.
av.logging.set_level(av.logging.PANIC)
logging.getLogger("libav").setLevel(logging.CRITICAL)

SNIFF_BYTES = 64
_TAIL_PACKETS_DECODED = 8
_HEAD_PACKETS_DECODED = 16


@dataclass(frozen=True)
class MediaInfo:
    container: str  # mp3 | wav | aac | m4a | mp4
    codec: str
    duration_s: float
    channels: int
    sample_rate: int


@dataclass(frozen=True)
class MediaProblem:
    code: Literal["unsupported_format", "no_audio_stream", "corrupt", "empty_body"]  # corrupt: damaged or truncated
    message: str


def sniff(head: bytes) -> str | None:
    """The container family the first bytes announce, or None when it is none we accept."""
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        return "m4a" if brand in (b"M4A ", b"M4B ") else "mp4"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF:
        if head[1] & 0xF6 == 0xF0:  # 12-bit sync, layer 00: ADTS AAC
            return "aac"
        if head[1] & 0xE0 == 0xE0 and (head[1] >> 1) & 0x03 == 0x01:  # MPEG audio, layer III
            return "mp3"
    return None


def _wav_truncated(path: str) -> MediaProblem | None:
    """FFmpeg trusts the file size over the RIFF header, so a cut-off WAV looks merely short.
    Compare the ``data`` chunk's declared size with what the file holds."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(12)
        while True:
            header = f.read(8)
            if len(header) < 8:
                return None  # no data chunk: FFmpeg's own checks decide
            chunk, length = header[:4], int.from_bytes(header[4:], "little")
            if chunk == b"data":
                available = size - f.tell()
                # 0 and 0xFFFFFFFF mean "unknown length" (streamed recordings), not a promise.
                if length not in (0, 0xFFFFFFFF) and available < length:
                    return MediaProblem(
                        "corrupt", f"the file is truncated: {available} of its {length} audio bytes are present"
                    )
                return None
            f.seek(length + (length & 1), 1)


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def probe_file(path: str) -> MediaInfo | MediaProblem:
    """Verify the recording at ``path`` and describe its audio."""
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    if not head:
        return MediaProblem("empty_body", "the recording is empty")
    family = sniff(head)
    if family is None:
        return MediaProblem("unsupported_format", "not an MP3, WAV, AAC, M4A or MP4 audio file")
    if family == "wav" and (problem := _wav_truncated(path)) is not None:
        return problem
    try:
        container = av.open(path, metadata_errors="ignore")
    except av.FFmpegError:
        return MediaProblem("corrupt", f"the {family.upper()} file cannot be read")
    try:
        return _inspect(container, family)
    finally:
        container.close()


def _inspect(container: av.container.InputContainer, family: str) -> MediaInfo | MediaProblem:
    if not container.streams.audio:
        return MediaProblem("no_audio_stream", "the file has no audio track")
    audio = container.streams.audio[0]
    ctx = audio.codec_context
    declared = _seconds(container.duration, Fraction(1, av.time_base)) or _seconds(audio.duration, audio.time_base)

    # Demux every packet (cheap: no decoding) to measure the real length, and decode the first
    # and last few to catch damage that demuxing alone lets through.
    end = 0.0
    head: list[Any] = []
    tail: list[Any] = []
    try:
        for packet in container.demux(audio):
            if packet.size == 0:
                continue
            if packet.pts is not None and packet.duration is not None:
                end = max(end, float((packet.pts + packet.duration) * packet.time_base))
            if len(head) < _HEAD_PACKETS_DECODED:
                head.append(packet)
            else:
                tail.append(packet)
                if len(tail) > _TAIL_PACKETS_DECODED:
                    tail.pop(0)
    except av.FFmpegError:
        return MediaProblem("corrupt", "the audio data is damaged")
    if not head:
        return MediaProblem("corrupt", "the file holds no audio data")
    start = _seconds(audio.start_time, audio.time_base) or 0.0
    measured = max(0.0, end - start)
    if declared is not None and declared - measured > max(0.5, 0.02 * declared):
        return MediaProblem(
            "corrupt", f"the file is truncated: it ends after {measured:.1f} s of the {declared:.1f} s it declares"
        )
    try:
        decoded = 0
        for packet in (*head, *tail):
            decoded += len(ctx.decode(packet))
    except av.FFmpegError:
        return MediaProblem("corrupt", "the audio cannot be decoded")
    if decoded == 0:
        return MediaProblem("corrupt", "the audio cannot be decoded")
    return MediaInfo(
        container=family,
        codec=ctx.codec.canonical_name,
        duration_s=round(measured or declared or 0.0, 3),
        channels=ctx.channels,
        sample_rate=ctx.sample_rate,
    )
