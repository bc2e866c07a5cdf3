"""Errors of the speech-recognition stage.

Every failure a transcriber reports is an ``AsrError`` carrying a ``code``:

``decode_error``
    The file cannot be decoded as audio (not a media file, no audio stream, nothing decodable).
    Retrying cannot help.
``asr_timeout``
    Recognition took longer than the per-call budget (``timeout_base_s + timeout_per_audio_s *
    duration``). The budget is generous (several times the engine's normal speed), so a retry
    would most likely time out again: not retryable.
``asr_failed``
    The engine broke while working on this call: a recognition worker died, an HTTP engine
    answered 5xx or could not be reached. Transient by nature: retryable.
``asr_unavailable``
    The engine is misconfigured or refuses the request (not installed, no model, bad
    credentials, a 4xx answer). Retrying the same call cannot help until someone fixes it.
"""

from __future__ import annotations

from typing import Literal

AsrErrorCode = Literal["decode_error", "asr_timeout", "asr_failed", "asr_unavailable"]

_RETRYABLE: frozenset[str] = frozenset({"asr_failed"})


class AsrError(Exception):
    """Root of every error the ASR package raises; ``code`` says which kind (see the module)."""

    def __init__(self, code: AsrErrorCode, message: str = "") -> None:
        # Both values go to ``args``: the error crosses the process-pool boundary by pickling,
        # which rebuilds it as ``AsrError(*args)``.
        super().__init__(code, message)
        self.code: AsrErrorCode = code
        self.message = message or code

    @property
    def retryable(self) -> bool:
        """Whether processing the same call again might succeed."""
        return self.code in _RETRYABLE

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
