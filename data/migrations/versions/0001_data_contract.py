"""Data contract (schema mart), rollups, change tracking, app state.

Revision ID: 0001
Revises:
"""
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MART = """
CREATE TABLE mart.vendors (
    vendor_id       integer PRIMARY KEY,
    name            text NOT NULL,
    category        text NOT NULL,
    region          text NOT NULL,
    country         text NOT NULL,
    joined_on       date NOT NULL,
    status          text NOT NULL CHECK (status IN ('active', 'paused', 'closed')),
    commission_rate numeric(5,4) NOT NULL CHECK (commission_rate BETWEEN 0 AND 1)
);
CREATE TABLE mart.products (
    product_id  integer PRIMARY KEY,
    vendor_id   integer NOT NULL REFERENCES mart.vendors,
    sku         text NOT NULL UNIQUE,
    name        text NOT NULL,
    category    text NOT NULL,
    subcategory text NOT NULL,
    list_price  numeric(12,2) NOT NULL CHECK (list_price >= 0),
    unit_cost   numeric(12,2) NOT NULL CHECK (unit_cost >= 0),
    created_on  date NOT NULL
);
CREATE INDEX products_vendor_idx ON mart.products (vendor_id);
CREATE TABLE mart.customers (
    customer_id         integer PRIMARY KEY,
    name                text NOT NULL,
    country             text NOT NULL,
    region              text NOT NULL,
    segment             text NOT NULL CHECK (segment IN ('B2C', 'B2B')),
    acquisition_channel text NOT NULL,
    signup_at           timestamptz NOT NULL
);
CREATE TABLE mart.orders (
    order_id       bigint PRIMARY KEY,
    customer_id    integer NOT NULL REFERENCES mart.customers,
    ordered_at     timestamptz NOT NULL,
    status         text NOT NULL CHECK (status IN ('placed', 'paid', 'shipped', 'delivered', 'cancelled', 'returned')),
    channel        text NOT NULL CHECK (channel IN ('web', 'mobile', 'marketplace_api', 'sales_rep')),
    business_model text NOT NULL CHECK (business_model IN ('B2C', 'B2B', 'B2B2C')),
    payment_method text NOT NULL,
    payment_status text NOT NULL CHECK (payment_status IN ('captured', 'failed', 'refunded', 'partially_refunded')),
    currency       char(3) NOT NULL,
    shipping_fee   numeric(12,2) NOT NULL DEFAULT 0 CHECK (shipping_fee >= 0)
);
CREATE INDEX orders_ordered_at_idx ON mart.orders (ordered_at);
CREATE INDEX orders_customer_idx ON mart.orders (customer_id, ordered_at);
CREATE TABLE mart.order_items (
    order_id        bigint NOT NULL REFERENCES mart.orders ON DELETE CASCADE,
    line_no         integer NOT NULL CHECK (line_no > 0),
    product_id      integer NOT NULL REFERENCES mart.products,
    vendor_id       integer NOT NULL REFERENCES mart.vendors,
    quantity        integer NOT NULL CHECK (quantity > 0),
    unit_price      numeric(12,2) NOT NULL CHECK (unit_price >= 0),
    discount        numeric(12,2) NOT NULL DEFAULT 0 CHECK (discount >= 0),
    unit_cost       numeric(12,2) NOT NULL CHECK (unit_cost >= 0),
    refunded_amount numeric(12,2) NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0),
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_items_vendor_idx ON mart.order_items (vendor_id);
CREATE INDEX order_items_product_idx ON mart.order_items (product_id);
CREATE TABLE mart.traffic_daily (
    day           date NOT NULL,
    channel       text NOT NULL,
    sessions      integer NOT NULL CHECK (sessions >= 0),
    product_views integer NOT NULL CHECK (product_views >= 0),
    add_to_carts  integer NOT NULL CHECK (add_to_carts >= 0),
    checkouts     integer NOT NULL CHECK (checkouts >= 0),
    PRIMARY KEY (day, channel)
);
CREATE TABLE mart.marketing_spend (
    day      date NOT NULL,
    channel  text NOT NULL,
    campaign text NOT NULL,
    spend    numeric(12,2) NOT NULL CHECK (spend >= 0),
    PRIMARY KEY (day, channel, campaign)
);
CREATE TABLE mart.inventory_snapshots (
    snapshot_date date NOT NULL,
    product_id    integer NOT NULL REFERENCES mart.products,
    on_hand       integer NOT NULL CHECK (on_hand >= 0),
    PRIMARY KEY (snapshot_date, product_id)
);
CREATE TABLE mart.kpi_targets (
    metric       text NOT NULL,
    period_start date NOT NULL,
    period_end   date NOT NULL,
    target       numeric(16,4) NOT NULL,
    PRIMARY KEY (metric, period_start, period_end),
    CHECK (period_end >= period_start)
);
"""

