"""Stored forecasts: one row per forecast run of a series (metric, grain, total or one dimension
value) with its model, reason, notes and backtest, and its points with both prediction intervals.

The scheduler writes the nightly runs; the forecasting page reads them (so it opens instantly) and
compares earlier runs with the actuals that have arrived since.

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SQL = """
CREATE TABLE mart.forecast_runs (
    run_id        bigserial PRIMARY KEY,
    run_date      date NOT NULL,              -- the local day the forecast was made
    created_at    timestamptz NOT NULL DEFAULT now(),
    metric        text NOT NULL,
    grain         text NOT NULL CHECK (grain IN ('day', 'week', 'month')),
    dim           text NOT NULL DEFAULT '',   -- '' for the total
    dim_value     text NOT NULL DEFAULT '',
    horizon       integer NOT NULL,
    interval      float8 NOT NULL,
    history_start date NOT NULL,
    history_end   date NOT NULL,              -- the last period the model saw
    model         text NOT NULL,
    reason        text NOT NULL,
    notes         jsonb NOT NULL,
    backtest      jsonb NOT NULL,             -- [{model, mase, smape, coverage, folds}]
    backtest_forecasts jsonb NOT NULL,        -- {columns, data}: model, fold, ds, y, yhat, yhat_lower, yhat_upper
    duration_ms   integer NOT NULL,
    UNIQUE (run_date, metric, grain, dim, dim_value, horizon)
);
CREATE INDEX forecast_runs_series_idx ON mart.forecast_runs (metric, grain, dim, dim_value, run_date DESC);

CREATE TABLE mart.forecast_points (
    run_id         bigint NOT NULL REFERENCES mart.forecast_runs ON DELETE CASCADE,
    ds             date NOT NULL,
    yhat           float8 NOT NULL,
    yhat_lower     float8 NOT NULL,           -- the run's interval
    yhat_upper     float8 NOT NULL,
    yhat_lower_95  float8 NOT NULL,
    yhat_upper_95  float8 NOT NULL,
    PRIMARY KEY (run_id, ds)
);
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    op.execute("DROP TABLE mart.forecast_points; DROP TABLE mart.forecast_runs;")
