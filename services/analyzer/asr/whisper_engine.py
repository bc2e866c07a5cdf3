"""faster-whisper (CTranslate2 Whisper) with a local model directory: the optional extra ``whisper``.

``faster_whisper`` (and numpy, its dependency) are imported lazily, inside the worker
processes, so the package works without the extra installed; ``check_available`` tells whether
it is usable. Each worker process loads ``WhisperModel(model_dir, device="cpu",
compute_type=...)`` once.

A file is decoded with the same streamed decoder as the default engine, channel by channel for
stereo, and cut into windows of about four minutes at pauses (``ChannelWindows``): Whisper
needs the window's samples in memory, a window does not need the whole call. Each window is
transcribed with ``language="en"``, the configured beam size and faster-whisper's own VAD
filter (which skips silence inside the window); segment times are shifted by the window's
start. Segments that overlap no speech our VAD heard are dropped (Whisper sometimes writes
text over silence), and ``confidence`` is ``exp(avg_logprob)``, the mean token probability.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.analysis import Speaker, TranscriptSegment

from .audio import ChannelWindows, PcmStream, SpeechRegion, check_deadline, overlaps, speech_seconds
from .base import AsrRequest, AsrResult, AsrSettings, merge_segments
from .errors import AsrError
from .pool import WorkerPool
from .sphinx_engine import Recognition

ENGINE = "faster_whisper"

#: CTranslate2's compute types (``ctranslate2.get_supported_compute_types`` narrows by device).
COMPUTE_TYPES = frozenset(
    {
        "default",
        "auto",
        "int8",
        "int8_float32",
        "int8_float16",
        "int8_bfloat16",
        "int16",
        "float16",
        "bfloat16",
        "float32",
    }
)

# Windows of about four minutes (at most five): 5 min of 16 kHz float32 is 19 MB per worker.
WINDOW_TARGET_S = 240.0
WINDOW_MAX_S = 300.0


@dataclass(frozen=True)
class WhisperConfig:
    """What a worker needs to load and run the model."""

    model_dir: str
    compute_type: str = "int8"
    beam_size: int = 1


def check_available(settings: AsrSettings) -> WhisperConfig:
    """The worker configuration, or ``asr_unavailable`` saying what is missing."""
    if importlib.util.find_spec("faster_whisper") is None:
        raise AsrError(
            "asr_unavailable", "faster-whisper is not installed (install the optional extra: callpipe[whisper])"
        )
    if not settings.whisper_model_dir:
        raise AsrError("asr_unavailable", "faster_whisper needs whisper_model_dir (a CTranslate2 model directory)")
    model_dir = Path(settings.whisper_model_dir)
    # A name that is not a directory would make faster-whisper download a model by that name.
    if not (model_dir / "model.bin").is_file():
        raise AsrError("asr_unavailable", f"{model_dir} is not a CTranslate2 model directory (no model.bin)")
    if settings.whisper_compute_type not in COMPUTE_TYPES:
        raise AsrError("asr_unavailable", f"unknown whisper_compute_type {settings.whisper_compute_type!r}")
    if settings.whisper_beam_size < 1:
        raise AsrError("asr_unavailable", "whisper_beam_size must be at least 1")
    return WhisperConfig(str(model_dir), settings.whisper_compute_type, settings.whisper_beam_size)


# -- worker process side ----------------------------------------------------------------------


class _WorkerState:
    """What one worker process loaded (module-level: the pool's initializer fills it)."""

    model: Any = None
    config: WhisperConfig | None = None
    error: str | None = None


_worker = _WorkerState()


def _init_worker(config: WhisperConfig) -> None:
    # Never raise: a failing initializer breaks the pool for good; the job reports it instead.
    try:
        from faster_whisper import WhisperModel  # noqa: PLC0415 - optional extra, loaded in workers only

        _worker.model = WhisperModel(
            config.model_dir, device="cpu", compute_type=config.compute_type, local_files_only=True
        )
        _worker.config = config
    except Exception as exc:
        _worker.error = f"{type(exc).__name__}: {exc}"


def _transcribe_window(
    model: Any, config: WhisperConfig, pcm: bytes, *, offset_s: float, speaker: Speaker, deadline: float
) -> list[TranscriptSegment]:
    import numpy as np  # noqa: PLC0415 - a faster-whisper dependency, present whenever it is

    audio = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
    segments, _info = model.transcribe(audio, language="en", beam_size=config.beam_size, vad_filter=True)
    out: list[TranscriptSegment] = []
    # ``segments`` is a generator: recognition happens while iterating.
    for seg in segments:
        check_deadline(deadline)
        text = seg.text.strip()
        if not text:
            continue
        start = offset_s + float(seg.start)
        end = max(start, offset_s + float(seg.end))
        confidence = min(1.0, max(0.0, math.exp(float(seg.avg_logprob))))
        out.append(
            TranscriptSegment(
                speaker=speaker, start=round(start, 2), end=round(end, 2), text=text, confidence=round(confidence, 3)
            )
        )
    return out


def transcribe_file(
    model: Any, config: WhisperConfig, path: str, channel_speakers: Sequence[Speaker], *, deadline: float
) -> Recognition:
    """Recognise ``path`` with a loaded ``WhisperModel`` (blocking). Raises ``AsrError``."""
    with PcmStream(path, channel_speakers) as stream:
        cutters = [ChannelWindows(target_s=WINDOW_TARGET_S, max_s=WINDOW_MAX_S) for _ in stream.speakers]
        found: list[list[TranscriptSegment]] = [[] for _ in stream.speakers]

        def run(index: int, window_pcm: bytes, start_s: float, has_speech: bool) -> None:
            if has_speech:
                found[index].extend(
                    _transcribe_window(
                        model, config, window_pcm, offset_s=start_s, speaker=stream.speakers[index], deadline=deadline
                    )
                )

        for chunks in stream:
            check_deadline(deadline)
            for i, pcm in enumerate(chunks):
                window = cutters[i].feed(pcm)
                if window is not None:
                    run(i, window.pcm, window.start_s, window.has_speech)
        for i, cutter in enumerate(cutters):
            window = cutter.finish()
            if window is not None:
                run(i, window.pcm, window.start_s, window.has_speech)

        speech_s = 0.0
        for i, cutter in enumerate(cutters):
            regions: list[SpeechRegion] = cutter.regions
            found[i] = [s for s in found[i] if overlaps(s.start, s.end, regions)]
            speech_s += speech_seconds(regions, [(s.start, s.end) for s in found[i]])
        return Recognition(merge_segments(found), round(speech_s, 2), round(stream.duration_s, 3))


def _job(path: str, channel_speakers: tuple[Speaker, ...], *, deadline: float) -> Recognition:
    if _worker.model is None or _worker.config is None:
        reason = _worker.error or "not initialised"
        raise AsrError("asr_unavailable", f"faster-whisper could not load the model: {reason}")
    check_deadline(deadline)
    return transcribe_file(_worker.model, _worker.config, path, channel_speakers, deadline=deadline)


# -- event-loop side --------------------------------------------------------------------------


class WhisperTranscriber:
    """faster-whisper in a pool of ``settings.workers`` processes, one model each."""

    name = ENGINE

    def __init__(self, settings: AsrSettings, config: WhisperConfig) -> None:
        self._settings = settings
        self._config = config
        self.pool = WorkerPool(workers=settings.workers, initializer=_init_worker, initargs=(config,))
        self.model = Path(config.model_dir).name
        try:
            self.version = importlib.metadata.version("faster-whisper")
        except importlib.metadata.PackageNotFoundError:
            self.version = "unknown"
        self.version += f"/{config.compute_type}/beam{config.beam_size}"

    async def transcribe(self, request: AsrRequest) -> AsrResult:
        """Transcribe in a worker process within the call's time budget."""
        timeout = self._settings.timeout_for(request.duration_s)
        out = await self.pool.run(_job, request.path, tuple(request.channel_speakers), timeout_s=timeout)
        return AsrResult(out.segments, out.speech_s, out.duration_s, ENGINE, self.model, self.version)

    async def close(self) -> None:
        """Stop the worker processes."""
        await self.pool.close()
