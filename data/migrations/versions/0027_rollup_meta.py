"""What a query over the rollups asks of their state, readable without schema app (issue 22).

The cubes' readers (analytics.kpis) ask which days the day-grain cube rows start from and which days
wait for a refresh, in the same statement as the rollups, so the figures hold one snapshot; a
forecast's history asks when the marketplace's first and last orders were placed. A vendor's role
cannot read schema app and reads only its own orders (data.vendor_scope), so these views in schema
`rollup_meta` show just those columns, with their owner's rights; data.vendor_scope.ensure_vendor_group
lets the vendors' group read them. Nothing in them belongs to a vendor: dates and two timestamps.
(The vendor's own first and last orders, under row-level security, took 700 ms at 10M lines.)

Revision ID: 0027
Revises: 0026
"""
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA rollup_meta")
    op.execute("REVOKE ALL ON SCHEMA rollup_meta FROM PUBLIC")
    op.execute("""CREATE VIEW rollup_meta.days_from AS
                  SELECT vendor_days_from, product_days_from FROM app.rollup_state""")
    op.execute("CREATE VIEW rollup_meta.dirty_days AS SELECT day_utc FROM app.rollup_dirty_days")
    op.execute("""CREATE VIEW rollup_meta.data_bounds AS
                  SELECT min(ordered_at) AS first_order_at, max(ordered_at) AS last_order_at FROM mart.orders""")


def downgrade() -> None:
    op.execute("DROP SCHEMA rollup_meta CASCADE")
