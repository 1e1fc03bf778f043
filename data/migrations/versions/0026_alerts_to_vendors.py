"""Alert rules sent to every vendor (issue 22): `to_vendors`.

An admin's metric rule fanned out by vendor may also notify each vendor's own users of that vendor's
value alone (reports.alert_evaluation), besides its recipients.

Revision ID: 0026
Revises: 0025
"""
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE app.alert_rules ADD COLUMN to_vendors boolean NOT NULL DEFAULT false")
    op.execute("ALTER TABLE app.alert_rules ADD CONSTRAINT alert_rules_to_vendors_check "
               "CHECK (NOT to_vendors OR (source = 'metric' AND fan_out = 'vendor_id'))")


def downgrade() -> None:
    op.execute("ALTER TABLE app.alert_rules DROP COLUMN to_vendors")
