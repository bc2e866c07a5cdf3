-- Fetcher schema: which blob each call's recording became. A redelivered calls.ingested event
-- finds its call here (and the blob in the store) and is answered without a second download.
CREATE TABLE fetches (
    partner_id  text NOT NULL,
    call_id     text NOT NULL,
    sha256      text NOT NULL,
    blob_uri    text NOT NULL,
    bytes       bigint NOT NULL,
    container   text NOT NULL,
    codec       text NOT NULL,
    duration_s  double precision NOT NULL,
    channels    integer NOT NULL,
    sample_rate integer NOT NULL,
    fetched_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, call_id)
);
