"""Vendor users (issue 22): the role `vendor` and the vendors each vendor user is bound to.

A vendor user sees only the business of the vendors in app.user_vendors: every query made on their
behalf runs on the login role of that set of vendors (data.vendor_scope), which PostgreSQL's
row-level security limits to those vendors' rows. The binding's vendor ids are checked against
mart.vendors when written (data.auth); a vendor's row is never deleted by the app.

Revision ID: 0023
Revises: 0022
"""
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE app.users DROP CONSTRAINT IF EXISTS users_role_check")
    op.execute("ALTER TABLE app.users ADD CONSTRAINT users_role_check "
               "CHECK (role IN ('viewer', 'analyst', 'admin', 'vendor'))")
    op.execute("""
        CREATE TABLE app.user_vendors (
            user_id integer NOT NULL REFERENCES app.users (user_id) ON DELETE CASCADE,
            vendor_id integer NOT NULL,
            bound_at timestamptz NOT NULL DEFAULT now(),
            bound_by text NOT NULL DEFAULT '',
            PRIMARY KEY (user_id, vendor_id)
        )""")
    op.execute("CREATE INDEX user_vendors_vendor ON app.user_vendors (vendor_id)")


def downgrade() -> None:
    op.execute("DROP TABLE app.user_vendors")
    op.execute("DELETE FROM app.users WHERE role = 'vendor'")
    op.execute("ALTER TABLE app.users DROP CONSTRAINT IF EXISTS users_role_check")
    op.execute("ALTER TABLE app.users ADD CONSTRAINT users_role_check CHECK (role IN ('viewer', 'analyst', 'admin'))")
