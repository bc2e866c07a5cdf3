"""Analysis errors: one root with a machine-readable ``code``.

The analyzer turns an ``AnalysisError`` into a ``calls.failed.v1`` event (stage "analyze") with
that code; ``retryable`` says whether running the same analysis again later might succeed.
"""

from __future__ import annotations

from typing import Literal

AnalysisErrorCode = Literal["analysis_failed", "llm_unavailable", "llm_invalid_output"]


class AnalysisError(Exception):
    """The analysis of one call could not be produced.

    Codes:

    - ``analysis_failed``: the built-in engine hit an unexpected error (not retryable: it is
      deterministic, the same input fails the same way);
    - ``llm_unavailable``: the LLM endpoint could not be reached, kept failing (connection errors,
      timeouts, HTTP 5xx/429 after the retries) or refused the request (other HTTP 4xx);
    - ``llm_invalid_output``: the LLM answered, but never with a valid analysis within the
      configured attempts.
    """

    def __init__(self, code: AnalysisErrorCode, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code: AnalysisErrorCode = code
        self.message = message
        self.retryable = retryable

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
