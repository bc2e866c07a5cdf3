-- Trace context through the notifier's outbox (as in the gateway's migration 020: one JSON
-- object of Kafka headers per record, or NULL), and with each delivery, so that every attempt,
-- however much later it is retried, joins the trace of the call (or of the redelivery request).
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS headers jsonb;
ALTER TABLE outbox_dead ADD COLUMN IF NOT EXISTS headers jsonb;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS trace_context jsonb;
-- When the gateway accepted the call, for the ingest-to-callback latency: set when the delivery
-- is recorded, cleared once its first round ends (a redelivery is not measured from ingestion).
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS received_at timestamptz;
