-- Trace context travels with each event through the outbox: `headers` holds one JSON object of
-- Kafka headers per record (the W3C traceparent and tracestate of the call's trace), aligned with
-- `keys`, or NULL when tracing is off. The relay puts them on the Kafka records it builds. A
-- record set aside keeps its headers, so a requeued one still joins its call's trace.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS headers jsonb;
ALTER TABLE outbox_dead ADD COLUMN IF NOT EXISTS headers jsonb;
