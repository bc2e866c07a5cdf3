-- The recording a call's row names is the analyzer's bleeped copy (redaction with redact_audio):
-- once set, no other recording (the original, from the fetched event) replaces it.
ALTER TABLE dashboard_calls ADD COLUMN audio_redacted boolean NOT NULL DEFAULT false;
