"""Payment status beside categories by country and payment method.

`rollup_category_geo_*` gains payment status: the sales page's failed payments under a category
filter (payments by method narrowed to failed ones) read it instead of the order lines. Its rows
are rebuilt by the next refresh (rollup layout 2); until then pages read it without payment
status, as layout 1 did.

Revision ID: 0015
Revises: 0014
"""
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TABLES = ("rollup_category_geo_daily", "rollup_category_geo_weekly", "rollup_category_geo_monthly")


def upgrade() -> None:
    for t in TABLES:
        # Every row is rebuilt by the next refresh: the default only fills the existing ones.
        op.execute(f"ALTER TABLE mart.{t} ADD COLUMN payment_status text NOT NULL DEFAULT ''")
        op.execute(f"ALTER TABLE mart.{t} ALTER COLUMN payment_status DROP DEFAULT")


def downgrade() -> None:
    for t in TABLES:
        op.execute(f"ALTER TABLE mart.{t} DROP COLUMN payment_status")
