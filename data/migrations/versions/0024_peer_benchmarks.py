"""Peer benchmarks (issue 22): each vendor's figures against its category's, computed by the scheduler.

mart.peer_benchmarks holds per period preset, vendor category and metric the quartiles of the
category's vendors' values, only where at least 5 vendors have one: anonymous aggregates, readable
by every vendor role (data.vendor_scope's shared tables). mart.vendor_benchmarks holds each
vendor's value, rank and percentile in its category; it has a vendor_id, so row-level security
limits a vendor role to its own rows. Rank, peers and percentile are stored only where at least
5 vendors of the category have a value: the CHECKs keep figures about fewer than 5 vendors out
of tables a vendor can read. Written by data.peer_benchmarks.refresh_peer_benchmarks.

Revision ID: 0024
Revises: 0023
"""
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

SQL = """
CREATE TABLE mart.peer_benchmarks (
    preset        text NOT NULL,
    period_start  date NOT NULL,
    period_end    date NOT NULL,
    category      text NOT NULL,
    metric        text NOT NULL,
    peers         integer NOT NULL CHECK (peers >= 5),   -- vendors of the category with a value
    p25           float8 NOT NULL,
    median        float8 NOT NULL,
    p75           float8 NOT NULL,
    computed_at   timestamptz NOT NULL,
    PRIMARY KEY (preset, category, metric)
);

CREATE TABLE mart.vendor_benchmarks (
    preset        text NOT NULL,
    period_start  date NOT NULL,
    period_end    date NOT NULL,
    vendor_id     integer NOT NULL,
    category      text NOT NULL,
    metric        text NOT NULL,
    value         float8,              -- rows are written only where defined (no AOV without orders)
    rank          integer,             -- 1 = best of the category's vendors with a value
    peers         integer CHECK (peers >= 5),
    percentile    float8 CHECK (percentile > 0 AND percentile <= 100),
    computed_at   timestamptz NOT NULL,
    PRIMARY KEY (preset, vendor_id, metric),
    CHECK (peers IS NOT NULL OR (rank IS NULL AND percentile IS NULL))
);
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    op.execute("DROP TABLE mart.vendor_benchmarks; DROP TABLE mart.peer_benchmarks;")
