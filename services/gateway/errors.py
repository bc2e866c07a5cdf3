"""Gateway errors: every expected failure is typed, carries a code, and maps to the spec's
``{"success": false, "message": ...}`` response in exactly one place (``api.error_response``)."""

from __future__ import annotations


class GatewayError(Exception):
    """Root of the gateway's expected failures."""

    status = 500
    code = "internal_error"
    message = "Internal server error"
    headers: dict[str, str] | None = None

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        if message is not None:
            self.message = message


class Forbidden(GatewayError):
    status, code, message = 403, "forbidden", "Forbidden"


class TenantMissing(GatewayError):
    status, code, message = 400, "tenant_missing", "Tenant ID is required"


class SubtenantMissing(GatewayError):
    status, code, message = 400, "subtenant_missing", "Subtenant ID is required"


class MalformedBody(GatewayError):
    status, code, message = 400, "malformed_json", "Malformed JSON body"


class UnsupportedMediaType(GatewayError):
    status, code, message = 415, "unsupported_media_type", "Content-Type must be application/json"


class PayloadTooLarge(GatewayError):
    status, code, message = 413, "payload_too_large", "Request payload exceeds the 5MB limit"


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


class Conflict(GatewayError):
    """The request is valid but the call's current state does not allow it (message says why)."""

    status, code, message = 409, "conflict", "Conflict"
