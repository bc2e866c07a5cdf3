"""Any OpenAI-compatible ``/audio/transcriptions`` endpoint (OpenAI, self-hosted Whisper servers).

Per call, in a worker thread, the recording is decoded with the same streamed decoder as the
other engines and written as 16 kHz mono FLAC: one file per channel for stereo, and one per
window of at most ten minutes, cut at pauses, so no upload exceeds a few MB (OpenAI refuses
files over 25 MB) and no long call needs its PCM in memory. Windows in which the voice-activity
detector heard no speech are not sent at all (silence costs nothing and cannot be
hallucinated into text).

Each piece is one ``POST {base_url}/audio/transcriptions`` (multipart: ``file``, ``model``,
``response_format=verbose_json``, ``timestamp_granularities[]=segment``, ``language=en``;
``Authorization: Bearer`` when a key is set). ``segments[].start/end/text`` are used, shifted
by the piece's offset; a server that returns only ``text`` yields one segment spanning the
piece's speech. Segments over no detected speech are dropped; ``confidence`` is
``exp(avg_logprob)`` when the server reports it.

Errors: connection failures, 5xx, 408 and 429 -> ``asr_failed`` (retryable); other 4xx ->
``asr_unavailable`` (bad key, model or request: fix the configuration); the request timeout
(``openai_timeout_s``) or the call's budget -> ``asr_timeout``; an answer that is not the
expected JSON -> ``asr_failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import av

from schemas.analysis import Speaker, TranscriptSegment

from .audio import SAMPLE_RATE, ChannelWindows, PcmStream, SpeechRegion, check_deadline, overlaps, speech_seconds
from .base import AsrRequest, AsrResult, AsrSettings, merge_segments
from .errors import AsrError

ENGINE = "openai"

# Ten-minute pieces (about 5-10 MB of speech as 16 kHz FLAC), cut at a pause after eight.
PIECE_TARGET_S = 480.0
PIECE_MAX_S = 600.0
_ERROR_BODY_CHARS = 300


def check_settings(settings: AsrSettings) -> str:
    """The normalised base URL, or ``asr_unavailable`` saying what is wrong."""
    url = (settings.openai_base_url or "").rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AsrError(
            "asr_unavailable", "openai needs openai_base_url, an http(s) URL such as https://api.openai.com/v1"
        )
    if not settings.openai_model:
        raise AsrError("asr_unavailable", "openai needs openai_model")
    if not settings.openai_timeout_s > 0:
        raise AsrError("asr_unavailable", "openai_timeout_s must be positive")
    return url


@dataclass(frozen=True)
class Piece:
    """One FLAC file to upload: a window of one channel."""

    channel: int
    speaker: Speaker
    offset_s: float
    duration_s: float
    path: str


@dataclass(frozen=True)
class Split:
    """A recording cut into uploadable pieces, with each channel's detected speech."""

    pieces: list[Piece]
    speakers: tuple[Speaker, ...]
    regions: list[list[SpeechRegion]]
    duration_s: float


def _write_flac(path: Path, pcm: bytes) -> None:
    with av.open(str(path), "w", format="flac") as out:
        stream = out.add_stream("flac", rate=SAMPLE_RATE, layout="mono")
        frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
        frame.planes[0].update(pcm)
        frame.sample_rate = SAMPLE_RATE
        frame.pts = 0
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def split_for_upload(
    path: str, channel_speakers: Sequence[Speaker], out_dir: str, *, deadline: float | None = None
) -> Split:
    """Cut ``path`` into mono FLAC pieces in ``out_dir`` (blocking: run it in a thread)."""
    pieces: list[Piece] = []
    with PcmStream(path, channel_speakers) as stream:
        cutters = [ChannelWindows(target_s=PIECE_TARGET_S, max_s=PIECE_MAX_S) for _ in stream.speakers]

        def keep(index: int, start_s: float, pcm: bytes, has_speech: bool) -> None:
            if not has_speech:
                return
            file = Path(out_dir) / f"ch{index}-{len(pieces):04d}.flac"
            _write_flac(file, pcm)
            duration = len(pcm) / (2 * SAMPLE_RATE)
            pieces.append(Piece(index, stream.speakers[index], start_s, duration, str(file)))

        for chunks in stream:
            check_deadline(deadline)
            for i, pcm in enumerate(chunks):
                window = cutters[i].feed(pcm)
                if window is not None:
                    keep(i, window.start_s, window.pcm, window.has_speech)
        for i, cutter in enumerate(cutters):
            window = cutter.finish()
            if window is not None:
                keep(i, window.start_s, window.pcm, window.has_speech)
        return Split(pieces, stream.speakers, [c.regions for c in cutters], round(stream.duration_s, 3))


