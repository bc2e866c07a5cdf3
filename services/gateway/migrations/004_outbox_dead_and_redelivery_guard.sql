-- Records the outbox relay set aside because Kafka will never accept them (too large for the
-- topic, say): kept with the reason, listed and requeued by `admin outbox list|requeue`, shown
-- on /readyz. The relay publishes what replaces them (the call's failure) and moves on.
CREATE TABLE outbox_dead (
    id           bigserial PRIMARY KEY,
    topic        text NOT NULL,
    key          text NOT NULL,
    payload      bytea NOT NULL,
    error        text NOT NULL,
    queued_at    timestamptz NOT NULL,
    set_aside_at timestamptz NOT NULL DEFAULT now()
);

-- The redelivery guard: a request sets these in the same transaction as its command (only when
-- the delivery is final and no request is outstanding); the notifier's first event after acting
-- on the command names it and clears them. Until then further requests answer 409. A command the
-- notifier never answers (lost to a dead-letter topic) stops blocking after the guard's timeout.
ALTER TABLE call_status ADD COLUMN redelivery_command_id uuid;
ALTER TABLE call_status ADD COLUMN redelivery_requested_at timestamptz;
