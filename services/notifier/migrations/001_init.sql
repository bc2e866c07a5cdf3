-- Notifier schema: callback deliveries (the durable retry schedule), every attempt, the
-- partners' signing secrets, and the transactional outbox of callbacks.deliveries.v1 events.

-- One delivery per (partner, call, kind). delivery_id is the webhook-id header: stable across
-- retries and redeliveries, so receivers can drop duplicates. The body is built once and kept,
-- so every attempt sends the same bytes.
CREATE TABLE deliveries (
    delivery_id     text PRIMARY KEY,
    partner_id      text NOT NULL,
    call_id         text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('result', 'failure')),
    tenant_id       text NOT NULL,
    subtenant_id    text NOT NULL,
    url             text NOT NULL,
    body            bytea NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'retrying', 'delivered', 'failed')),
    -- Attempts ever made (numbers keep counting across redeliveries) and in the current round.
    attempts        integer NOT NULL DEFAULT 0,
    round_attempts  integer NOT NULL DEFAULT 0,
    -- When a dispatcher should next look at it; NULL once delivered or failed. A claim moves it
    -- to the end of the claim's lease, so a crashed dispatcher's deliveries become due again.
    next_attempt_at timestamptz,
    lease_token     uuid,
    last_error      text,
    -- When the event that caused the delivery happened (for latency figures).
    source_at       timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partner_id, call_id, kind)
);

CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE next_attempt_at IS NOT NULL;

CREATE TABLE delivery_attempts (
    delivery_id text NOT NULL REFERENCES deliveries (delivery_id) ON DELETE CASCADE,
    number      integer NOT NULL,
    started_at  timestamptz NOT NULL,
    status_code integer,
    latency_ms  double precision,
    error_code  text,
    error       text,
    PRIMARY KEY (delivery_id, number)
);

-- Signing secrets ("whsec_" + base64 key). They sign, so they are kept as they are (not hashed).
-- The current secret has expires_at NULL; a rotated-out one stays valid until its expires_at.
CREATE TABLE signing_secrets (
    id         bigserial PRIMARY KEY,
    partner_id text NOT NULL,
    secret     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz
);

CREATE UNIQUE INDEX signing_secrets_current ON signing_secrets (partner_id) WHERE expires_at IS NULL;

-- Redeliver commands already applied (Kafka delivers at least once).
CREATE TABLE applied_commands (
    event_id   uuid PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE outbox (
    id         bigserial PRIMARY KEY,
    topic      text NOT NULL,
    keys       text[] NOT NULL,
    payloads   bytea[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (cardinality(keys) = cardinality(payloads))
);
