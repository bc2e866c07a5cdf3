"""Gateway errors: every expected failure is typed, carries a code from a closed set, and maps to
the spec's ``{"success": false, "message": ...}`` response in exactly one place (the app's
exception handler, ``api.error_response``)."""

from __future__ import annotations

from typing import ClassVar, Literal

ErrorCode = Literal[
    "internal_error",
    "forbidden",
    "tenant_missing",
    "subtenant_missing",
    "malformed_json",
    "unsupported_media_type",
    "payload_too_large",
    "request_timeout",
    "rate_limited",
    "validation_failed",
    "not_found",
    "erasure_not_found",
    "conflict",
    # The dashboard's (services.gateway.dashboard.errors).
    "session_missing",
    "cross_site",
    "read_only",
    "recording_not_found",
]


class GatewayError(Exception):
    """Root of the gateway's expected failures."""

    status: ClassVar[int] = 500
    code: ClassVar[ErrorCode] = "internal_error"
    message = "Internal server error"
    headers: dict[str, str] | None = None

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        if message is not None:
            self.message = message


class Forbidden(GatewayError):
    status, code, message = 403, "forbidden", "Forbidden"


class TenantMissing(GatewayError):
    """No usable ``x-tenant-id`` (absent, blank, too long, not UTF-8 text): the message says which."""

    status, code, message = 400, "tenant_missing", "Tenant ID is required"


class SubtenantMissing(GatewayError):
    """No usable ``x-sub-tenant-id``: the message says which."""

    status, code, message = 400, "subtenant_missing", "Subtenant ID is required"


class MalformedBody(GatewayError):
    status, code, message = 400, "malformed_json", "Malformed JSON body"


class UnsupportedMediaType(GatewayError):
    status, code, message = 415, "unsupported_media_type", "Content-Type must be application/json"


class PayloadTooLarge(GatewayError):
    status, code, message = 413, "payload_too_large", "Request payload exceeds the 5MB limit"

    def __init__(self, limit_bytes: int = 5 * 1024 * 1024) -> None:
        super().__init__(f"Request payload exceeds the {size_label(limit_bytes)} limit")


class RequestTimeout(GatewayError):
    """The body did not arrive in time (a client that declares more than it sends, say)."""

    status, code, message = 408, "request_timeout", "Request body not received in time"

    def __init__(self) -> None:
        super().__init__()
        # The rest of the body may still come: the connection cannot carry another request.
        self.headers = {"Connection": "close"}


class RateLimited(GatewayError):
    status, code, message = 429, "rate_limited", "Rate limit exceeded. Try again in 60 seconds."

    def __init__(self, retry_after_s: int) -> None:
        super().__init__()
        self.headers = {"Retry-After": str(retry_after_s)}


class ValidationFailed(GatewayError):
    status, code, message = 422, "validation_failed", "Validation failed"

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__()
        self.errors = errors


class CallNotFound(GatewayError):
    """Unknown call id, or another partner's, tenant's or subtenant's: indistinguishable."""

    status, code, message = 404, "not_found", "Call not found"


class ErasureNotFound(GatewayError):
    """Unknown erasure id, or one of another partner, tenant or subtenant: indistinguishable."""

    status, code, message = 404, "erasure_not_found", "Erasure not found"


class Conflict(GatewayError):
    """The request is valid but the call's current state does not allow it (message says why)."""

    status, code, message = 409, "conflict", "Conflict"


def size_label(limit_bytes: int) -> str:
    """``5MB``, ``256KB``: how the spec writes its limit ("Request payload exceeds the 5MB limit")."""
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if limit_bytes >= size and limit_bytes % size == 0:
            return f"{limit_bytes // size}{unit}"
    return f"{limit_bytes} bytes"
