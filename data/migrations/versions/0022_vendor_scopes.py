"""Vendor scopes: which vendors each vendor login role may see (issue 22).

One row per database login role made for a set of vendors (data.vendor_scope): PostgreSQL's
row-level security policies on the mart tables a vendor may read look the session's role up here
through a security-definer function, so no query made on that role reads another vendor's rows.
The roles, the function and the policies are set up by `python -m data migrate` after the
migrations (data.vendor_scope.ensure_vendor_group), as the analysts' role is.

Revision ID: 0022
Revises: 0021
"""
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE app.vendor_scopes (
            role_name text PRIMARY KEY,
            vendor_ids integer[] NOT NULL CHECK (cardinality(vendor_ids) > 0),
            created_at timestamptz NOT NULL DEFAULT now()
        )""")


def downgrade() -> None:
    op.execute("DROP TABLE app.vendor_scopes")
