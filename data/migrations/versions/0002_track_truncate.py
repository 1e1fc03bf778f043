"""TRUNCATE of a table the rollups read asks for a full rebuild.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("orders", "order_items", "customers", "vendors", "products")


def upgrade() -> None:
    for t in TABLES:
        op.execute(f"CREATE TRIGGER {t}_track_truncate AFTER TRUNCATE ON mart.{t} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION app.track_dimension()")
