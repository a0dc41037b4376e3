--
-- config_replication: a shard subscribed to a configuration master (issue 20
-- item 6).  A logical replication apply worker runs with
-- session_replication_role = replica: statement triggers and the internal
-- foreign key triggers do not fire there, only row triggers enabled REPLICA
-- or ALWAYS.  This session plays the apply worker by setting that role, so
-- the replicated-change paths are tested on one node (scripts/test.sh
-- replication runs the real thing on two clusters).  And config_digest:
-- it changes when a row that prices a check changes, and not otherwise.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

INSERT INTO loyalty.store (code, name, region, timezone, channel) VALUES ('S1', 'Store one', 'north', 'UTC', 'pos');
INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('A1', 'Thing', 'all', 1000.00);
INSERT INTO loyalty.account_type (code, name, redeem_share) VALUES ('main', 'Points', 0.5);
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES
    ('standard', 'Standard', 1, 0, 5), ('gold', 'Gold', 2, 15000, 10);
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('TEN', '10% off', 'percent_off', '{"products": {"all": true}, "percent": 10}');
SELECT loyalty.register('+79120000001') AS anna;
UPDATE loyalty.customer SET tier = 'gold' WHERE id = 1;

-- the tables a configuration master publishes
SELECT string_agg(t::text, ', ') AS published FROM loyalty.config_tables() t;

-- the digest: one md5 over eleven parts
SELECT part, rows FROM loyalty.config_digest_parts() ORDER BY part;
SELECT length(loyalty.config_digest()) AS md5_length,
       loyalty.config_digest() = loyalty.config_digest() AS stable;
CREATE TEMP TABLE d AS SELECT loyalty.config_digest() AS d0;

-- not changed by what does not price a check: customers, points, messages,
-- RFM thresholds (per-node data), the session's time zone and styles, a
-- setting written with its default value (the effective value is the same)
SELECT loyalty.register('+79120000002') IS NOT NULL AS registered;
SELECT loyalty.adjust('{"operation_id": "G1", "customer": "+79120000002", "account": "main",
                        "points": 50, "reason": "test"}') IS NOT NULL AS adjusted;
INSERT INTO loyalty.message_template (kind, locale, template)
VALUES ('points_earned', 'en', '{points} points');
INSERT INTO loyalty.rfm_threshold (dimension, score, lower, upper) VALUES ('f', 1, NULL, 1);
INSERT INTO loyalty.setting (key, value) VALUES ('currency', 'RUB');
SET timezone = 'America/New_York';
SET datestyle = 'SQL, DMY';
SET intervalstyle = 'iso_8601';
SELECT loyalty.config_digest() = d0 AS unchanged FROM d;
RESET intervalstyle;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

-- changed by a pricing row, and back when the row is back
UPDATE loyalty.promotion SET rule = '{"products": {"all": true}, "percent": 20}' WHERE code = 'TEN';
SELECT loyalty.config_digest() <> d0 AS promotion_changes_it FROM d;
UPDATE loyalty.promotion SET rule = '{"products": {"all": true}, "percent": 10}' WHERE code = 'TEN';
SELECT loyalty.config_digest() = d0 AS back_again FROM d;
UPDATE loyalty.setting SET value = 'EUR' WHERE key = 'currency';
SELECT loyalty.config_digest() <> d0 AS setting_changes_it FROM d;
DELETE FROM loyalty.setting;
UPDATE loyalty.product SET price = 999.00 WHERE sku = 'A1';
SELECT loyalty.config_digest() <> d0 AS price_changes_it FROM d;
UPDATE loyalty.product SET price = 1000.00 WHERE sku = 'A1';
UPDATE loyalty.tier SET accrual_percent = 11 WHERE code = 'gold';
SELECT loyalty.config_digest() <> d0 AS tier_changes_it FROM d;
UPDATE loyalty.tier SET accrual_percent = 10 WHERE code = 'gold';
SELECT loyalty.config_digest() = d0 AS back_again FROM d;

