-- The bleeped copy of a call's recording (issue 15): the analyzer stores it, so the analyzer
-- deletes it, on erasure and at the recording's retention expiry. Blobs are content addressed:
-- a copy is deleted only when no other live row holds the same digest (in practice each copy is
-- unique to its call; an original in the fetcher's store never equals a bleeped copy).
ALTER TABLE analyses ADD COLUMN redacted_sha256 text;
ALTER TABLE analyses ADD COLUMN recording_expires_at timestamptz;
CREATE INDEX analyses_redacted_due ON analyses (recording_expires_at) WHERE redacted_sha256 IS NOT NULL;
CREATE INDEX analyses_redacted_sha256 ON analyses (redacted_sha256) WHERE redacted_sha256 IS NOT NULL;
