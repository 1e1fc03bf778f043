"""The bulk-load frame: foreign keys, secondary indexes and triggers off while COPY runs."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from data.seed.progress import Progress
from data.seed.reference import (
    CONTRACT_TABLES,
)


@contextmanager
def bulk_load(conn: Connection, bar: Progress) -> Iterator[None]:
    """Drops the contract tables' foreign keys and secondary indexes, restores them on exit.

    The same as pg_restore does: building an index once and checking a foreign key with one
    join is many times faster than maintaining both row by row during COPY. Definitions are
    read from the catalog, so whatever the migrations made is put back exactly; all of it is
    inside the seeding transaction, so no other session ever sees the tables without them.
    """
    tables = [f"mart.{t}" for t in CONTRACT_TABLES]
    fks = conn.execute(sa.text("""
        SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname),
               format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname,
                      pg_get_constraintdef(oid))
        FROM pg_constraint
        WHERE contype = 'f' AND conrelid = ANY (CAST(:tables AS regclass[]))
        ORDER BY conrelid::regclass::text, conname"""), {"tables": tables}).all()
    indexes = conn.execute(sa.text("""
        SELECT format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid = ANY (CAST(:tables AS regclass[]))
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        ORDER BY i.indexrelid::regclass::text"""), {"tables": tables}).all()
    triggers = conn.execute(sa.text("""
        SELECT format('ALTER TABLE %s DISABLE TRIGGER USER', t), format('ALTER TABLE %s ENABLE TRIGGER USER', t)
        FROM unnest(CAST(:tables AS regclass[])) AS t"""), {"tables": tables}).all()
    for drop, _ in [*fks, *indexes, *triggers]:
        conn.execute(sa.text(drop))
    yield
    bar.phase("building indexes and checking foreign keys")
    for _, create in indexes:
        conn.execute(sa.text(create))
    for t in tables:
        conn.execute(sa.text(f"ANALYZE {t}"))
    for _, add in [*fks, *triggers]:
        conn.execute(sa.text(add))
