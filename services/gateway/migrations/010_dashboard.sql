-- The insights dashboard (services/gateway/dashboard/): embedding (allowed origins, single-use
-- tokens, sessions) and its own read model, built by its own consumer group from the pipeline's
-- events (calls.ingested/fetched/analyzed/failed.v1).

-- Where a partner may embed the dashboard (CSP frame-ancestors). Set by an operator with
-- `python -m services.gateway.admin dashboard allow-origin PARTNER_ID ORIGIN`.
CREATE TABLE dashboard_origins (
    partner_id text NOT NULL REFERENCES partners (partner_id) ON DELETE CASCADE,
    origin     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, origin)
);

-- Single-use tokens the partner's backend asks for; only their SHA-256 is stored. A token is
-- exchanged once, before redeem_by, for a session that ends at expires_at.
CREATE TABLE dashboard_tokens (
    token_sha256 bytea PRIMARY KEY,
    partner_id   text NOT NULL,
    tenant_id    text NOT NULL,
    subtenant_id text NOT NULL,
    agent_id     text,
    read_only    boolean NOT NULL DEFAULT false,
    issued_at    timestamptz NOT NULL DEFAULT now(),
    redeem_by    timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    redeemed_at  timestamptz
);
CREATE INDEX dashboard_tokens_partner_idx ON dashboard_tokens (partner_id);

-- Browser sessions (the cookie holds a random id; only its SHA-256 is stored).
CREATE TABLE dashboard_sessions (
    session_sha256 bytea PRIMARY KEY,
    partner_id     text NOT NULL,
    tenant_id      text NOT NULL,
    subtenant_id   text NOT NULL,
    agent_id       text,
    read_only      boolean NOT NULL,
    csrf_token     text NOT NULL,
    embed_origin   text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL
);
CREATE INDEX dashboard_sessions_partner_idx ON dashboard_sessions (partner_id);

-- One row per call: what the Calls table filters, searches and sorts on, and what the call
-- detail shows beyond the status read model (customer, agent name, partner fields, recording).
-- Folded monotonically like call_status: status processing -> completed | failed (the first
-- terminal state wins), fields written once. `counted` flips once, in the same transaction that
-- adds the call to the aggregates, so a call counts exactly once whatever Kafka redelivers.
CREATE TABLE dashboard_calls (
    partner_id    text NOT NULL,
    call_id       text NOT NULL,
    tenant_id     text NOT NULL,
    subtenant_id  text NOT NULL,
    agent_id      text,
    agent_name    text,
    customer_id   text,
    customer_name text,
    started_at    timestamptz,
    duration_s    real,
    status        text NOT NULL CHECK (status IN ('processing', 'completed', 'failed')),
    status_rank   smallint NOT NULL,
    intent        text,
    quality_score real,
    -- quality_score, or -1 when unscored: a NOT NULL sort key for keyset pagination.
    score_sort    real NOT NULL DEFAULT -1,
    fatal_failed  boolean,
    talk_ratio    real,
    concerns      text[],
    blob_uri      text,
    media_type    text,
    details       jsonb,
    counted       boolean NOT NULL DEFAULT false,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, call_id)
);
CREATE INDEX dashboard_calls_date_idx
    ON dashboard_calls (partner_id, tenant_id, subtenant_id, started_at DESC, call_id DESC);
CREATE INDEX dashboard_calls_agent_idx
    ON dashboard_calls (partner_id, tenant_id, subtenant_id, agent_id, started_at DESC, call_id DESC);
CREATE INDEX dashboard_calls_score_idx
    ON dashboard_calls (partner_id, tenant_id, subtenant_id, score_sort, call_id);
CREATE INDEX dashboard_calls_duration_idx
    ON dashboard_calls (partner_id, tenant_id, subtenant_id, duration_s, call_id);
-- Search: "starts with", case-insensitive, on the call id, the customer id and name.
CREATE INDEX dashboard_calls_call_search_idx
    ON dashboard_calls (partner_id, tenant_id, subtenant_id, lower(call_id) text_pattern_ops);
