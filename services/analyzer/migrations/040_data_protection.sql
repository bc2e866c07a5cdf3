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

-- Retention of the stored analysis event: the transcript is removed from it at its expiry, the
-- row at the results' expiry (NULL: kept until erased).
ALTER TABLE analyses ADD COLUMN transcript_expires_at timestamptz;
ALTER TABLE analyses ADD COLUMN results_expires_at timestamptz;
ALTER TABLE analyses ADD COLUMN transcript_purged_at timestamptz;
CREATE INDEX analyses_transcript_due ON analyses (transcript_expires_at) WHERE transcript_purged_at IS NULL;
CREATE INDEX analyses_results_due ON analyses (results_expires_at);
