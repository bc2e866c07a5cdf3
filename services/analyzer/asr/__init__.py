"""Speech recognition for the analyzer: one interface, three engines.

``create_transcriber(AsrSettings(...))`` returns a ``Transcriber``:

- ``pocketsphinx`` (default): embedded, offline, US English, in a process pool
  (``sphinx_engine``);
- ``faster_whisper``: a local CTranslate2 Whisper model directory, optional extra ``whisper``
  (``whisper_engine``);
- ``openai``: any OpenAI-compatible ``/audio/transcriptions`` endpoint (``openai_engine``).

Every engine decodes with ``audio.PcmStream`` (streamed, 16 kHz), transcribes a stereo file per
channel with the speakers of ``AsrRequest.channel_speakers`` and merges by time; errors are
``AsrError`` with a ``code`` (``errors``).
"""

from __future__ import annotations

import importlib.util

from .base import AsrRequest, AsrResult, AsrSettings, EngineName, Transcriber
from .errors import AsrError, AsrErrorCode

__all__ = [
    "AsrError",
    "AsrErrorCode",
    "AsrRequest",
    "AsrResult",
    "AsrSettings",
    "EngineName",
    "Transcriber",
    "create_transcriber",
]


def _check_common(settings: AsrSettings) -> None:
    if settings.workers < 1:
        raise AsrError("asr_unavailable", "workers must be at least 1")
    if not settings.timeout_base_s > 0 or settings.timeout_per_audio_s < 0:
        raise AsrError("asr_unavailable", "timeout_base_s must be positive and timeout_per_audio_s not negative")


def create_transcriber(settings: AsrSettings) -> Transcriber:
    """The engine ``settings.engine`` names, validated; ``AsrError("asr_unavailable")`` if unusable.

    Cheap and non-blocking: engines start their worker processes (and load models) on the
    first call. Engines are imported here, so an unused engine's dependencies never load.
    """
    _check_common(settings)
    if settings.engine == "pocketsphinx":
        if importlib.util.find_spec("pocketsphinx") is None:
            raise AsrError("asr_unavailable", "pocketsphinx is not installed")
        from .sphinx_engine import PocketSphinxTranscriber  # noqa: PLC0415

        return PocketSphinxTranscriber(settings)
    if settings.engine == "faster_whisper":
        from .whisper_engine import WhisperTranscriber, check_available  # noqa: PLC0415

        return WhisperTranscriber(settings, check_available(settings))
    if settings.engine == "openai":
        from .openai_engine import OpenAiTranscriber  # noqa: PLC0415

        return OpenAiTranscriber(settings)
    raise AsrError("asr_unavailable", f"unknown ASR engine {settings.engine!r}")
