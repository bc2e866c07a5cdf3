"""Fetcher errors. ``FetchFailed`` is an expected outcome (it becomes a ``calls.failed.v1``
event); anything else escaping a handler is a crash the consumer runtime retries."""

from __future__ import annotations

from schemas.events import FetchFailureCode, PipelineFailureCode


class FetcherError(Exception):
    """Root of the fetcher's errors."""

    code = "fetcher_error"


class FetchFailed(FetcherError):
    """The recording cannot be fetched or is not acceptable.

    Codes: ``schemas.events.FetchFailureCode`` (and ``internal_error`` when the runtime gives up).
    """

    def __init__(self, code: FetchFailureCode | PipelineFailureCode, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.code: FetchFailureCode | PipelineFailureCode = code
        self.message = message
        self.retryable = retryable


class BlobVanished(FetcherError):
    """The blob just stored was deleted (another call's erasure or purge of the same content)
    before the fetch was recorded: the message is retried, so the recording is stored again."""

    code = "blob_vanished"
