-- Engage's PostgreSQL schema. Applied idempotently at every start.
-- Times are bigint microseconds since the Unix epoch (UTC), as in the core.

CREATE TABLE IF NOT EXISTS engage_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- One row per (stream, partition): the next offset to assign. Appenders lock
-- the rows they write to, so offsets in a partition commit in order and a
-- consumer polling "offset >= n" can never skip a late-committing row.
CREATE TABLE IF NOT EXISTS log_partitions (
    stream    text    NOT NULL,
    partition integer NOT NULL,
    head      bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (stream, partition)
);

CREATE TABLE IF NOT EXISTS touchpoints (
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    event_id    text        NOT NULL,
    customer_id text        NOT NULL,
    type        text        NOT NULL,
    occurred_at bigint      NOT NULL,
    appended_at timestamptz NOT NULL DEFAULT now(),
    payload     bytea       NOT NULL,
    PRIMARY KEY (partition, "offset")
);
CREATE UNIQUE INDEX IF NOT EXISTS touchpoints_event_id ON touchpoints (event_id);
CREATE INDEX IF NOT EXISTS touchpoints_customer ON touchpoints (customer_id, occurred_at);

CREATE TABLE IF NOT EXISTS trigger_log (
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    trigger_id  text        NOT NULL,
    customer_id text        NOT NULL,
    rule_id     text        NOT NULL,
    fired_at    bigint      NOT NULL,
    appended_at timestamptz NOT NULL DEFAULT now(),
    payload     bytea       NOT NULL,
    PRIMARY KEY (partition, "offset")
);
CREATE UNIQUE INDEX IF NOT EXISTS trigger_log_trigger_id ON trigger_log (trigger_id);

-- Committed read positions: the next offset to read, Kafka-style.
CREATE TABLE IF NOT EXISTS consumer_offsets (
    consumer  text    NOT NULL,
    stream    text    NOT NULL,
    partition integer NOT NULL,
    "offset"  bigint  NOT NULL,
    PRIMARY KEY (consumer, stream, partition)
);

-- The last process to write each partition's profiles (a random token per
-- pipeline). A writer that finds its own token still there knows nobody else
-- wrote those profiles since, so the copies it keeps in memory are current.
CREATE TABLE IF NOT EXISTS partition_writers (
    consumer  text    NOT NULL,
    stream    text    NOT NULL,
    partition integer NOT NULL,
    writer    text    NOT NULL,
    PRIMARY KEY (consumer, stream, partition)
);

-- The processor's clock: the latest occurred_at it has folded.
CREATE TABLE IF NOT EXISTS processor_clock (
    consumer text   PRIMARY KEY,
    clock    bigint NOT NULL
);

