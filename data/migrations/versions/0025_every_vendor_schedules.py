"""Schedules sent to every vendor (issue 22): fan-out `every_vendor`.

An admin's schedule of a vendor-scoped report (reports.templates, `vendor_report`) with this fan-out
makes, on each slot, one run per vendor that has enabled vendor users, each on that vendor's own
database role, mailed to that vendor's users only (reports.schedules).

Revision ID: 0025
Revises: 0024
"""
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE app.schedules DROP CONSTRAINT IF EXISTS schedules_fan_out_check")
    op.execute("ALTER TABLE app.schedules ADD CONSTRAINT schedules_fan_out_check "
               "CHECK (fan_out IN ('vendor', 'category', 'every_vendor'))")


def downgrade() -> None:
    op.execute("DELETE FROM app.schedules WHERE fan_out = 'every_vendor'")
    op.execute("ALTER TABLE app.schedules DROP CONSTRAINT IF EXISTS schedules_fan_out_check")
    op.execute("ALTER TABLE app.schedules ADD CONSTRAINT schedules_fan_out_check "
               "CHECK (fan_out IN ('vendor', 'category'))")
