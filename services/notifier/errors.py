"""Notifier errors: one root, typed codes.

``DeliveryRefused`` is an expected outcome (the callback cannot or must not be attempted: the URL
is not https, not a valid URL, or points at a blocked address); it ends the delivery as failed.
Anything else escaping a handler is a crash the consumer runtime retries.
"""

from __future__ import annotations


class NotifierError(Exception):
    """Root of the notifier's errors."""

    code = "notifier_error"


class DeliveryRefused(NotifierError):
    """The callback URL is refused before any connection. Codes: https_required,
    unsupported_scheme, invalid_url, blocked_address."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
