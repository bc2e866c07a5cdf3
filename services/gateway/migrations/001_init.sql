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

-- Intake ledger: (partner, call id) is unique for ever, which makes ingestion idempotent. The
-- call's content travels in its calls.ingested.v1 event (outbox, then Kafka); what the platform
-- shows about a call is built from the events, so the ledger keeps only identity and tenancy.
CREATE TABLE calls (
    partner_id   text NOT NULL,
    call_id      text NOT NULL,
    tenant_id    text NOT NULL,
    subtenant_id text NOT NULL,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (partner_id, call_id)
);

-- One row per committed transaction and topic: the events it produced, in order (a batch of 50
-- calls is one row, not 50, which is most of what makes ingestion cheap for PostgreSQL).
CREATE TABLE outbox (
    id         bigserial PRIMARY KEY,
    topic      text NOT NULL,
    keys       text[] NOT NULL,
    payloads   bytea[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (cardinality(keys) = cardinality(payloads))
);

-- Batches of similar JSON compress well; lz4 is cheaper than the default pglz where available.
DO $$
BEGIN
    ALTER TABLE outbox ALTER COLUMN payloads SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    NULL;
END $$;