-- state is json, not jsonb: it is only ever read whole by the engine, and
-- json skips jsonb's parse and TOAST work on every upsert (measured ~9% faster
-- processing and faster lookups).
CREATE TABLE IF NOT EXISTS profiles (
    customer_id text        PRIMARY KEY,
    state       json        NOT NULL,
    last_seen   bigint,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- KPI facts, kept current by the processor as deltas in each batch's
-- transaction (projections/kpis.py says what each one means). day is days
-- since 1970-01-01 (UTC); money is in integer 1/10,000 units so sums are exact.
CREATE TABLE IF NOT EXISTS kpi_flows (
    day                  integer NOT NULL,
    channel              text    NOT NULL,
    stage                text    NOT NULL,
    events               bigint  NOT NULL DEFAULT 0,
    new_customers        bigint  NOT NULL DEFAULT 0,
    purchases            bigint  NOT NULL DEFAULT 0,
    revenue_units        bigint  NOT NULL DEFAULT 0,
    refunds              bigint  NOT NULL DEFAULT 0,
    refund_units         bigint  NOT NULL DEFAULT 0,
    emails_sent          bigint  NOT NULL DEFAULT 0,
    emails_opened        bigint  NOT NULL DEFAULT 0,
    emails_clicked       bigint  NOT NULL DEFAULT 0,
    nps_responses        bigint  NOT NULL DEFAULT 0,
    nps_promoters        bigint  NOT NULL DEFAULT 0,
    nps_detractors       bigint  NOT NULL DEFAULT 0,
    csat_responses       bigint  NOT NULL DEFAULT 0,
    csat_sum             bigint  NOT NULL DEFAULT 0,
    support_cases_opened bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (day, channel, stage)
);

-- Distinct active customers per (grain, period, stage): day, week, month, all.
CREATE TABLE IF NOT EXISTS kpi_active (
    grain     text    NOT NULL,
    period    integer NOT NULL,
    stage     text    NOT NULL,
    customers bigint  NOT NULL,
    PRIMARY KEY (grain, period, stage)
);

-- Customers per lifecycle stage as +1/-1 changes per day: the count at the
-- end of a day is the sum of the changes up to it.
CREATE TABLE IF NOT EXISTS kpi_stage_changes (
    day    integer NOT NULL,
    stage  text    NOT NULL,
    change bigint  NOT NULL,
    PRIMARY KEY (day, stage)
);

CREATE TABLE IF NOT EXISTS kpi_triggers (
    day      integer NOT NULL,
    rule_id  text    NOT NULL,
    triggers bigint  NOT NULL,
    PRIMARY KEY (day, rule_id)
);

CREATE TABLE IF NOT EXISTS dead_letters (
    id          bigserial   PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    stage       text        NOT NULL,
    source      text,
    line_no     integer,
    event_id    text,
    field       text        NOT NULL,
    reason      text        NOT NULL,
    raw         text        NOT NULL
);

-- Kafka mode: Kafka cannot refuse an event_id already on the topic, so the
-- processor records every event_id it applies here, in the batch transaction,
-- and drops a repeat. relayed_at marks dead letters copied to the dlq topic.
CREATE TABLE IF NOT EXISTS seen_events (
    event_id text PRIMARY KEY
);
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS relayed_at timestamptz;
CREATE INDEX IF NOT EXISTS dead_letters_unrelayed ON dead_letters (id) WHERE relayed_at IS NULL;
-- raw keeps the first DLQ_RAW_KEEP characters; these identify the whole input
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS raw_bytes bigint;
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS raw_sha256 text;

-- Kafka mode, `engage worker --ingest-topic`: how far each partition of an
-- upstream's JSON topic has been validated into the touchpoints log. Moved in
-- the same transaction as that batch's dead letters (consumers/ingest_topic.py).
CREATE TABLE IF NOT EXISTS ingest_offsets (
    topic     text    NOT NULL,
    partition integer NOT NULL,
    "offset"  bigint  NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- The transactional outbox: triggers written in the same transaction as the
-- profiles and offsets that produced them; the relay moves them to the
-- triggers stream. trigger_id is deterministic, so a redelivery is a no-op.
CREATE TABLE IF NOT EXISTS trigger_outbox (
    trigger_id   text        PRIMARY KEY,
    customer_id  text        NOT NULL,
    rule_id      text        NOT NULL,
    fired_at     bigint      NOT NULL,
    payload      bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX IF NOT EXISTS trigger_outbox_pending ON trigger_outbox (created_at)
    WHERE published_at IS NULL;
-- treatment (delivered) or control (held out: recorded, marked published so
-- the relay never moves it, never on the triggers stream); rules/arms.py
ALTER TABLE trigger_outbox ADD COLUMN IF NOT EXISTS arm text NOT NULL DEFAULT 'treatment';

-- Conversions: triggers whose goal an event reached (rules/goals.py), written
-- in the batch transaction; a projection of the log, rebuilt by replay.
CREATE TABLE IF NOT EXISTS trigger_conversions (
    trigger_id   text    PRIMARY KEY,
    rule_id      text    NOT NULL,
    arm          text    NOT NULL,
    customer_id  text    NOT NULL,
    event_id     text    NOT NULL,
    converted_at bigint  NOT NULL,
    fired_at     bigint  NOT NULL,
    value        double precision
);
CREATE INDEX IF NOT EXISTS trigger_conversions_rule ON trigger_conversions (rule_id, fired_at);

-- Delivery feedback: a webhook delivered (source 'webhook:<id>') or a channel
-- reported delivered/opened/clicked/bounced/failed (POST /v1/triggers/{id}/outcome).
-- One row per trigger and status, so a repeated report is a no-op.
CREATE TABLE IF NOT EXISTS trigger_feedback (
    trigger_id  text        NOT NULL,
    status      text        NOT NULL,
    rule_id     text        NOT NULL,
    arm         text        NOT NULL,
    source      text        NOT NULL,
    at          bigint      NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (trigger_id, status)
);

-- Armed timers (inactivity, win-back): one row per customer and rule, rewritten
-- whenever the customer's profile changes, fired when the clock passes due_at.
CREATE TABLE IF NOT EXISTS timers (
    customer_id text    NOT NULL,
    rule_id     text    NOT NULL,
    due_at      bigint  NOT NULL,
    partition   integer NOT NULL,
    PRIMARY KEY (customer_id, rule_id)
);
CREATE INDEX IF NOT EXISTS timers_due ON timers (partition, due_at);
CREATE INDEX IF NOT EXISTS trigger_log_customer ON trigger_log (customer_id, fired_at);

-- HTTP API keys, stored as SHA-256 hashes of high-entropy random keys (a slow
-- password hash buys nothing for 256-bit secrets). scope is 'ingest' (write
-- events only) or 'read' (read only).
CREATE TABLE IF NOT EXISTS api_keys (
    id          bigserial   PRIMARY KEY,
    name        text        NOT NULL,
    scope       text        NOT NULL CHECK (scope IN ('ingest', 'read')),
    key_hash    text        NOT NULL UNIQUE,
    prefix      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Webhook subscriptions: each has its own cursor over the triggers stream, its
-- own queue with per-trigger retry state, and a delivery log.
CREATE TABLE IF NOT EXISTS webhook_subscriptions (
    id          bigserial   PRIMARY KEY,
    url         text        NOT NULL,
    kind        text,
    rule_id     text,
    secret      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    removed_at  timestamptz
);
-- added with --allow-private: private and loopback targets allowed
ALTER TABLE webhook_subscriptions ADD COLUMN IF NOT EXISTS allow_private boolean NOT NULL DEFAULT false;

CREATE TABLE IF NOT EXISTS webhook_cursors (
    subscription_id bigint  NOT NULL REFERENCES webhook_subscriptions (id),
    partition       integer NOT NULL,
    "offset"        bigint  NOT NULL,
    PRIMARY KEY (subscription_id, partition)
);

-- state: pending (to send at next_attempt_at), delivered, or dead (gave up
-- after the maximum attempts; `engage webhooks retry` re-queues it).
CREATE TABLE IF NOT EXISTS webhook_queue (
    subscription_id bigint      NOT NULL REFERENCES webhook_subscriptions (id),
    trigger_id      text        NOT NULL,
    fired_at        bigint      NOT NULL,
    body            text        NOT NULL,
    state           text        NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription_id, trigger_id)
);
CREATE INDEX IF NOT EXISTS webhook_queue_due ON webhook_queue (subscription_id, next_attempt_at)
    WHERE state = 'pending';

CREATE TABLE IF NOT EXISTS webhook_attempts (
    id              bigserial   PRIMARY KEY,
    subscription_id bigint      NOT NULL,
    trigger_id      text        NOT NULL,
    attempt         integer     NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    status_code     integer,
    error           text,
    duration_ms     double precision NOT NULL,
    outcome         text        NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_attempts_sub ON webhook_attempts (subscription_id, id);
CREATE INDEX IF NOT EXISTS trigger_outbox_rule_time ON trigger_outbox (rule_id, fired_at);

-- Each partition's processor clock (the latest occurred_at or clock record read
-- from it), committed with the offset it belongs to: timers fire by the clock
-- of their customer's partition, so a replay reaches the same clocks.
ALTER TABLE consumer_offsets ADD COLUMN IF NOT EXISTS clock bigint;

-- The relay takes pending triggers in (fired_at, trigger_id) order: this index
-- hands them over in that order without sorting every pending row per run.
CREATE INDEX IF NOT EXISTS trigger_outbox_pending_order ON trigger_outbox (fired_at, trigger_id)
    WHERE published_at IS NULL;

-- Fitted churn and lifetime-value models (`engage model fit`), one row per fit;
-- the highest version is the current one. params is projections.predictions.
-- ModelParams as JSON (alpha in days); fit holds the log-likelihoods and the
-- customer counts. Not a projection: a replay keeps it.
CREATE TABLE IF NOT EXISTS model_fits (
    version   bigserial   PRIMARY KEY,
    fitted_at timestamptz NOT NULL DEFAULT now(),
    as_of     bigint      NOT NULL,
    params    json        NOT NULL,
    fit       json        NOT NULL
);

-- The fitted churn and lifetime-value model each partition has adopted (a
-- model_fitted record read from it, events/control.py), committed with the
-- offset and clock it belongs to, so a restart and a replay continue with the
-- parameters in effect at that position. projections.predictions.Model as JSON.
ALTER TABLE consumer_offsets ADD COLUMN IF NOT EXISTS model json;

-- Privacy (events/keyring.py): one data key per person, wrapped by the master
-- key. Erasing a person deletes their row: every sealed field of theirs, on
-- the log or a topic, is unreadable from then on (crypto-shredding).
CREATE TABLE IF NOT EXISTS privacy_keys (
    key_id     bigserial   PRIMARY KEY,
    person     text        NOT NULL UNIQUE,
    wrapped    bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Erased persons whose new events are refused, until `engage privacy unsuppress`.
CREATE TABLE IF NOT EXISTS privacy_suppressed (
    person text        PRIMARY KEY,
    since  timestamptz NOT NULL DEFAULT now()
);
-- One row per erasure: completed_at is null while it is unfinished (a rerun
-- or the next engage command completes it); receipt lists every store checked.
CREATE TABLE IF NOT EXISTS privacy_erasures (
    erasure_id   text        PRIMARY KEY,
    person       text        NOT NULL,
    reason       text        NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    receipt      json        NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS privacy_erasures_open ON privacy_erasures (person)
    WHERE completed_at IS NULL;
-- The person a dead letter names (its customer_id or anonymous_id), so an
-- erasure finds it; its raw text is sealed with that person's key.
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS person text;
CREATE INDEX IF NOT EXISTS dead_letters_person ON dead_letters (person) WHERE person IS NOT NULL;
-- The admin scope (privacy: erasure and access over HTTP).
ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_scope_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scope_check
    CHECK (scope IN ('ingest', 'read', 'admin'));

-- Identity (docs/identity.md): the persons the publish step resolves events
-- to, one JSON row each (projections.identity_json), and an index from every
-- identifier to its person. Written at publish, in the transaction that
-- appends the events keyed by their person, so routing and the identity
-- records on the log never disagree. Not a projection of the processor:
-- replay reads the identity records the log already holds.
CREATE TABLE IF NOT EXISTS identity_persons (
    person_key text PRIMARY KEY,
    person_id  text NOT NULL,
    state      json NOT NULL
);
CREATE INDEX IF NOT EXISTS identity_persons_person_id ON identity_persons (person_id);
CREATE TABLE IF NOT EXISTS identity_identifiers (
    kind       text NOT NULL,
    value      text NOT NULL,
    person_key text NOT NULL,
    PRIMARY KEY (kind, value)
);
-- No index by person: every write and delete of the index is by identifier
-- (a changed person's old identifiers are known), and a person's identifiers
-- are read from its row; one index fewer to keep on the busiest write.
DROP INDEX IF EXISTS identity_identifiers_person;
-- Bumped by every write to the two tables above, in the same transaction: a
-- publisher keeps the persons it has read or written in memory while the
-- number is the one it last saw (projections.adapters.postgres_identity).
CREATE TABLE IF NOT EXISTS identity_generation (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    n        bigint  NOT NULL
);
INSERT INTO identity_generation (only_row, n) VALUES (true, 0) ON CONFLICT DO NOTHING;
