"""Python client for the callpipe partner API.

- ``Client`` / ``AsyncClient``: every endpoint, typed, with retries and back-off;
- ``submit_calls``: any number of calls, batched, throttled, resumable with a journal;
- ``Webhook``: verify a callback's Standard Webhooks signature and read it as a ``Callback``;
- the ``callpipe`` command line tool (``callpipe --help``).
"""

from callpipe_client._retry import RetryPolicy
from callpipe_client._version import __version__
from callpipe_client.bulk import CallResult, SubmitAborted, SubmitReport
from callpipe_client.client import AsyncClient, Client, RetryEvent
from callpipe_client.config import ClientConfig
from callpipe_client.errors import (
    ApiError,
    BadRequest,
    CallpipeError,
    ConfigurationError,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    ServerError,
    TransportError,
    UnsupportedMediaType,
    ValidationFailed,
    WebhookVerificationError,
)
from callpipe_client.journal import Journal, JournalError
from callpipe_client.models import (
    Agent,
    AnalysisConfig,
    AnalysisResult,
    Call,
    Callback,
    CallError,
    CallItem,
    CallOutcome,
    CallPage,
    CallStatus,
    CallSummary,
    ConfigView,
    Customer,
    CustomField,
    DashboardSessionsRevoked,
    DashboardToken,
    Erasure,
    ErasureAccepted,
    FieldError,
    Redelivery,
    RubricParameter,
)
from callpipe_client.validation import validate_item
from callpipe_client.webhooks import VerifiedWebhook, Webhook, verify_webhook

__all__ = [
    "Agent",
    "AnalysisConfig",
    "AnalysisResult",
    "ApiError",
    "AsyncClient",
    "BadRequest",
    "Call",
    "CallError",
    "CallItem",
    "CallOutcome",
    "CallPage",
    "CallResult",
    "CallStatus",
    "CallSummary",
    "Callback",
    "CallpipeError",
    "Client",
    "ClientConfig",
    "ConfigView",
    "ConfigurationError",
    "Conflict",
    "CustomField",
    "Customer",
    "DashboardSessionsRevoked",
    "DashboardToken",
    "Erasure",
    "ErasureAccepted",
    "FieldError",
    "Forbidden",
    "Journal",
    "JournalError",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "Redelivery",
    "RequestTimeout",
    "RetryEvent",
    "RetryPolicy",
    "RubricParameter",
    "ServerError",
    "SubmitAborted",
    "SubmitReport",
    "TransportError",
    "UnsupportedMediaType",
    "ValidationFailed",
    "VerifiedWebhook",
    "Webhook",
    "WebhookVerificationError",
    "__version__",
    "validate_item",
    "verify_webhook",
]
