"""Typed errors: one root (``CallpipeError``); every refusal of the API is an ``ApiError``
subclass carrying the response's ``message`` and, for 422, its ``errors`` (``[{field, message}]``),
exactly as the API sent them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from callpipe_client._retry import parse_retry_after
from callpipe_client.models import FieldError


class CallpipeError(Exception):
    """Root of every error this package raises. ``code`` is one of a closed set (below)."""

    code = "error"


class ConfigurationError(CallpipeError):
    """Missing or unusable settings (no API key, no tenant, a bad base URL)."""

    code = "configuration"


class TransportError(CallpipeError):
    """The API could not be reached, or did not answer in time, after every retry."""

    code = "transport"

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        #: True when the request may have reached the server (the connection broke or timed out
        #: after it was written), so it may have taken effect.
        self.sent = sent


class ApiError(CallpipeError):
    """The API answered with an error status (4xx or 5xx) in the spec's shape
    ``{"success": false, "message": ..., "errors"?: [...]}``."""

    code = "api_error"

    def __init__(
        self,
        status_code: int,
        message: str,
        errors: list[FieldError] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        #: The response's ``message``, verbatim.
        self.message = message
        #: The response's ``errors`` (422), verbatim; empty otherwise.
        self.errors: list[FieldError] = list(errors or [])
        self.headers = dict(headers or {})
        self.body = body


class BadRequest(ApiError):
    """400: missing tenant or subtenant header, or a malformed JSON body."""

    code = "bad_request"


class Forbidden(ApiError):
    """403: unknown API key or wrong secret."""

    code = "forbidden"


class NotFound(ApiError):
    """404: no such call for this partner, tenant and subtenant."""

    code = "not_found"


class Conflict(ApiError):
    """409: the call's state does not allow it (e.g. a redelivery while still delivering)."""

    code = "conflict"


class RequestTimeout(ApiError):
    """408: the request body did not arrive in time (nothing was recorded; it is retried)."""

    code = "request_timeout"


class PayloadTooLarge(ApiError):
    """413: the request body is over the size limit (5 MB)."""

    code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    """415: the body was not sent as application/json."""

    code = "unsupported_media_type"


class ValidationFailed(ApiError):
    """422: ``errors`` lists every invalid field as ``{field, message}``."""

    code = "validation_failed"


class RateLimited(ApiError):
    """429: the partner's rate limit; ``retry_after_s`` from the Retry-After header."""

    code = "rate_limited"

    @property
    def retry_after_s(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after"))


class ServerError(ApiError):
    """5xx: the service failed or is unavailable."""

    code = "server_error"


class Abandoned(CallpipeError):
    """A request given up before a try was sent (its ``abandon`` event was set while it waited)."""

    code = "abandoned"


class WebhookVerificationError(CallpipeError):
    """A callback whose signature, id or timestamp does not verify: do not trust its body."""

    code = "webhook_invalid"


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    403: Forbidden,
    404: NotFound,
    408: RequestTimeout,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: ValidationFailed,
    429: RateLimited,
}


def api_error(status_code: int, body: Any, headers: Mapping[str, str] | None = None) -> ApiError:
    """The typed error for an error response; ``body`` is the decoded JSON (or raw text)."""
    message = f"HTTP {status_code}"
    errors: list[FieldError] = []
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            message = body["message"]
        raw_errors = body.get("errors")
        if isinstance(raw_errors, list):
            errors = [
                FieldError(field=str(e.get("field", "")), message=str(e.get("message", "")))
                for e in raw_errors
                if isinstance(e, dict)
            ]
    cls = _BY_STATUS.get(status_code, ServerError if status_code >= 500 else ApiError)
    return cls(status_code, message, errors, headers=headers, body=body)