# Rollups: every measure column is a base measure of data/measures.py summed over the grain.
# Order counts are exact because each order falls in exactly one row of a grain, or (vendor and
# category grains) because they count distinct orders within one vendor or category.
MEASURES = """
    gmv              numeric(18,2) NOT NULL,
    refunded         numeric(18,2) NOT NULL,
    take             numeric(20,6) NOT NULL,
    cost             numeric(18,2) NOT NULL,
    units            bigint NOT NULL,
    orders           integer NOT NULL,
    all_orders       integer NOT NULL,
    cancelled_orders integer NOT NULL
"""
ROLLUPS = f"""
CREATE TABLE mart.rollup_sales_daily (
    day date NOT NULL, channel text NOT NULL, business_model text NOT NULL,
    segment text NOT NULL, region text NOT NULL, country text NOT NULL,
    {MEASURES}
);
CREATE INDEX rollup_sales_daily_day_idx ON mart.rollup_sales_daily (day);
CREATE TABLE mart.rollup_sales_hourly (
    hour timestamptz NOT NULL, day date NOT NULL, channel text NOT NULL, business_model text NOT NULL,
    {MEASURES}
);
CREATE INDEX rollup_sales_hourly_day_idx ON mart.rollup_sales_hourly (day);
CREATE TABLE mart.rollup_vendor_daily (
    day date NOT NULL, vendor_id integer NOT NULL,
    {MEASURES}
);
CREATE INDEX rollup_vendor_daily_day_idx ON mart.rollup_vendor_daily (day);
CREATE INDEX rollup_vendor_daily_vendor_idx ON mart.rollup_vendor_daily (vendor_id, day);
CREATE TABLE mart.rollup_category_daily (
    day date NOT NULL, category text NOT NULL,
    {MEASURES}
);
CREATE INDEX rollup_category_daily_day_idx ON mart.rollup_category_daily (day);
CREATE TABLE mart.rollup_customers (
    customer_id  integer PRIMARY KEY,
    first_day    date NOT NULL,
    second_day   date,
    orders       integer NOT NULL,
    gmv          numeric(18,2) NOT NULL
);
CREATE TABLE mart.rollup_customer_daily (
    day date NOT NULL, customer_id integer NOT NULL,
    channel text NOT NULL, business_model text NOT NULL,
    segment text NOT NULL, region text NOT NULL, country text NOT NULL,
    first_day date NOT NULL, second_day date,
    orders integer NOT NULL,
    gmv numeric(18,2) NOT NULL
);
CREATE INDEX rollup_customer_daily_day_idx ON mart.rollup_customer_daily (day);
CREATE INDEX rollup_customer_daily_customer_idx ON mart.rollup_customer_daily (customer_id);
"""

