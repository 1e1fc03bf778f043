"""Vendors and products by dimension per quarter and year, for long periods.

A period reads the cubes' month rows (0017, 0018), and a month holds a row per key and value that
sold in it: at 10M order lines 22.8k rows per month for vendors by payment method (9.6k at 1M),
255k for products by any dimension. A three-year range read 36 months of them. The coarse tables
sum the months per year (grain 'y') and, for vendors, per quarter ('q'), with the first sale day;
a period reads whole years, then quarters, then months and edge days (data.dim_cubes).

Built by the next refresh (rollup layout 5); until then pages read the month rows, as before.

Revision ID: 0021
Revises: 0020
"""
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

MEASURES = """
    gmv numeric(18,2) NOT NULL, refunded numeric(18,2) NOT NULL, take numeric(20,6) NOT NULL,
    cost numeric(18,2) NOT NULL, units bigint NOT NULL, orders integer NOT NULL, all_orders integer NOT NULL,
    cancelled_orders integer NOT NULL"""


def upgrade() -> None:
    for cube, key in (("vendor", "vendor_id"), ("product", "product_id")):
        op.execute(f"""
            CREATE TABLE mart.rollup_{cube}_dims_coarse (
                grain "char" NOT NULL, day date NOT NULL, {key} integer NOT NULL, dim text NOT NULL,
                value text NOT NULL, status text NOT NULL,
                {MEASURES},
                first_day date,
                PRIMARY KEY (dim, value, grain, day, {key}, status)
            );
            CREATE INDEX rollup_{cube}_dims_coarse_key_idx ON mart.rollup_{cube}_dims_coarse ({key}, dim, grain, day)""")


def downgrade() -> None:
    op.execute("DROP TABLE mart.rollup_vendor_dims_coarse, mart.rollup_product_dims_coarse")