CREATE INDEX dashboard_calls_customer_id_search_idx
    ON dashboard_calls (partner_id, tenant_id, subtenant_id, lower(customer_id) text_pattern_ops);
CREATE INDEX dashboard_calls_customer_name_search_idx
    ON dashboard_calls (partner_id, tenant_id, subtenant_id, lower(customer_name) text_pattern_ops);

-- Agents seen per subtenant, with the latest name the partner sent (filters, Agents page).
CREATE TABLE dashboard_agents (
    partner_id   text NOT NULL,
    tenant_id    text NOT NULL,
    subtenant_id text NOT NULL,
    agent_id     text NOT NULL,
    agent_name   text,
    PRIMARY KEY (partner_id, tenant_id, subtenant_id, agent_id)
);

-- Aggregates of finished calls (completed or failed), added to once per call, at several grains,
-- so that a page reads about (days or weeks) x agents rows whatever its filters and range.
-- `grain` is a bit set saying what a row keeps:
--   1: the bucket is a week (day = the week's Monday), else a day
--   2: the intent (rubric parameters only; the call aggregates always keep status and intent)
--   4: the score band       8: the length band
-- A dimension a grain does not keep holds -1 (bands) or '*' (intent). A page reads the grain
-- keeping exactly the dimensions it filters on; a range longer than a quarter reads whole weeks
-- from the weekly grain and its ragged ends from the daily one. intent '' = none (failed calls).
-- The primary keys lead with the grain and the optional dimensions, then the day, and INCLUDE
-- the measures: a page's read is a few index-only range scans over exactly the rows it sums.
CREATE TABLE dashboard_agg (
    partner_id     text NOT NULL,
    tenant_id      text NOT NULL,
    subtenant_id   text NOT NULL,
    grain          smallint NOT NULL,
    day            date NOT NULL,
    agent_id       text NOT NULL,
    status         text NOT NULL,
    intent         text NOT NULL,
    score_band     smallint NOT NULL,
    length_band    smallint NOT NULL,
    calls          integer NOT NULL,
    scored         integer NOT NULL,
    score_sum      double precision NOT NULL,
    fatal_failed   integer NOT NULL,
    talk_n         integer NOT NULL,
    talk_sum       double precision NOT NULL,
    duration_sum   double precision NOT NULL,
    bant_needs     integer NOT NULL,
    bant_budget    integer NOT NULL,
    bant_authority integer NOT NULL,
    bant_timeline  integer NOT NULL,
    c_pricing       integer NOT NULL,
    c_functionality integer NOT NULL,
    c_integration   integer NOT NULL,
    c_timing        integer NOT NULL,
    c_competition   integer NOT NULL,
    c_trust         integer NOT NULL,
    c_authority     integer NOT NULL,
    c_other         integer NOT NULL,
    PRIMARY KEY (partner_id, tenant_id, subtenant_id, grain, score_band, length_band, day, agent_id, status, intent)
        INCLUDE (calls, scored, score_sum, fatal_failed, talk_n, talk_sum, duration_sum, bant_needs, bant_budget,
                 bant_authority, bant_timeline, c_pricing, c_functionality, c_integration, c_timing, c_competition,
                 c_trust, c_authority, c_other)
);

-- Rubric parameters of completed calls, at the same grains (here the intent is optional too).
CREATE TABLE dashboard_agg_params (
    partner_id   text NOT NULL,
    tenant_id    text NOT NULL,
    subtenant_id text NOT NULL,
    grain        smallint NOT NULL,
    day          date NOT NULL,
    agent_id     text NOT NULL,
    intent       text NOT NULL,
    score_band   smallint NOT NULL,
    length_band  smallint NOT NULL,
    parameter    text NOT NULL,
    n            integer NOT NULL,
    score_sum    double precision NOT NULL,
    max_sum      double precision NOT NULL,
    PRIMARY KEY (partner_id, tenant_id, subtenant_id, grain, intent, score_band, length_band, day, agent_id, parameter)
        INCLUDE (n, score_sum, max_sum)
);
