"""A vendor's customer scores as of last year's end too, kept by the nightly job (issue 22).

The customers page's "Last year" preset reads scores as of December 31st of the previous year. A
vendor's nightly row (migration 0028) holds them as of yesterday; computed while the page opens,
last year's took 45 s for the largest vendor at 10M lines. Each vendor now keeps a second row,
`period = 'last_year'`, with the rollup version of the days up to its date (`days_version`,
data.rollups.fetch_period_version), so the job computes it again only when the year turns or a
late change moved a figure of those days. Existing rows are yesterday's.

Revision ID: 0029
Revises: 0028
"""
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE mart.vendor_customer_scores
            ADD COLUMN period text NOT NULL DEFAULT 'yesterday' CHECK (period IN ('yesterday', 'last_year')),
            ADD COLUMN days_version bigint,
            DROP CONSTRAINT vendor_customer_scores_pkey,
            ADD PRIMARY KEY (vendor_id, period)""")


def downgrade() -> None:
    op.execute("DELETE FROM mart.vendor_customer_scores WHERE period <> 'yesterday'")
    op.execute("""
        ALTER TABLE mart.vendor_customer_scores
            DROP CONSTRAINT vendor_customer_scores_pkey,
            DROP COLUMN days_version,
            DROP COLUMN period,
            ADD PRIMARY KEY (vendor_id)""")
