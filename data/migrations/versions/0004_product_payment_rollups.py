"""Rollups for the sales, vendor and product pages: per product per day, and per payment method
and status per day (with the order-level dimensions the payments section filters on).

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

MEASURES = """
    gmv              numeric(18,2) NOT NULL,
    refunded         numeric(18,2) NOT NULL,
    take             numeric(20,6) NOT NULL,
    cost             numeric(18,2) NOT NULL,
    units            bigint NOT NULL,
    orders           integer NOT NULL,
    all_orders       integer NOT NULL,
    cancelled_orders integer NOT NULL
"""

SQL = f"""
CREATE TABLE mart.rollup_product_daily (
    day date NOT NULL, product_id integer NOT NULL, vendor_id integer NOT NULL, category text NOT NULL,
    {MEASURES}
);
CREATE INDEX rollup_product_daily_day_idx ON mart.rollup_product_daily (day);
CREATE INDEX rollup_product_daily_product_idx ON mart.rollup_product_daily (product_id, day);
CREATE INDEX rollup_product_daily_vendor_idx ON mart.rollup_product_daily (vendor_id, day);
CREATE TABLE mart.rollup_payment_daily (
    day date NOT NULL, payment_method text NOT NULL, payment_status text NOT NULL,
    channel text NOT NULL, business_model text NOT NULL, segment text NOT NULL,
    {MEASURES}
);
CREATE INDEX rollup_payment_daily_day_idx ON mart.rollup_payment_daily (day);
-- The new tables are empty: the next refresh rebuilds everything.
UPDATE app.rollup_state SET full_needed = true;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    op.execute("DROP TABLE mart.rollup_product_daily, mart.rollup_payment_daily")
