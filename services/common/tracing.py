"""OpenTelemetry tracing: one trace per call, from the gateway through Kafka to its callback.

**How a call's trace is built.** The gateway starts a trace for each call it accepts (a root span
``call.ingest``, linked to the HTTP request's span: a batch of 50 calls is 50 traces, not one).
Its W3C trace context (``traceparent``, ``tracestate``) is stored with the call's event in the
outbox (the ``headers`` column), put in the Kafka record's headers by the relay, extracted by the
consumer runtime of the next stage, whose ``process`` span is its child, and injected again into
every event that stage publishes. The notifier keeps it with the delivery (``trace_context``), so
every callback attempt, however much later it is retried, joins the call's trace.

**Why our own propagation rather than instrumentation packages.** We use the OpenTelemetry API and
SDK (W3C format via the API's ``TraceContextTextMapPropagator``, OTLP/HTTP export via the SDK)
and write the few lines that carry the context across our own transports:

- the outbox relay builds Kafka record batches itself (``batch.append``), which the aiokafka
  instrumentation does not see (it wraps ``send`` and ``getone``/``getmany``); the context also has
  to cross the outbox *table* and the notifier's delivery schedule, which no package knows;
- the consumer runtime processes each record in its own task, long after ``getmany`` returned, so
  a span begun by an instrumented ``getmany`` would not be the parent of the handler's work;
- ``opentelemetry-instrumentation-aiokafka`` 0.66b1 (its latest release) pins
  ``opentelemetry-semantic-conventions==0.66b1`` while the SDK 1.45.2 we pin needs ``0.66b2``:
  the two cannot be installed together;
- HTTP client instrumentation would inject our trace ids into requests to partners' recording
  hosts and callback receivers, third parties that should not see them.

**Off by default.** Without ``TRACING_ENABLED`` and without an OTLP endpoint nothing is set up: the
helpers below return at once (no span, no header). ``TRACING_ENABLED=true`` alone puts trace and
span ids on events and log lines without exporting; ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``..._TRACES_ENDPOINT``) exports spans with the SDK's batch processor, in a background thread. The
standard ``OTEL_*`` variables (sampler, headers, resource attributes) apply.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

#: What ``start_span`` returns (for callers' annotations).
Span = trace.Span
#: Kafka record headers: (name, value) pairs.
Headers = list[tuple[str, bytes]]
#: A trace context as text (``{"traceparent": ..., "tracestate": ...}``), as stored in PostgreSQL.
Carrier = dict[str, str]

_PROPAGATOR = TraceContextTextMapPropagator()


class _CallIds(RandomIdGenerator):
    """Random ids, except that ``call_trace`` can hand the SDK the trace id it already sampled
    on, so the SDK's own decision (the same sampler, the same id) agrees with it."""

    def __init__(self) -> None:
        self.chosen: int | None = None

    def generate_trace_id(self) -> int:
        chosen, self.chosen = self.chosen, None
        return chosen if chosen is not None else super().generate_trace_id()


_IDS = _CallIds()
_FIELDS = frozenset(_PROPAGATOR.fields)
_tracer = trace.get_tracer("callpipe")


class _State:
    """This process's tracing: off until ``configure_tracing`` installs the SDK."""

    enabled = False
    provider: TracerProvider | None = None


_state = _State()

#: The call a task works on (``partner/call`` key's call part), for log lines.
CALL_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("callpipe_call_id", default=None)


def enabled() -> bool:
    return _state.enabled


def configure_tracing(service: str, *, enabled: bool, export: bool) -> None:
    """Install the SDK for this process (call once per process: in each uvicorn worker's app
    factory, so the exporter's thread belongs to the process that records)."""
    if not (enabled or export) or _state.enabled:
        return
    # Resource.create merges OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME over these defaults.
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: f"callpipe-{service}"}), id_generator=_IDS)
    if export:
        # Reads OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, _HEADERS, _TIMEOUT, _CERTIFICATE itself.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _state.provider = provider
    _state.enabled = True
    log.info("tracing on", extra={"export": export})


def shutdown() -> None:
    """Flush the spans still queued (at the process's clean exit)."""
    if _state.provider is not None:
        with contextlib.suppress(Exception):
            _state.provider.shutdown()


# -- carrying the context ----------------------------------------------------------------------


def current_carrier() -> Carrier | None:
    """The current span's context as text, or None (tracing off, or no span)."""
    if not _state.enabled:
        return None
    carrier: Carrier = {}
    _PROPAGATOR.inject(carrier)
    return carrier or None


def carrier_headers(carrier: Mapping[str, str] | None) -> Headers | None:
    """A stored context as Kafka record headers."""
    if not carrier:
        return None
    return [(k, v.encode()) for k, v in carrier.items() if k in _FIELDS]


