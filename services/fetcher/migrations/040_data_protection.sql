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

-- Retention: when the recording expires (from the call's analysis configuration snapshot; NULL:
-- kept until erased) and when the purge removed it. The row stays (without its blob), so a
-- redelivered ingested event is recognised instead of downloading the recording again.
ALTER TABLE fetches ADD COLUMN recording_expires_at timestamptz;
ALTER TABLE fetches ADD COLUMN recording_purged_at timestamptz;
CREATE INDEX fetches_recording_due ON fetches (recording_expires_at) WHERE recording_purged_at IS NULL;
CREATE INDEX fetches_sha256 ON fetches (sha256);
