"""Dashboards: personal or shared pages of widgets, each a saved query's chart or a KPI card, in
an order and a width, refreshed every so many seconds.

Revision ID: 0010
Revises: 0009
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SQL = """
CREATE TABLE app.dashboards (
    dashboard_id    bigserial PRIMARY KEY,
    owner           text NOT NULL REFERENCES app.users (username) ON UPDATE CASCADE,
    name            text NOT NULL CHECK (btrim(name) <> ''),
    shared          boolean NOT NULL DEFAULT false,
    refresh_seconds integer NOT NULL DEFAULT 0 CHECK (refresh_seconds = 0 OR refresh_seconds >= 30),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner, name)
);
CREATE TABLE app.dashboard_widgets (
    widget_id     bigserial PRIMARY KEY,
    dashboard_id  bigint NOT NULL REFERENCES app.dashboards ON DELETE CASCADE,
    position      integer NOT NULL,
    width         smallint NOT NULL DEFAULT 2 CHECK (width BETWEEN 1 AND 4),   -- quarters of the page
    kind          text NOT NULL CHECK (kind IN ('query', 'kpi')),
    title         text NOT NULL DEFAULT '',
    query_id      bigint REFERENCES app.saved_queries ON DELETE CASCADE,
    params        jsonb NOT NULL DEFAULT '{}',
    chart         jsonb NOT NULL DEFAULT '{}',     -- query: {type, x, y, colour}
    metric        text,                            -- kpi: a glossary metric
    period        text,                            -- kpi: a period preset
    CHECK ((kind = 'query') = (query_id IS NOT NULL)),
    CHECK ((kind = 'kpi') = (metric IS NOT NULL AND period IS NOT NULL))
);
CREATE INDEX dashboard_widgets_dashboard_idx ON app.dashboard_widgets (dashboard_id, position);
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    op.execute("DROP TABLE app.dashboard_widgets; DROP TABLE app.dashboards;")
