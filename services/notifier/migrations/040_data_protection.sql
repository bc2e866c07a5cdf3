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

-- Retention of callback bodies (they hold the transcript and results): a final delivery's body is
-- cleared at the earlier of the two expiries, after which it cannot be redelivered.
ALTER TABLE deliveries ADD COLUMN body_expires_at timestamptz;
ALTER TABLE deliveries ADD COLUMN body_purged_at timestamptz;
ALTER TABLE deliveries ALTER COLUMN body DROP NOT NULL;
CREATE INDEX deliveries_body_due ON deliveries (body_expires_at) WHERE body_purged_at IS NULL;
