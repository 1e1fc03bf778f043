"""Each vendor's customer scores, computed by the scheduler once a night (issue 22).

A vendor user's customers page shows the customers of their own lines as segments, movement,
clusters, cohorts and lifetime value. Computed when the page opens, the models' fit takes seconds for
a large vendor (30 s for the largest at 10M lines); the nightly job (reports.jobs
vendor_customer_scores_job) computes them on each vendor's own database role and keeps the latest
here, one row per vendor, aggregates only (the runs' JSON as in customer_score_runs, no customer).
The row has a vendor_id, so row-level security gives each vendor's role its own row only
(data.vendor_scope).

Revision ID: 0028
Revises: 0027
"""
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE mart.vendor_customer_scores (
            vendor_id      integer PRIMARY KEY,   -- no foreign key: a re-seed replaces the vendors (as for vendor_benchmarks)
            as_of          date NOT NULL,
            movement_from  date,
            finished_at    timestamptz NOT NULL DEFAULT now(),
            duration_ms    integer NOT NULL,
            customers      integer NOT NULL,
            status         text NOT NULL CHECK (status IN ('ok', 'too_little_data')),
            message        text NOT NULL DEFAULT '',
            bgnbd          jsonb,
            gamma_gamma    jsonb,
            figures        jsonb NOT NULL
        )""")


def downgrade() -> None:
    op.execute("DROP TABLE mart.vendor_customer_scores")