def current_headers() -> Headers | None:
    """The current span's context as Kafka record headers (None when tracing is off)."""
    return carrier_headers(current_carrier())


def headers_carrier(headers: Sequence[tuple[str, bytes]] | None) -> Carrier:
    """The trace context in Kafka record headers (other headers ignored)."""
    if not headers:
        return {}
    return {k: v.decode("latin-1") for k, v in headers if k in _FIELDS and v is not None}


def _context(carrier: Mapping[str, str] | None) -> otel_context.Context | None:
    return _PROPAGATOR.extract(dict(carrier)) if carrier else None


# -- spans -------------------------------------------------------------------------------------


@contextlib.contextmanager
def span(
    name: str,
    *,
    parent: Mapping[str, str] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
    links: Sequence[Link] = (),
) -> Iterator[Span | None]:
    """A span, current within the block: a child of ``parent`` (a stored context) when given,
    else of the current span. Yields None when tracing is off. An exception marks it failed."""
    if not _state.enabled:
        yield None
        return
    with _tracer.start_as_current_span(
        name,
        context=_context(parent),
        kind=kind,
        attributes=dict(attributes or {}),
        links=list(links),
        record_exception=True,
        set_status_on_exception=True,
    ) as current:
        yield current


def start_span(
    name: str,
    *,
    parent: Mapping[str, str] | None = None,
    root: bool = False,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
    link_current: bool = False,
) -> Span | None:
    """A span the caller ends (``end``): for work whose span outlives a block (a call's ingest
    span across the database commit, an outbox record until Kafka acknowledges it). ``root``
    starts a new trace; ``link_current`` links it to the current span (the batch's request)."""
    if not _state.enabled:
        return None
    links = []
    if link_current:
        current = trace.get_current_span().get_span_context()
        if current.is_valid:
            links.append(Link(current))
    ctx = otel_context.Context() if root else _context(parent)
    return _tracer.start_span(name, context=ctx, kind=kind, attributes=dict(attributes or {}), links=links)


def call_trace(name: str, attributes: Mapping[str, Any]) -> tuple[Span | None, Carrier | None]:
    """A new trace for one call: its root span (None when not sampled) and its context as text.

    The sampler's decision is taken here, per call, before anything is built: a call it leaves
    out gets only a context (fresh ids, the sampled flag off), written without creating a span,
    so the later stages follow the decision and log lines still carry a trace id, while the
    gateway spends microseconds instead of a span per call. A sampled call gets its root span,
    linked to the current one (the request's)."""
    if not _state.enabled or _state.provider is None:
        return None, None
    trace_id = _IDS.generate_trace_id()
    decision = _state.provider.sampler.should_sample(None, trace_id, name)
    if decision.decision not in (Decision.RECORD_AND_SAMPLE, Decision.RECORD_ONLY):
        return None, {"traceparent": f"00-{trace_id:032x}-{_IDS.generate_span_id():016x}-00"}
    _IDS.chosen = trace_id  # taken by the SDK for the span started now (one thread, no await between)
    started = start_span(name, root=True, attributes=attributes, link_current=True)
    return started, span_carrier(started)


def span_carrier(started: Span | None) -> Carrier | None:
    """The context of a span started with ``start_span``, as text."""
    if started is None:
        return None
    carrier: Carrier = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(started))
    return carrier or None


def end(started: Span | None, *, error: str | None = None, attributes: Mapping[str, Any] | None = None) -> None:
    if started is None:
        return
    if attributes:
        started.set_attributes(dict(attributes))
    if error is not None:
        started.set_status(Status(StatusCode.ERROR, error))
    started.end()


def set_attributes(current: Span | None, attributes: Mapping[str, Any]) -> None:
    if current is not None:
        current.set_attributes(dict(attributes))


def fail(current: Span | None, reason: str) -> None:
    """Mark a span failed with a reason from a closed set (an error code, never partner data)."""
    if current is not None:
        current.set_status(Status(StatusCode.ERROR, reason))


def log_fields() -> dict[str, str]:
    """``trace_id``, ``span_id`` and ``call_id`` of the work in hand, for log lines."""
    fields: dict[str, str] = {}
    call_id = CALL_ID.get()
    if call_id is not None:
        fields["call_id"] = call_id
    if _state.enabled:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            fields["trace_id"] = format(context.trace_id, "032x")
            fields["span_id"] = format(context.span_id, "016x")
    return fields


def call_of_key(key: bytes | str | None) -> str | None:
    """The call id of a ``partner/call`` message key."""
    if not key:
        return None
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    _, _, call_id = text.partition("/")
    return call_id or None
