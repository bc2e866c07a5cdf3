-- Analyzer schema: the analysis published for each call. Transcription is the expensive part of
-- the pipeline, so a redelivered calls.fetched event is answered from here, not recomputed.
CREATE TABLE analyses (
    partner_id  text NOT NULL,
    call_id     text NOT NULL,
    event       jsonb NOT NULL,
    analyzed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, call_id)
);