APP = """
CREATE TABLE app.rollup_state (
    id             boolean PRIMARY KEY DEFAULT true CHECK (id),
    timezone       text,
    full_needed    boolean NOT NULL DEFAULT true,
    version        bigint NOT NULL DEFAULT 0,
    refreshed_at   timestamptz,
    refresh_ms     integer
);
INSERT INTO app.rollup_state DEFAULT VALUES;
-- UTC days touched by changes to orders and order lines since the last refresh.
CREATE TABLE app.rollup_dirty_days (day_utc date PRIMARY KEY);
-- Customers whose first or second order may have moved (orders updated or deleted).
CREATE TABLE app.rollup_dirty_customers (customer_id integer PRIMARY KEY);
CREATE TABLE app.scheduler_heartbeat (
    worker     text PRIMARY KEY,
    hostname   text NOT NULL,
    pid        integer NOT NULL,
    started_at timestamptz NOT NULL,
    beat_at    timestamptz NOT NULL,
    info       jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE app.job_runs (
    id          bigserial PRIMARY KEY,
    job         text NOT NULL,
    worker      text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    ok          boolean,
    message     text NOT NULL DEFAULT ''
);
CREATE INDEX job_runs_started_idx ON app.job_runs (started_at DESC);
"""

# Statement-level triggers with transition tables: one cheap INSERT … SELECT DISTINCT per
# statement, however many rows it touched. Bulk loaders that rebuild everything afterwards set
# app.skip_rollup_tracking = 'on' for their transaction.
TRACKING = """
CREATE FUNCTION app.track_orders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('app.skip_rollup_tracking', true) = 'on' THEN RETURN NULL; END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO app.rollup_dirty_days
        SELECT DISTINCT (ordered_at AT TIME ZONE 'UTC')::date FROM new_rows ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO app.rollup_dirty_days
        SELECT DISTINCT (ordered_at AT TIME ZONE 'UTC')::date FROM old_rows ON CONFLICT DO NOTHING;
        INSERT INTO app.rollup_dirty_customers
        SELECT DISTINCT customer_id FROM old_rows ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER orders_track_ins AFTER INSERT ON mart.orders
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION app.track_orders();
CREATE TRIGGER orders_track_upd AFTER UPDATE ON mart.orders
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION app.track_orders();
CREATE TRIGGER orders_track_del AFTER DELETE ON mart.orders
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION app.track_orders();

CREATE FUNCTION app.track_order_items() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('app.skip_rollup_tracking', true) = 'on' THEN RETURN NULL; END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO app.rollup_dirty_days
        SELECT DISTINCT (o.ordered_at AT TIME ZONE 'UTC')::date
        FROM (SELECT DISTINCT order_id FROM new_rows) n JOIN mart.orders o USING (order_id)
        ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO app.rollup_dirty_days
        SELECT DISTINCT (o.ordered_at AT TIME ZONE 'UTC')::date
        FROM (SELECT DISTINCT order_id FROM old_rows) d JOIN mart.orders o USING (order_id)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER order_items_track_ins AFTER INSERT ON mart.order_items
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION app.track_order_items();
CREATE TRIGGER order_items_track_upd AFTER UPDATE ON mart.order_items
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION app.track_order_items();
CREATE TRIGGER order_items_track_del AFTER DELETE ON mart.order_items
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION app.track_order_items();

-- Vendors, products and customers are copied into every rollup row (commission, category,
-- segment, country): any change to them asks for a full rebuild.
CREATE FUNCTION app.track_dimension() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('app.skip_rollup_tracking', true) = 'on' THEN RETURN NULL; END IF;
    UPDATE app.rollup_state SET full_needed = true WHERE NOT full_needed;
    RETURN NULL;
END $$;
CREATE TRIGGER vendors_track AFTER UPDATE OR DELETE ON mart.vendors
    FOR EACH STATEMENT EXECUTE FUNCTION app.track_dimension();
CREATE TRIGGER products_track AFTER UPDATE OR DELETE ON mart.products
    FOR EACH STATEMENT EXECUTE FUNCTION app.track_dimension();
CREATE TRIGGER customers_track AFTER UPDATE OR DELETE ON mart.customers
    FOR EACH STATEMENT EXECUTE FUNCTION app.track_dimension();
"""


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS mart")
    op.execute(MART)
    op.execute(ROLLUPS)
    op.execute(APP)
    op.execute(TRACKING)
