/*
 * loyalty--0.2--0.3.sql: the check engine.
 *
 * calculate, purchase, refund and catalog_prices; purchase facts; promotion
 * usage counters; configuration cache invalidation.
 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION loyalty UPDATE TO '0.3'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Segments (SPEC §10), as far as promotions scope by them: a segment and its
-- members.  Rules are evaluated by maintenance (a later milestone); members
-- may also be maintained by hand.
-- ---------------------------------------------------------------------------
CREATE TABLE loyalty.segment (
    code text PRIMARY KEY CHECK (code <> ''),
    name text NOT NULL,
    rule jsonb NOT NULL DEFAULT '{}'
         CONSTRAINT segment_rule_object CHECK (pg_catalog.jsonb_typeof(rule) = 'object')
);
COMMENT ON TABLE loyalty.segment IS
    'Customer segments; promotions may be limited to members of some (promotion.segments)';

CREATE TABLE loyalty.segment_member (
    segment     text NOT NULL REFERENCES loyalty.segment (code) ON UPDATE CASCADE ON DELETE CASCADE,
    customer_id bigint NOT NULL REFERENCES loyalty.customer (id),
    since       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (segment, customer_id)
);
CREATE INDEX segment_member_customer_idx ON loyalty.segment_member (customer_id);
COMMENT ON TABLE loyalty.segment_member IS 'Members of each segment';

-- ---------------------------------------------------------------------------
-- Purchase facts (SPEC §10): one row per committed check, per line, and per
-- line and point account; refunds.  Written only by loyalty.purchase and
-- loyalty.refund.  Money numeric(14,2), quantities numeric(12,3), points
-- numeric.
-- ---------------------------------------------------------------------------
CREATE TABLE loyalty.purchase (
    operation_id  text PRIMARY KEY,
    customer_id   bigint REFERENCES loyalty.customer (id),
    store         text,
    channel       text NOT NULL,
    at            timestamptz NOT NULL,
    amount        numeric(14,2) NOT NULL,
    discount      numeric(14,2) NOT NULL,
    certificate   numeric(14,2) NOT NULL DEFAULT 0,
    redeemed      numeric(14,2) NOT NULL,
    total         numeric(14,2) NOT NULL,
    points_earned numeric NOT NULL DEFAULT 0,
    points_spent  numeric NOT NULL DEFAULT 0,
    lines         int NOT NULL,
    promotions    text[] NOT NULL DEFAULT '{}',
    refunded      numeric(14,2) NOT NULL DEFAULT 0,
    CONSTRAINT purchase_total_adds_up CHECK (total = amount - discount - certificate - redeemed),
    CONSTRAINT purchase_refunded_within_total CHECK (refunded >= 0 AND refunded <= total)
);
CREATE INDEX purchase_customer_at_idx ON loyalty.purchase (customer_id, at);
CREATE INDEX purchase_at_idx ON loyalty.purchase (at);
COMMENT ON TABLE loyalty.purchase IS
    'Committed checks: money (amount - discount - certificate - redeemed = total), points, promotions, refunded money';

CREATE TABLE loyalty.purchase_line (
    operation_id   text NOT NULL REFERENCES loyalty.purchase (operation_id) ON DELETE CASCADE,
    line_index     int NOT NULL,
    sku            text NOT NULL,
    qty            numeric(12,3) NOT NULL,
    price          numeric(14,2) NOT NULL,
    amount         numeric(14,2) NOT NULL,
    discount       numeric(14,2) NOT NULL,
    certificate    numeric(14,2) NOT NULL DEFAULT 0,
    redeemed       numeric(14,2) NOT NULL,
    total          numeric(14,2) NOT NULL,
    promotions     jsonb NOT NULL DEFAULT '[]',
    refunded_qty   numeric(12,3) NOT NULL DEFAULT 0,
    refunded_total numeric(14,2) NOT NULL DEFAULT 0,
    PRIMARY KEY (operation_id, line_index),
    CONSTRAINT purchase_line_refund_within CHECK (refunded_qty <= qty AND refunded_total <= total)
);
CREATE INDEX purchase_line_sku_idx ON loyalty.purchase_line (sku);
COMMENT ON TABLE loyalty.purchase_line IS
    'Lines of committed checks: money, the promotions that changed them ([{code, discount}]), refunds';

CREATE TABLE loyalty.purchase_line_points (
    operation_id    text NOT NULL,
    line_index      int NOT NULL,
    account         text NOT NULL,
    earned          numeric NOT NULL DEFAULT 0,
    spent           numeric NOT NULL DEFAULT 0,
    earned_refunded numeric NOT NULL DEFAULT 0,
    spent_refunded  numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (operation_id, line_index, account),
    FOREIGN KEY (operation_id, line_index)
        REFERENCES loyalty.purchase_line (operation_id, line_index) ON DELETE CASCADE
);
COMMENT ON TABLE loyalty.purchase_line_points IS
    'Points each line of a purchase earned and spent per account, and how much of them refunds took back';

CREATE TABLE loyalty.refund (
    operation_id    text PRIMARY KEY,
    purchase        text NOT NULL REFERENCES loyalty.purchase (operation_id),
    customer_id     bigint REFERENCES loyalty.customer (id),
    at              timestamptz NOT NULL,
    amount          numeric(14,2) NOT NULL,
    lines           jsonb NOT NULL,
    points_reversed jsonb NOT NULL DEFAULT '{}',
    points_returned jsonb NOT NULL DEFAULT '{}',
    full_refund     boolean NOT NULL
);
CREATE INDEX refund_purchase_idx ON loyalty.refund (purchase);
CREATE INDEX refund_at_idx ON loyalty.refund (at);
COMMENT ON TABLE loyalty.refund IS
    'Refunds: money back, lines ([{index, sku, qty, amount}]), points reversed and returned per account';

-- ---------------------------------------------------------------------------
-- Usage counters of promotions with a usage_limit or per_customer_limit.
-- Counted with INSERT ... ON CONFLICT DO UPDATE ... WHERE uses < limit, so
-- two concurrent purchases can never both take the last use.
-- ---------------------------------------------------------------------------
CREATE TABLE loyalty.promotion_usage (
    promotion text PRIMARY KEY REFERENCES loyalty.promotion (code) ON UPDATE CASCADE ON DELETE CASCADE,
    uses      bigint NOT NULL DEFAULT 0 CHECK (uses >= 0)
);
COMMENT ON TABLE loyalty.promotion_usage IS
    'Uses of promotions with a usage_limit (purchases that applied them)';

CREATE TABLE loyalty.promotion_customer_usage (
    promotion   text NOT NULL REFERENCES loyalty.promotion (code) ON UPDATE CASCADE ON DELETE CASCADE,
    customer_id bigint NOT NULL REFERENCES loyalty.customer (id),
    uses        bigint NOT NULL DEFAULT 0 CHECK (uses >= 0),
    PRIMARY KEY (promotion, customer_id)
);
CREATE INDEX promotion_customer_usage_customer_idx
    ON loyalty.promotion_customer_usage (customer_id);
COMMENT ON TABLE loyalty.promotion_customer_usage IS
    'Uses of promotions with a per_customer_limit, per customer';

-- ---------------------------------------------------------------------------
-- Configuration cache invalidation: the engine keeps settings, stores,
-- categories, products, account types, tiers and promotions in backend
-- memory; any change to them tells every backend to reload (transactionally,
-- through a relcache invalidation of loyalty.promotion).
-- ---------------------------------------------------------------------------
CREATE FUNCTION loyalty.config_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'config_changed' LANGUAGE C;
COMMENT ON FUNCTION loyalty.config_changed() IS
    'Statement trigger on configuration tables: the check engine reloads its cache in every session';

CREATE TRIGGER config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.setting
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.config_changed();
CREATE TRIGGER config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.store
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.config_changed();
CREATE TRIGGER config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.category
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.config_changed();
CREATE TRIGGER config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.product
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.config_changed();
CREATE TRIGGER config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.account_type
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.config_changed();
CREATE TRIGGER config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.tier
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.config_changed();
CREATE TRIGGER config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.promotion
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.config_changed();

-- ---------------------------------------------------------------------------
-- The check API (SPEC §7)
-- ---------------------------------------------------------------------------
CREATE FUNCTION loyalty.calculate(request jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'loyalty_calculate'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.calculate(jsonb) IS
    'Prices a check with every active promotion, points to redeem and to earn; no side effects';

CREATE FUNCTION loyalty.purchase(request jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'loyalty_purchase'
    LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.purchase(jsonb) IS
    'Prices and commits a check (facts, points spent and earned, promotion uses); idempotent by operation_id';

CREATE FUNCTION loyalty.refund(request jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'loyalty_refund'
    LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.refund(jsonb) IS
    'Refunds some or all of what is left of a purchase: money, earned and spent points; idempotent by operation_id';

CREATE FUNCTION loyalty.catalog_prices(customer text, store text, channel text, skus text[],
                                       at timestamptz DEFAULT pg_catalog.now())
    RETURNS TABLE (sku text, price numeric, personal_price numeric, promotions text[])
    AS 'MODULE_PATHNAME', 'loyalty_catalog_prices'
    LANGUAGE C STABLE PARALLEL RESTRICTED ROWS 20
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.catalog_prices(text, text, text, text[], timestamptz) IS
    'Personal shelf prices of a page of SKUs for one unit, with single-item promotions only';

-- ---------------------------------------------------------------------------
-- pg_dump keeps segments, facts and counters
-- ---------------------------------------------------------------------------
SELECT pg_catalog.pg_extension_config_dump('loyalty.segment', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.segment_member', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.purchase', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.purchase_line', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.purchase_line_points', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.refund', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.promotion_usage', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.promotion_customer_usage', '');

-- ---------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------
REVOKE ALL ON loyalty.segment, loyalty.segment_member, loyalty.purchase,
    loyalty.purchase_line, loyalty.purchase_line_points, loyalty.refund,
    loyalty.promotion_usage, loyalty.promotion_customer_usage FROM PUBLIC;
REVOKE ALL ON FUNCTION
    loyalty.config_changed(), loyalty.calculate(jsonb), loyalty.purchase(jsonb),
    loyalty.refund(jsonb), loyalty.catalog_prices(text, text, text, text[], timestamptz)
    FROM PUBLIC;

-- cashier: the check API
GRANT EXECUTE ON FUNCTION
    loyalty.calculate(jsonb), loyalty.purchase(jsonb), loyalty.refund(jsonb),
    loyalty.catalog_prices(text, text, text, text[], timestamptz)
    TO loyalty_cashier;

-- marketer: segments are configuration; usage counters are worth watching
GRANT SELECT, INSERT, UPDATE, DELETE ON loyalty.segment, loyalty.segment_member
    TO loyalty_marketer;
GRANT SELECT ON loyalty.promotion_usage TO loyalty_marketer;
GRANT EXECUTE ON FUNCTION loyalty.calculate(jsonb),
    loyalty.catalog_prices(text, text, text, text[], timestamptz)
    TO loyalty_marketer;

-- analyst: the facts (no personal data in them)
GRANT SELECT ON loyalty.segment, loyalty.segment_member, loyalty.purchase,
    loyalty.purchase_line, loyalty.purchase_line_points, loyalty.refund,
    loyalty.promotion_usage, loyalty.promotion_customer_usage
    TO loyalty_analyst;

-- admin: everything
GRANT ALL ON loyalty.segment, loyalty.segment_member, loyalty.purchase,
    loyalty.purchase_line, loyalty.purchase_line_points, loyalty.refund,
    loyalty.promotion_usage, loyalty.promotion_customer_usage
    TO loyalty_admin;
GRANT EXECUTE ON FUNCTION
    loyalty.config_changed(), loyalty.calculate(jsonb), loyalty.purchase(jsonb),
    loyalty.refund(jsonb), loyalty.catalog_prices(text, text, text, text[], timestamptz)
    TO loyalty_admin;
