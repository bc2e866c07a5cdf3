-- Records the outbox relay set aside because Kafka will never accept them (see the gateway's
-- migration 004): listed and requeued by `python -m services.notifier.admin outbox`.
CREATE TABLE outbox_dead (
    id           bigserial PRIMARY KEY,
    topic        text NOT NULL,
    key          text NOT NULL,
    payload      bytea NOT NULL,
    error        text NOT NULL,
    queued_at    timestamptz NOT NULL,
    set_aside_at timestamptz NOT NULL DEFAULT now()
);
