"""Exports, schedules and the outbox.

app.exports: one file a user asked for (or a scheduled run produced), made by the scheduler:
  status queued → running → done | failed, with progress; a lease while running, so that another
  scheduler takes it over when the one running it dies; expires after EXPORT_EXPIRY_DAYS.
app.schedules: a report template (or saved query) with its parameters, a cron cadence in a time
  zone, recipients and/or a webhook, optionally fanned out per vendor or category value.
app.schedule_runs: one row per (schedule, slot, fan-out value): the unique key makes each slot run
  once, however many schedulers there are; skipped slots (downtime) are recorded as such.
app.outbox: every delivery (email or webhook) recorded before it is sent, with an idempotency key,
  attempts and the next attempt's time; marked sent or failed after.

Revision ID: 0011
Revises: 0010
"""
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SQL = """
CREATE TABLE app.schedules (
    schedule_id   bigserial PRIMARY KEY,
    owner         text NOT NULL REFERENCES app.users (username) ON UPDATE CASCADE,
    name          text NOT NULL CHECK (btrim(name) <> ''),
    template      text NOT NULL,
    params        jsonb NOT NULL DEFAULT '{}',      -- period, filters, query_id, query parameters
    format        text NOT NULL CHECK (format IN ('csv', 'xlsx', 'pdf', 'json')),
    cadence       jsonb NOT NULL,                   -- {kind: daily|weekly|monthly|cron, at, weekday, day, cron}
    cron          text NOT NULL,                    -- the cadence as a cron expression
    timezone      text NOT NULL,
    recipients    text[] NOT NULL DEFAULT '{}',
    webhook_url   text NOT NULL DEFAULT '',
    fan_out       text CHECK (fan_out IN ('vendor', 'category')),
    fan_values    jsonb NOT NULL DEFAULT '{}',      -- {value: [recipients]} when fanned out
    paused        boolean NOT NULL DEFAULT false,
    next_run_at   timestamptz,                      -- the next slot, kept by the scheduler
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner, name)
);
CREATE INDEX schedules_due_idx ON app.schedules (next_run_at) WHERE NOT paused;

CREATE TABLE app.exports (
    export_id     bigserial PRIMARY KEY,
    owner         text NOT NULL,
    template      text NOT NULL,
    params        jsonb NOT NULL DEFAULT '{}',
    format        text NOT NULL CHECK (format IN ('csv', 'xlsx', 'pdf', 'json')),
    title         text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    progress      real NOT NULL DEFAULT 0,
    step          text NOT NULL DEFAULT '',
    rows          bigint,
    bytes         bigint,
    file_name     text,
    path          text,
    message       text NOT NULL DEFAULT '',
    attempts      integer NOT NULL DEFAULT 0,
    worker        text,
    lease_until   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX exports_owner_idx ON app.exports (owner, created_at DESC);
CREATE INDEX exports_queue_idx ON app.exports (created_at) WHERE status IN ('queued', 'running');

CREATE TABLE app.schedule_runs (
    run_id        bigserial PRIMARY KEY,
    schedule_id   bigint NOT NULL REFERENCES app.schedules ON DELETE CASCADE,
    slot          timestamptz NOT NULL,
    fan_value     text NOT NULL DEFAULT '',
    manual        boolean NOT NULL DEFAULT false,   -- "run now"
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'running', 'done', 'failed', 'skipped')),
    attempts      integer NOT NULL DEFAULT 0,
    worker        text,
    lease_until   timestamptz,
    export_id     bigint REFERENCES app.exports ON DELETE SET NULL,
    message       text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    UNIQUE (schedule_id, slot, fan_value)
);
CREATE INDEX schedule_runs_queue_idx ON app.schedule_runs (slot) WHERE status IN ('pending', 'running');

CREATE TABLE app.outbox (
    delivery_id     bigserial PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    channel         text NOT NULL CHECK (channel IN ('email', 'webhook')),
    target          text NOT NULL,                 -- an address or a URL
    payload         jsonb NOT NULL,                -- subject, text, html, attachment, json body
    source          text NOT NULL,                 -- what asked: 'schedule_run:12', 'alert_event:3', 'test'
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    last_error      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX outbox_due_idx ON app.outbox (next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX outbox_source_idx ON app.outbox (source);
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    op.execute("DROP TABLE app.outbox; DROP TABLE app.schedule_runs; DROP TABLE app.exports; DROP TABLE app.schedules;")
