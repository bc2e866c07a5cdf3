"""Wiring metrics and tracing into a service's process and HTTP side: one call in each service's
app factory (``configure``), one at its lifespan's end (``process_exiting``), and the HTTP
middleware of the gateway (``HttpObservability``)."""

from __future__ import annotations

import time

from opentelemetry.trace import SpanKind
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common import metrics, tracing
from services.common.settings import ServiceSettings

_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})


def configure(service: str, settings: ServiceSettings) -> None:
    """Per process, in the app factory (so each uvicorn worker sets up its own exporter)."""
    tracing.configure_tracing(service, enabled=settings.tracing_enabled, export=settings.otlp_export)


def process_exiting() -> None:
    """At the end of the lifespan: flush queued spans, drop this process's live gauges."""
    tracing.shutdown()
    metrics.process_exited()


class HttpObservability:
    """Counts and times every HTTP request by its route *template* (``/api/v1/partner/calls/
    {call_id:path}``, never the path itself, so an attacker cannot mint series), and, with tracing
    on, records a server span. A partner's ``traceparent`` is not followed: the request's span is a
    root, and the traces of the calls it carries are started by the gateway itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope.get("method", "")
        method = method if method in _METHODS else "other"
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with tracing.span(f"HTTP {method}", kind=SpanKind.SERVER, attributes={"http.request.method": method}) as span:
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
                metrics.HTTP_DURATION.labels(method, route).observe(time.perf_counter() - started)
                if span is not None:
                    span.update_name(f"{method} {route}")
                    span.set_attributes({"http.route": route, "http.response.status_code": status})
                    if status >= 500:
                        tracing.fail(span, f"HTTP {status}")
