"""Each stored customer's main vendor, written with the nightly scores run.

The customers page names, for the customers it lists (at risk, top by CLV), the vendor each
spent most with and its share of their GMV. It summed those customers' order lines on every
view: at 10M lines 1,000 at-risk customers have 16k orders and 64k lines (0.35 s warm, 3.7 s
from disk). The nightly run now stores the answer for every customer it scores, and pages read
1,000 rows by key. Runs stored before this revision have none: pages sum the lines for them.

Revision ID: 0019
Revises: 0018
"""
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No foreign key to customer_score_runs: store_scores keeps only the latest run's rows, as it
    # does for customer_scores.
    op.execute("""
        CREATE TABLE mart.customer_score_main_vendors (
            run_id bigint NOT NULL, customer_id integer NOT NULL, vendor_id integer NOT NULL, share float8,
            PRIMARY KEY (run_id, customer_id)
        )""")


def downgrade() -> None:
    op.execute("DROP TABLE mart.customer_score_main_vendors")
