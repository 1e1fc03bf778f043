"""A rollup per day, category and the order-level dimensions (channel, business model, segment,
region): a category filter together with one of those (or broken down by one of them, as an
alert for each region in one category) no longer reads the order lines. Country is left out: its
many values would make the table nearly as long as the orders.

Revision ID: 0013
Revises: 0012
"""
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

SQL = """
CREATE TABLE mart.rollup_category_orders_daily (
    day date NOT NULL, category text NOT NULL, channel text NOT NULL, business_model text NOT NULL,
    segment text NOT NULL, region text NOT NULL,
    gmv              numeric(18,2) NOT NULL,
    refunded         numeric(18,2) NOT NULL,
    take             numeric(20,6) NOT NULL,
    cost             numeric(18,2) NOT NULL,
    units            bigint NOT NULL,
    orders           integer NOT NULL,
    all_orders       integer NOT NULL,
    cancelled_orders integer NOT NULL
);
CREATE INDEX rollup_category_orders_daily_day_idx ON mart.rollup_category_orders_daily (day, category);
-- The new table is empty: the next refresh rebuilds everything.
UPDATE app.rollup_state SET full_needed = true;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    op.execute("DROP TABLE mart.rollup_category_orders_daily")
