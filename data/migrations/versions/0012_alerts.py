"""Alert rules, their instances and events.

app.alert_rules: a glossary metric (with filters, a window and a condition) or a saved query that
  returns one number (or one row per value: label, number), evaluated every `interval_minutes` by
  the scheduler; channels are email recipients and/or a webhook.
app.alert_instances: the state of a rule, or of one fan-out value of it (fan_value '' for a rule
  without fan-out, '*' for the evaluation as a whole when it fails). An instance that has only
  ever been OK has no row.
app.alert_events: every transition (and every repeat notification while firing) with the values
  seen; a notification's idempotency key is its event, so a retry never makes a second one.

Revision ID: 0012
Revises: 0011
"""
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SQL = """
CREATE TABLE app.alert_rules (
    rule_id          bigserial PRIMARY KEY,
    owner            text NOT NULL REFERENCES app.users (username) ON UPDATE CASCADE,
    name             text NOT NULL CHECK (btrim(name) <> ''),
    source           text NOT NULL CHECK (source IN ('metric', 'query')),
    metric           text,
    query_id         bigint REFERENCES app.saved_queries (query_id) ON DELETE CASCADE,
    query_params     jsonb NOT NULL DEFAULT '{}',
    filters          jsonb NOT NULL DEFAULT '{}',     -- {dimension: [values]}
    fan_out          text NOT NULL DEFAULT '' CHECK (fan_out IN ('', 'vendor_id', 'category', 'region')),
    "window"         text NOT NULL,
    condition        text NOT NULL CHECK (condition IN ('above', 'below', 'rises_by', 'falls_by', 'outside_forecast')),
    baseline         text NOT NULL DEFAULT '' CHECK (baseline IN ('', 'previous', 'last_week')),
    threshold        float8,                         -- metric units (fractions for rates), or percent for changes
    for_evaluations  integer NOT NULL DEFAULT 1 CHECK (for_evaluations BETWEEN 1 AND 1000),
    severity         text NOT NULL DEFAULT 'medium' CHECK (severity IN ('critical', 'high', 'medium', 'low')),
    interval_minutes integer NOT NULL CHECK (interval_minutes BETWEEN 1 AND 10080),
    recipients       text[] NOT NULL DEFAULT '{}',
    webhook_url      text NOT NULL DEFAULT '',
    repeat_minutes   integer CHECK (repeat_minutes IS NULL OR repeat_minutes BETWEEN 1 AND 43200),
    notify_on_resolve boolean NOT NULL DEFAULT true,
    muted_until      timestamptz,
    paused           boolean NOT NULL DEFAULT false,
    next_eval_at     timestamptz NOT NULL DEFAULT now(),
    last_evaluated_at timestamptz,
    last_error       text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner, name),
    CHECK ((source = 'metric') = (metric IS NOT NULL)),
    CHECK ((source = 'query') = (query_id IS NOT NULL))
);
CREATE INDEX alert_rules_due_idx ON app.alert_rules (next_eval_at) WHERE NOT paused;

CREATE TABLE app.alert_instances (
    rule_id          bigint NOT NULL REFERENCES app.alert_rules ON DELETE CASCADE,
    fan_value        text NOT NULL DEFAULT '',
    state            text NOT NULL CHECK (state IN ('ok', 'pending', 'firing', 'resolved', 'no_data', 'error')),
    pending          integer NOT NULL DEFAULT 0,
    last_notified_at timestamptz,
    value            float8,                         -- seen at the last change
    since            timestamptz NOT NULL,           -- the state's start
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, fan_value)
);

CREATE TABLE app.alert_events (
    event_id         bigserial PRIMARY KEY,
    rule_id          bigint NOT NULL REFERENCES app.alert_rules ON DELETE CASCADE,
    fan_value        text NOT NULL DEFAULT '',
    at               timestamptz NOT NULL,           -- the evaluation's time
    from_state       text NOT NULL,
    to_state         text NOT NULL,
    value            float8,
    baseline         float8,                         -- the compared value (previous window, or forecast)
    band_upper       float8,                         -- the forecast band's upper end (anomalies)
    threshold        float8,
    notify           text,                           -- firing, repeat, resolved, no_data, error, or NULL
    muted            boolean NOT NULL DEFAULT false,
    message          text NOT NULL DEFAULT ''
);
CREATE INDEX alert_events_rule_idx ON app.alert_events (rule_id, at DESC);
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    op.execute("DROP TABLE app.alert_events; DROP TABLE app.alert_instances; DROP TABLE app.alert_rules;")