-- ---------------------------------------------------------------------
-- As the apply worker: the engine's cache follows a replicated change.
-- 1000.00 with 10% off is 900.00; after the replicated update, 20% off:
-- 800.00 in the same session (before issue 20 the statement trigger did
-- not fire here and the session kept pricing 900.00)
-- ---------------------------------------------------------------------
SELECT loyalty.calculate('{"store": "S1", "lines": [{"sku": "A1", "qty": 1, "price": 1000.00}]}') -> 'totals' ->> 'total' AS total;
SET session_replication_role = replica;
UPDATE loyalty.promotion SET rule = '{"products": {"all": true}, "percent": 20}' WHERE code = 'TEN';
SELECT loyalty.calculate('{"store": "S1", "lines": [{"sku": "A1", "qty": 1, "price": 1000.00}]}') -> 'totals' ->> 'total' AS total;
-- a replicated insert and delete too: 5% more off with a second promotion
-- (20% then 5% of 800.00 = 40.00: 760.00), then gone again
INSERT INTO loyalty.promotion (code, name, mechanic, rule, priority) VALUES
    ('FIVE', '5% off', 'percent_off', '{"products": {"all": true}, "percent": 5}', 200);
SELECT loyalty.calculate('{"store": "S1", "lines": [{"sku": "A1", "qty": 1, "price": 1000.00}]}') -> 'totals' ->> 'total' AS total;
DELETE FROM loyalty.promotion WHERE code = 'FIVE';
SELECT loyalty.calculate('{"store": "S1", "lines": [{"sku": "A1", "qty": 1, "price": 1000.00}]}') -> 'totals' ->> 'total' AS total;
-- a replicated TRUNCATE (the statement trigger, enabled ALWAYS): A1 is
-- now an unknown SKU, priced as sent without product promotions: 1000.00
TRUNCATE loyalty.product;
SELECT loyalty.calculate('{"store": "S1", "lines": [{"sku": "A1", "qty": 1, "price": 1000.00}]}') -> 'totals' ->> 'total' AS total;
RESET session_replication_role;
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('A1', 'Thing', 'all', 1000.00);

-- ---------------------------------------------------------------------
-- As the apply worker: a renamed key the shard's rows reference.  On one
-- node the foreign key cascades; on a subscriber it does not (internal
-- triggers), so config_replica_follow does the same.  Before issue 20
-- Anna was left in tier "gold" that no longer existed.
-- ---------------------------------------------------------------------
SET session_replication_role = replica;
UPDATE loyalty.tier SET code = 'gold2' WHERE code = 'gold';
SELECT id, tier FROM loyalty.customer ORDER BY id;
-- a deleted tier: ON DELETE SET NULL
DELETE FROM loyalty.tier WHERE code = 'gold2';
SELECT id, tier FROM loyalty.customer ORDER BY id;
RESET session_replication_role;

-- a renamed promotion carries its usage counters (the promotion-wide one
-- by its foreign key, the per-customer one by promotion_usage_follow)
INSERT INTO loyalty.promotion_usage (promotion, uses, given) VALUES ('TEN', 3, 300);
INSERT INTO loyalty.promotion_customer_usage (promotion, customer_id, uses) VALUES ('TEN', 1, 2);
SET session_replication_role = replica;
UPDATE loyalty.promotion SET code = 'TEN2' WHERE code = 'TEN';
SELECT promotion, uses, given FROM loyalty.promotion_usage;
SELECT promotion, customer_id, uses FROM loyalty.promotion_customer_usage;
-- a deleted promotion: its counters go (ON DELETE CASCADE)
DELETE FROM loyalty.promotion WHERE code = 'TEN2';
SELECT count(*) AS usage_rows FROM loyalty.promotion_usage;
SELECT count(*) AS customer_usage_rows FROM loyalty.promotion_customer_usage;

-- a key that may not go while the shard's rows use it: the lots of account
-- "main" (no action on one node: an error; here the apply worker stops
-- with this error and retries until the rows are gone)
\set VERBOSITY default
DELETE FROM loyalty.account_type WHERE code = 'main';
\set VERBOSITY terse
SELECT count(*) AS account_types FROM loyalty.account_type;
RESET session_replication_role;

-- outside replica mode nothing of this fires twice: a rename on the master
-- (or one node) cascades once, by the foreign key
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES ('silver', 'Silver', 3, 5000, 7);
UPDATE loyalty.customer SET tier = 'silver' WHERE id = 2;
UPDATE loyalty.tier SET code = 'silver2' WHERE code = 'silver';
SELECT id, tier FROM loyalty.customer ORDER BY id;
-- triggers as enabled: O origin, A always, R replica
SELECT c.relname, t.tgname, t.tgenabled
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = 'loyalty'::regnamespace AND NOT t.tgisinternal AND t.tgenabled <> 'O'
 ORDER BY 1, 2;
