-- Retention in the dashboard's rows: when the recording (playback) and the results (details) of a
-- call were purged here, so a replayed event cannot put them back (the fold leaves them null).
ALTER TABLE dashboard_calls ADD COLUMN recording_purged_at timestamptz;
ALTER TABLE dashboard_calls ADD COLUMN results_purged_at timestamptz;
