-- Status read model: what the status and results API answers, built by the gateway's own
-- consumer from the pipeline's events (calls.*.v1, callbacks.deliveries.v1). No other service's
-- table is ever read; the ingestion ledger (calls) stays identity only, so the ingestion hot
-- path gains no index and no write.
--
-- Events from different topics arrive in any order, so every column is written monotonically:
-- status only moves to a higher rank (received 1, fetching 2, fetched 3, analyzing 4,
-- completed/failed 5, the first terminal one wins), each stage timestamp keeps the earliest
-- value seen, and the result and error are written once. A redelivered event changes nothing.
CREATE TABLE call_status (
    partner_id      text NOT NULL,
    call_id         text NOT NULL,
    tenant_id       text NOT NULL,
    subtenant_id    text NOT NULL,
    -- NULL until an event carrying the ingested call (ingested, fetched, analyzed, failed) arrives.
    agent_id        text,
    callback_url    text,
    status          text NOT NULL CHECK (status IN ('received', 'fetching', 'fetched', 'analyzing', 'completed', 'failed')),
    status_rank     smallint NOT NULL,
    -- The ledger's received_at (or the event's, for calls the ledger does not know); the list's order.
    received_at     timestamptz NOT NULL,
    fetching_at     timestamptz,
    fetched_at      timestamptz,
    analyzing_at    timestamptz,
    completed_at    timestamptz,
    failed_at       timestamptz,
    intent          text,
    quality_score   double precision,
    -- json, not jsonb: kept as written, so the result's fields stay in the callback's order.
    result          json,
    error           json,
    -- The latest callback delivery the notifier reported (by the event's occurred_at).
    delivery_id     text,
    delivery_kind   text,
    delivery_state  text,
    delivery_url    text,
    delivery_next_attempt_at timestamptz,
    delivery_error  text,  -- why the delivery failed without an attempt (attempts carry their own)
    delivery_event_at timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, call_id)
);

-- The list: newest first by received time then call id, within a tenant (and a subtenant).
CREATE INDEX call_status_tenant_idx ON call_status (partner_id, tenant_id, received_at DESC, call_id DESC);
CREATE INDEX call_status_subtenant_idx
    ON call_status (partner_id, tenant_id, subtenant_id, received_at DESC, call_id DESC);

-- Every callback attempt the notifier reported; (delivery, number) makes replays no-ops.
CREATE TABLE callback_attempts (
    partner_id  text NOT NULL,
    call_id     text NOT NULL,
    delivery_id text NOT NULL,
    number      integer NOT NULL,
    kind        text NOT NULL,
    url         text NOT NULL,
    started_at  timestamptz NOT NULL,
    status_code integer,
    latency_ms  double precision,
    error       text,
    PRIMARY KEY (partner_id, call_id, delivery_id, number)
);
