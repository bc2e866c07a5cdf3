"""Fetcher errors. ``FetchFailed`` is an expected outcome (it becomes a ``calls.failed.v1``
event); anything else escaping a handler is a crash the consumer runtime retries."""

from __future__ import annotations


class FetcherError(Exception):
    """Root of the fetcher's errors."""

    code = "fetcher_error"


class FetchFailed(FetcherError):
    """The recording cannot be fetched or is not acceptable.

    Codes: http_status, timeout, connection_error, too_large, empty_body, blocked_address,
    invalid_url, too_many_redirects, unsupported_format, no_audio_stream, corrupt.
    """

    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
