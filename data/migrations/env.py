"""Alembic environment: runs on the connection that data.schema.migrate hands over."""
from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table_schema="app", transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
