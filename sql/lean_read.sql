--
-- lean_read: one lean read per check (issue 21 item 1).  The customer's
-- row, tier and balances are one statement; their segments, uses of
-- per-customer-limited promotions and subscriptions are read only when the
-- configuration has promotions (or plans) that use them; a purchase locks
-- and reads the customer's row once.  What each call read is counted with
-- pg_stat_xact_user_tables (this transaction's scans, exact and at once).
-- Before 0.9's change every check scanned segment_member,
-- promotion_customer_usage and subscription once each, and a purchase
-- scanned the customer table twice more (its load after the lock).
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('A', 'Cream', 'all', 100.00);
INSERT INTO loyalty.account_type (code, name, redeem_share, lifetime) VALUES ('main', 'Bonus points', 1, '1 year');
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES ('base', 'Base', 1, 0, 10);
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('A10', '10% off A', 'percent_off', '{"products": {"skus": ["A"]}, "percent": 10}');
SELECT loyalty.register('+79120000001') AS anna;
SELECT loyalty.adjust('{"operation_id": "w-1", "customer": "id:1", "account": "main", "points": 30, "reason": "welcome"}') ->> 'points' AS granted;
INSERT INTO loyalty.segment (code, name) VALUES ('vip', 'VIP');
INSERT INTO loyalty.segment_member (segment, customer_id) VALUES ('vip', 1);

-- scans counts this backend's scans of the tables a customer's read may
-- touch not yet sent to the statistics (pg_stat_xact_user_tables); mark
-- keeps the counts, read tells which tables were scanned since
CREATE FUNCTION pg_temp.counts() RETURNS TABLE (relname name, n bigint)
LANGUAGE sql AS $$
    SELECT relname, coalesce(seq_scan, 0) + coalesce(idx_scan, 0)
      FROM pg_stat_xact_user_tables
     WHERE schemaname = 'loyalty'
       AND relname IN ('segment_member', 'promotion_customer_usage', 'subscription', 'customer')
$$;
CREATE TEMP TABLE marked (relname name, n bigint);
CREATE FUNCTION pg_temp.mark() RETURNS void LANGUAGE sql AS $$
    DELETE FROM marked;
    INSERT INTO marked SELECT * FROM pg_temp.counts();
$$;
CREATE FUNCTION pg_temp.scans() RETURNS TABLE (relname name, scans bigint)
LANGUAGE sql AS $$
    SELECT c.relname, c.n - coalesce(m.n, 0)
      FROM pg_temp.counts() c LEFT JOIN marked m USING (relname)
     ORDER BY c.relname
$$;

-- the cache is built outside the transactions counted
SELECT loyalty.calculate('{"customer": 1, "lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'total' AS warm;

-- no promotion names a segment or has a per-customer limit, no plans: a
-- calculate reads none of the three (it read each before) and scans the
-- customer table twice (the row named, the row holding the points)
BEGIN;
SELECT pg_temp.mark();
SELECT loyalty.calculate('{"customer": 1, "redeem": "max", "lines": [{"sku": "A", "qty": 1}]}') -> 'redeem' ->> 'applied' AS redeemed;
SELECT * FROM pg_temp.scans();
COMMIT;

-- a purchase by id scans the customer table 4 times: the locking read's two
-- (the row named, the row holding the points) and two by the writes that
-- follow (foreign keys, the tier); the row is not read again after the
-- lock (it was: two scans more, 6)
BEGIN;
SELECT pg_temp.mark();
SELECT loyalty.purchase('{"operation_id": "P-1", "customer": 1, "lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'total' AS total;
SELECT * FROM pg_temp.scans();
COMMIT;

-- a promotion for a segment: now the segments are read, and they apply
INSERT INTO loyalty.promotion (code, name, mechanic, rule, segments) VALUES
    ('VIP5', 'VIP 5% off', 'percent_off', '{"products": {"all": true}, "percent": 5}', '{vip}');
SELECT loyalty.calculate('{"customer": 1, "lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'total' AS warm;
BEGIN;
SELECT pg_temp.mark();
SELECT loyalty.calculate('{"customer": 1, "lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'discount' AS discount_10_and_5;
SELECT * FROM pg_temp.scans();
COMMIT;

-- a per-customer limit: the customer's uses are read too
UPDATE loyalty.promotion SET per_customer_limit = 1 WHERE code = 'VIP5';
SELECT loyalty.purchase('{"operation_id": "P-2", "customer": 1, "lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'discount' AS first_use;
BEGIN;
SELECT pg_temp.mark();
SELECT loyalty.purchase('{"operation_id": "P-3", "customer": 1, "lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'discount' AS limit_reached;
SELECT * FROM pg_temp.scans();
COMMIT;
