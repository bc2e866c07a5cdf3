-- One row per erased call (services/common/erasure.py): checked, under the call's advisory lock,
-- before anything of the call is stored or published, so nothing brings an erased call back. No
-- personal data: ids and times only. Kept for ever (tombstones must outlive the topics' retention).
CREATE TABLE erased_calls (
    partner_id text NOT NULL,
    call_id    text NOT NULL,
    erasure_id uuid NOT NULL,
    erased_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, call_id)
);

-- Erasures, the audit record: who asked (the API key id, never a secret), when, for what scope
-- (a call id, or a customer by salted hash of the customer id and contact number: no personal
-- data), how many calls it covered, and when every service had confirmed.
CREATE TABLE erasures (
    erasure_id   uuid PRIMARY KEY,
    partner_id   text NOT NULL,
    tenant_id    text NOT NULL,
    subtenant_id text,  -- NULL: every subtenant of the tenant
    scope        text NOT NULL CHECK (scope IN ('call', 'customer')),
    selector     jsonb NOT NULL,
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    calls        integer NOT NULL,
    completed_at timestamptz
);
CREATE INDEX erasures_partner_idx ON erasures (partner_id, requested_at DESC);

CREATE TABLE erasure_calls (
    erasure_id uuid NOT NULL REFERENCES erasures (erasure_id) ON DELETE CASCADE,
    partner_id text NOT NULL,
    call_id    text NOT NULL,
    PRIMARY KEY (erasure_id, call_id)
);

-- One row per (erasure, call, service) that confirmed (calls.erasure_confirmed.v1).
CREATE TABLE erasure_confirmations (
    erasure_id   uuid NOT NULL,
    call_id      text NOT NULL,
    service      text NOT NULL,
    removed      jsonb NOT NULL DEFAULT '{}',
    confirmed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (erasure_id, call_id, service)
);

-- Erasure by customer finds the calls by salted hashes written at ingestion (the ledger keeps no
-- customer data in clear).
ALTER TABLE calls ADD COLUMN customer_key bytea;
ALTER TABLE calls ADD COLUMN contact_key bytea;
CREATE INDEX calls_customer_key_idx ON calls (partner_id, tenant_id, customer_key) WHERE customer_key IS NOT NULL;
CREATE INDEX calls_contact_key_idx ON calls (partner_id, tenant_id, contact_key) WHERE contact_key IS NOT NULL;

-- Retention, as the status API reports it: when each part expires and when it was purged here.
ALTER TABLE call_status ADD COLUMN recording_expires_at timestamptz;
ALTER TABLE call_status ADD COLUMN transcript_expires_at timestamptz;
ALTER TABLE call_status ADD COLUMN results_expires_at timestamptz;
ALTER TABLE call_status ADD COLUMN recording_purged_at timestamptz;
ALTER TABLE call_status ADD COLUMN transcript_purged_at timestamptz;
ALTER TABLE call_status ADD COLUMN results_purged_at timestamptz;
CREATE INDEX call_status_recording_due ON call_status (recording_expires_at) WHERE recording_purged_at IS NULL;
CREATE INDEX call_status_transcript_due ON call_status (transcript_expires_at) WHERE transcript_purged_at IS NULL;
CREATE INDEX call_status_results_due ON call_status (results_expires_at) WHERE results_purged_at IS NULL;