def parse_response(body: Any, piece: Piece, regions: Sequence[SpeechRegion]) -> list[TranscriptSegment]:
    """Segments of a ``verbose_json`` (or plain ``{"text"}``) answer, in recording time."""
    if not isinstance(body, dict):
        raise AsrError("asr_failed", "the transcription endpoint answered something other than a JSON object")
    raw = body.get("segments")
    out: list[TranscriptSegment] = []
    if isinstance(raw, list) and raw:
        for item in raw:
            if not isinstance(item, dict):
                raise AsrError("asr_failed", "malformed segment in the transcription answer")
            try:
                start = piece.offset_s + max(0.0, float(item["start"]))
                end = max(start, piece.offset_s + float(item["end"]))
                text = str(item.get("text") or "").strip()
            except (KeyError, TypeError, ValueError) as exc:
                raise AsrError("asr_failed", f"malformed segment in the transcription answer: {exc}") from exc
            if not text:
                continue
            confidence = None
            logprob = item.get("avg_logprob")
            if isinstance(logprob, int | float) and math.isfinite(logprob):
                confidence = round(min(1.0, max(0.0, math.exp(logprob))), 3)
            out.append(
                TranscriptSegment(
                    speaker=piece.speaker, start=round(start, 2), end=round(end, 2), text=text, confidence=confidence
                )
            )
        return out
    whole = body.get("text")
    if not isinstance(whole, str):
        raise AsrError("asr_failed", "the transcription answer has neither segments nor text")
    if not whole.strip():
        return []
    # Only the whole text: it spans the speech this piece holds.
    piece_end = piece.offset_s + piece.duration_s
    inside = [r for r in regions if r.start_s < piece_end and piece.offset_s < r.end_s]
    start = max(piece.offset_s, inside[0].start_s) if inside else piece.offset_s
    end = min(piece_end, inside[-1].end_s) if inside else piece_end
    return [TranscriptSegment(speaker=piece.speaker, start=round(start, 2), end=round(end, 2), text=whole.strip())]


class OpenAiTranscriber:
    """Transcription through an OpenAI-compatible HTTP endpoint."""

    name = ENGINE

    def __init__(self, settings: AsrSettings, *, session: aiohttp.ClientSession | None = None) -> None:
        self._settings = settings
        self._url = check_settings(settings) + "/audio/transcriptions"
        self._session = session
        self._own_session = session is None
        # ``workers`` bounds the uploads in flight per call (both channels of a stereo call at
        # once by default would need 2).
        self._parallel = max(1, settings.workers)
        self.model = settings.openai_model
        self.version = urlsplit(self._url).netloc

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._settings.openai_timeout_s),
                raise_for_status=False,
            )
            self._own_session = True
        return self._session

    async def transcribe(self, request: AsrRequest) -> AsrResult:
        """Split, upload and merge, within the call's time budget."""
        timeout = self._settings.timeout_for(request.duration_s)
        try:
            async with asyncio.timeout(timeout):
                return await self._transcribe(request, time.monotonic() + timeout)
        except TimeoutError:
            raise AsrError("asr_timeout", f"transcription did not finish within {timeout:.0f} s") from None

    async def _transcribe(self, request: AsrRequest, deadline: float) -> AsrResult:
        tmp = await asyncio.to_thread(tempfile.mkdtemp, prefix="callpipe-asr-")
        try:
            split = await asyncio.to_thread(
                split_for_upload, request.path, tuple(request.channel_speakers), tmp, deadline=deadline
            )
            limit = asyncio.Semaphore(self._parallel)

            async def one(piece: Piece) -> list[TranscriptSegment]:
                async with limit:
                    body = await self._post(piece)
                return parse_response(body, piece, split.regions[piece.channel])

            results = await asyncio.gather(*(one(p) for p in split.pieces))
        finally:
            await asyncio.to_thread(shutil.rmtree, tmp, True)
        per_channel: list[list[TranscriptSegment]] = [[] for _ in split.speakers]
        for piece, segments in zip(split.pieces, results, strict=True):
            per_channel[piece.channel].extend(segments)
        speech_s = 0.0
        for i, regions in enumerate(split.regions):
            # Text over silence is a known failure of Whisper-class models: keep what overlaps speech.
            per_channel[i] = [s for s in per_channel[i] if overlaps(s.start, s.end, regions)]
            speech_s += speech_seconds(regions, [(s.start, s.end) for s in per_channel[i]])
        return AsrResult(
            segments=merge_segments(per_channel),
            speech_s=round(speech_s, 2),
            duration_s=split.duration_s,
            engine=ENGINE,
            model=self.model,
            version=self.version,
        )

    async def _post(self, piece: Piece) -> Any:
        headers = {"Accept": "application/json"}
        if self._settings.openai_api_key:
            headers["Authorization"] = f"Bearer {self._settings.openai_api_key}"
        data = await asyncio.to_thread(Path(piece.path).read_bytes)
        form = aiohttp.FormData()
        form.add_field("file", data, filename=Path(piece.path).name, content_type="audio/flac")
        form.add_field("model", self._settings.openai_model)
        form.add_field("response_format", "verbose_json")
        form.add_field("timestamp_granularities[]", "segment")
        form.add_field("language", "en")
        try:
            async with self._client().post(self._url, data=form, headers=headers) as response:
                if response.status >= 500 or response.status in (408, 429):
                    detail = (await response.text())[:_ERROR_BODY_CHARS]
                    raise AsrError("asr_failed", f"transcription endpoint answered {response.status}: {detail}")
                if response.status >= 400:
                    detail = (await response.text())[:_ERROR_BODY_CHARS]
                    raise AsrError("asr_unavailable", f"transcription endpoint refused ({response.status}): {detail}")
                try:
                    return await response.json(content_type=None)
                except ValueError as exc:
                    raise AsrError("asr_failed", "the transcription endpoint answered invalid JSON") from exc
        except TimeoutError as exc:
            raise AsrError("asr_timeout", "the transcription request timed out") from exc
        except aiohttp.ClientError as exc:
            raise AsrError("asr_failed", f"transcription endpoint unreachable: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        """Close the HTTP session (if this transcriber created it)."""
        if self._session is not None and self._own_session:
            with contextlib.suppress(Exception):
                await self._session.close()
        self._session = None
