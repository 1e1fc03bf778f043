"""Units sold in the 28 days ending on each stock snapshot, per product, kept by the refresh, so the
inventory cover of every product is one index probe (10M lines: 0.3 s of a 0.9 s products page
went to summing those windows on every load).

Changes to inventory_snapshots are recorded like order changes: their snapshot dates become dirty
days, and the refresh recomputes every snapshot whose window holds a dirty day.

Revision ID: 0006
Revises: 0005
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The window must match data.rollups.STOCK_WINDOW_DAYS.
SQL = """
CREATE TABLE mart.rollup_stock_cover (
    snapshot_date date NOT NULL,
    product_id    integer NOT NULL,
    on_hand       integer NOT NULL,
    units_window  bigint NOT NULL,      -- counted units sold in the 28 days ending on snapshot_date
    PRIMARY KEY (product_id, snapshot_date)
);
INSERT INTO mart.rollup_stock_cover (snapshot_date, product_id, on_hand, units_window)
SELECT s.snapshot_date, s.product_id, s.on_hand,
       COALESCE((SELECT SUM(r.units) FROM mart.rollup_product_daily r
                 WHERE r.product_id = s.product_id AND r.day BETWEEN s.snapshot_date - 27 AND s.snapshot_date), 0)
FROM mart.inventory_snapshots s;
ANALYZE mart.rollup_stock_cover;

CREATE FUNCTION app.track_snapshots() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('app.skip_rollup_tracking', true) = 'on' THEN RETURN NULL; END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO app.rollup_dirty_days SELECT DISTINCT snapshot_date FROM new_rows ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO app.rollup_dirty_days SELECT DISTINCT snapshot_date FROM old_rows ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER inventory_snapshots_track_ins AFTER INSERT ON mart.inventory_snapshots
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION app.track_snapshots();
CREATE TRIGGER inventory_snapshots_track_upd AFTER UPDATE ON mart.inventory_snapshots
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION app.track_snapshots();
CREATE TRIGGER inventory_snapshots_track_del AFTER DELETE ON mart.inventory_snapshots
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION app.track_snapshots();
CREATE TRIGGER inventory_snapshots_track_truncate AFTER TRUNCATE ON mart.inventory_snapshots
    FOR EACH STATEMENT EXECUTE FUNCTION app.track_dimension();
"""


def upgrade() -> None:
    # Filled from the daily rollup as it stands, so it is as fresh as the other rollups; a pending
    # full rebuild (app.rollup_state.full_needed) rebuilds it too.
    op.execute(SQL)


def downgrade() -> None:
    op.execute("""
        DROP TRIGGER inventory_snapshots_track_ins ON mart.inventory_snapshots;
        DROP TRIGGER inventory_snapshots_track_upd ON mart.inventory_snapshots;
        DROP TRIGGER inventory_snapshots_track_del ON mart.inventory_snapshots;
        DROP TRIGGER inventory_snapshots_track_truncate ON mart.inventory_snapshots;
        DROP FUNCTION app.track_snapshots();
        DROP TABLE mart.rollup_stock_cover;""")
