-- Gateway schema: partners and their credentials, the shared rate-limit state, the intake
-- ledger of accepted calls, and the transactional outbox the relay drains to Kafka.

CREATE TABLE partners (
    partner_id            text PRIMARY KEY,
    name                  text NOT NULL,
    -- NULL: the gateway's default (GATEWAY_DEFAULT_RATE_LIMIT_PER_MINUTE).
    rate_limit_per_minute integer CHECK (rate_limit_per_minute > 0),
    created_at            timestamptz NOT NULL DEFAULT now()
);

-- The secret is stored only as its SHA-256: secrets are 256-bit random strings, so a fast hash
-- is preimage-safe and lets every request be checked without a slow KDF.
CREATE TABLE api_credentials (
    api_key       text PRIMARY KEY,
    partner_id    text NOT NULL REFERENCES partners (partner_id) ON DELETE CASCADE,
    secret_sha256 bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_credentials_partner_idx ON api_credentials (partner_id);

-- GCRA state per partner ("theoretical arrival time"), shared by every gateway replica.
-- interval_s is the emission interval the state was computed with, so a changed limit rescales
-- the backlog instead of inheriting the old rate. UNLOGGED: a database crash only resets limits.
CREATE UNLOGGED TABLE rate_limits (
    partner_id text PRIMARY KEY,
    tat        timestamptz NOT NULL,
    interval_s double precision NOT NULL,
    allowed    boolean NOT NULL
);

-- Intake ledger: (partner, call id) is unique for ever, which makes ingestion idempotent.
CREATE TABLE calls (
    partner_id   text NOT NULL,
    call_id      text NOT NULL,
    tenant_id    text NOT NULL,
    subtenant_id text NOT NULL,
    event_id     uuid NOT NULL,
    received_at  timestamptz NOT NULL,
    event        jsonb NOT NULL,
    PRIMARY KEY (partner_id, call_id)
);

CREATE TABLE outbox (
    id         bigserial PRIMARY KEY,
    topic      text NOT NULL,
    key        text NOT NULL,
    payload    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
