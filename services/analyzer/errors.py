"""Analyzer errors. ``AnalyzeFailed`` is an expected outcome (a ``calls.failed.v1`` event with
stage ``analyze``); anything else escaping a handler is a crash the consumer runtime retries."""

from __future__ import annotations

from schemas.events import AnalyzeFailureCode, PipelineFailureCode


class AnalyzerError(Exception):
    """Root of the analyzer's errors."""

    code = "analyzer_error"


class AnalyzeFailed(AnalyzerError):
    """The call cannot be analysed. Codes: blob_missing, decode_error, asr_timeout, asr_failed,
    asr_unavailable, analysis_failed, llm_unavailable, llm_invalid_output."""

    def __init__(self, code: AnalyzeFailureCode | PipelineFailureCode, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.code: AnalyzeFailureCode | PipelineFailureCode = code
        self.message = message
        self.retryable = retryable
