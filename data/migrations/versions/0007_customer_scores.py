"""Customer scores kept by the scheduler's nightly job: one row per customer (RFM, cluster, BG/NBD and
Gamma-Gamma predictions) as of the run's date, and one row per run with the fitted parameters and
the page's aggregate figures (segments, clusters, validation, cohorts, movement) as JSON.

The customers page reads these when no filter is set, so it opens without refitting anything.

Revision ID: 0007
Revises: 0006
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SQL = """
CREATE TABLE mart.customer_score_runs (
    run_id          bigserial PRIMARY KEY,
    as_of           date NOT NULL,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL DEFAULT now(),
    duration_ms     integer NOT NULL,
    customers       integer NOT NULL,
    rollup_version  bigint,
    status          text NOT NULL CHECK (status IN ('ok', 'too_little_data')),
    message         text NOT NULL DEFAULT '',
    bgnbd           jsonb,          -- r, alpha, a, b (time in days)
    gamma_gamma     jsonb,          -- p, q, v
    figures         jsonb NOT NULL  -- segments, clusters, validation, cohorts, movement, timings
);
CREATE INDEX customer_score_runs_finished_idx ON mart.customer_score_runs (finished_at DESC);

-- The latest run's customers: a run inserts its rows and deletes the previous run's in one
-- transaction, so readers see one whole run or the other and are never blocked.
CREATE TABLE mart.customer_scores (
    run_id          bigint NOT NULL,
    customer_id     integer NOT NULL,
    first_day       date NOT NULL,
    last_day        date NOT NULL,
    orders          integer NOT NULL,
    purchase_days   integer NOT NULL,
    gmv             float8 NOT NULL,
    frequency       integer NOT NULL,     -- repeat purchase days
    recency         integer NOT NULL,     -- days from the first to the last purchase
    tenure          integer NOT NULL,     -- days from the first purchase to as_of (T)
    days_since      integer NOT NULL,
    monetary_value  float8,               -- average GMV of the repeat purchase days
    r_score         smallint NOT NULL,
    f_score         smallint NOT NULL,
    m_score         smallint NOT NULL,
    fm_score        smallint NOT NULL,
    rfm_segment     text NOT NULL,
    cluster         smallint,
    p_alive         float8,
    expected_30     float8,
    expected_90     float8,
    expected_365    float8,
    expected_value  float8,               -- expected GMV per future purchase (Gamma-Gamma)
    clv_12m         float8,               -- discounted expected GMV over the next 12 months
    value_at_risk   float8,               -- gmv × (1 − p_alive): past value likely lost
    PRIMARY KEY (run_id, customer_id)
);
-- The at-risk list walks customers by value at risk and keeps those unlikely to be alive.
CREATE INDEX customer_scores_risk_idx ON mart.customer_scores (run_id, value_at_risk DESC NULLS LAST);
-- The page's list of the customers with the highest expected value.
CREATE INDEX customer_scores_clv_idx ON mart.customer_scores (run_id, clv_12m DESC NULLS LAST);
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    op.execute("DROP TABLE mart.customer_scores; DROP TABLE mart.customer_score_runs;")
