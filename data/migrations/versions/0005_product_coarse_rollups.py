"""Products per ISO week and per calendar month, summed from rollup_product_daily, so a long
period reads whole weeks and months plus its edge days instead of every day (the products page
on 10M lines: 190k day rows for 30 days, 1.9M for a year). An index to find each product's
latest stock snapshot by probing instead of sorting every snapshot.

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLS = "gmv, refunded, take, cost, units, orders, all_orders, cancelled_orders"


def _table(name: str, bucket: str) -> str:
    # day is the bucket's first day (a Monday, or the 1st of the month) in APP_TIMEZONE. Rows go
    # in by day, so a period's rows sit together on disk (hash order cost 7× the reads). Amounts
    # are float8: summing them costs half of summing numeric, and figures leave PostgreSQL as
    # float8 anyway (a week's sum of cent amounts is exact to ~1e-15 of itself).
    return f"""
CREATE TABLE mart.{name} (
    day date NOT NULL, product_id integer NOT NULL, vendor_id integer NOT NULL, category text NOT NULL,
    gmv float8 NOT NULL, refunded float8 NOT NULL, take float8 NOT NULL, cost float8 NOT NULL,
    units bigint NOT NULL, orders integer NOT NULL, all_orders integer NOT NULL, cancelled_orders integer NOT NULL
);
INSERT INTO mart.{name} (day, product_id, vendor_id, category, {COLS})
SELECT date_trunc('{bucket}', day)::date, product_id, vendor_id, category,
       {', '.join(f'SUM({c})' for c in COLS.split(', '))}
FROM mart.rollup_product_daily GROUP BY 1, 2, 3, 4 ORDER BY 1;
CREATE INDEX {name}_day_idx ON mart.{name} (day);
CREATE INDEX {name}_product_idx ON mart.{name} (product_id, day);
CREATE INDEX {name}_vendor_idx ON mart.{name} (vendor_id, day);
ANALYZE mart.{name};
"""


def upgrade() -> None:
    # Filled from the daily rollup as it stands: consistent with it, and a pending full rebuild
    # (app.rollup_state.full_needed) rebuilds these too.
    op.execute(_table("rollup_product_weekly", "week") + _table("rollup_product_monthly", "month"))
    op.execute("CREATE INDEX inventory_snapshots_product_idx ON mart.inventory_snapshots (product_id, snapshot_date)")


def downgrade() -> None:
    op.execute("DROP INDEX mart.inventory_snapshots_product_idx")
    op.execute("DROP TABLE mart.rollup_product_weekly, mart.rollup_product_monthly")
