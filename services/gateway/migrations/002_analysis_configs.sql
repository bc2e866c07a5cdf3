-- Per-tenant analysis configuration (qualification labels, quality rubric, stereo channel map),
-- with subtenant overrides. Every change is a new version; nothing is overwritten, so the
-- configuration any past call was analysed with can be looked up (events carry it anyway).
-- subtenant_id '' is the tenant level. A level's document may set only some fields; the rest
-- are inherited from the tenant level, then from the defaults.
CREATE TABLE analysis_configs (
    partner_id   text NOT NULL,
    tenant_id    text NOT NULL,
    subtenant_id text NOT NULL,
    version      integer NOT NULL CHECK (version > 0),
    config       jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, tenant_id, subtenant_id, version)
);
