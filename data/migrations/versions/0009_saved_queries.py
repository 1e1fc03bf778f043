"""Analysts' saved queries (with their edit history) and every user's query history.

Revision ID: 0009
Revises: 0008
"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SQL = """
CREATE TABLE app.saved_queries (
    query_id     bigserial PRIMARY KEY,
    owner        text NOT NULL REFERENCES app.users (username) ON UPDATE CASCADE,
    name         text NOT NULL CHECK (btrim(name) <> ''),
    description  text NOT NULL DEFAULT '',
    tags         text[] NOT NULL DEFAULT '{}',
    shared       boolean NOT NULL DEFAULT false,
    sql          text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    run_count    integer NOT NULL DEFAULT 0,
    last_run_at  timestamptz,
    total_run_ms bigint NOT NULL DEFAULT 0,
    UNIQUE (owner, name)
);
CREATE TABLE app.saved_query_versions (
    query_id    bigint NOT NULL REFERENCES app.saved_queries ON DELETE CASCADE,
    version     integer NOT NULL,
    name        text NOT NULL,
    description text NOT NULL,
    sql         text NOT NULL,
    edited_by   text NOT NULL,
    edited_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (query_id, version)
);
CREATE TABLE app.query_history (
    id           bigserial PRIMARY KEY,
    username     text NOT NULL,
    ran_at       timestamptz NOT NULL DEFAULT now(),
    sql          text NOT NULL,
    params       jsonb NOT NULL DEFAULT '{}',
    duration_ms  integer NOT NULL,
    rows         integer NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('ok', 'truncated', 'rejected', 'failed')),
    message      text NOT NULL DEFAULT '',
    query_id     bigint REFERENCES app.saved_queries ON DELETE SET NULL
);
CREATE INDEX query_history_user_idx ON app.query_history (username, ran_at DESC);
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    op.execute("DROP TABLE app.query_history; DROP TABLE app.saved_query_versions; DROP TABLE app.saved_queries;")
