--
-- check_cache: the engine caches configuration in backend memory; every
-- change to a configuration table is seen by the next call (here: in the
-- same session, and after a rollback; across sessions: the isolation spec
-- config_cache).  Also loyalty.catalog_prices, the personal shelf prices.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
-- the checks' dates are the server's time (loyalty.test_now, issue 14 item 4)
SET loyalty.test_now = 'at';

INSERT INTO loyalty.store (code, name, region, timezone, channel) VALUES ('S1', 'Store one', 'north', 'Europe/Moscow', 'pos');
INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything'), ('face', 'all', 'Face');
INSERT INTO loyalty.product (sku, name, category, price, min_price) VALUES
    ('A', 'Cream', 'face', 200.00, NULL), ('B', 'Soap', 'all', 100.00, 95.00), ('C', 'No price', 'all', NULL, NULL);
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('FACE10', '10% off face care', 'percent_off', '{"products": {"categories": ["face"]}, "percent": 10}');
SELECT loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'total' AS total;

-- every kind of configuration change is seen by the next call
UPDATE loyalty.promotion SET rule = '{"products": {"categories": ["face"]}, "percent": 20}';
SELECT loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'total' AS total;
UPDATE loyalty.product SET category = 'all' WHERE sku = 'A';
SELECT loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'total' AS total;
INSERT INTO loyalty.category (code, parent, name) VALUES ('serum', 'face', 'Serums');
UPDATE loyalty.product SET category = 'serum' WHERE sku = 'A';
SELECT loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'total' AS total;
INSERT INTO loyalty.store (code, name, timezone, channel) VALUES ('S2', 'Store two', 'Asia/Tokyo', 'web');
SELECT loyalty.calculate('{"store": "S2", "lines": [{"sku": "A", "qty": 1}]}') ->> 'channel' AS channel;
UPDATE loyalty.promotion SET enabled = false;
SELECT loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'total' AS total;

-- a change rolled back is forgotten, even by the session that made it
BEGIN;
UPDATE loyalty.promotion SET enabled = true;
SELECT loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'total' AS inside;
ROLLBACK;
SELECT loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'total' AS after_rollback;
UPDATE loyalty.promotion SET enabled = true;
SET client_min_messages = warning;
TRUNCATE loyalty.promotion CASCADE;
RESET client_min_messages;
SELECT loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'total' AS after_truncate;

-- catalog_prices: one unit of each SKU, single-item promotions only
INSERT INTO loyalty.tier (code, name, rank, threshold, discount_percent) VALUES ('base', 'Base', 1, 0, 3), ('vip', 'VIP', 2, 10000, 10);
SELECT loyalty.register('+79120000001') AS vip;
UPDATE loyalty.customer SET tier = 'vip' WHERE id = 1;
INSERT INTO loyalty.promotion (code, name, mechanic, rule, priority, channels, starts_at) VALUES
    ('ALL5', '5% off', 'percent_off', '{"products": {"all": true}, "percent": 5}', 10, NULL, NULL),
    ('TIER', 'Tier discount', 'tier_discount', '{}', 20, NULL, NULL),
    ('WEB50', '50.00 off online', 'amount_off', '{"products": {"skus": ["A"]}, "amount": 50}', 30, '{web}', '2025-01-01'),
    ('SECOND', 'Second at half price', 'nth_item', '{"n": 2, "percent": 50}', 40, NULL, NULL),
    ('CHECK', 'Check discount', 'check_discount', '{"steps": [{"min_total": 0, "amount": 10}]}', 50, NULL, NULL);
-- anonymous: only single-item promotions (not nth_item, not check_discount); floors hold
SELECT * FROM loyalty.catalog_prices(NULL, 'S1', NULL, ARRAY['A', 'B', 'C', 'NOPE']);
-- a VIP customer online: the tier discount and the online offer too
SELECT * FROM loyalty.catalog_prices('+79120000001', 'S1', 'web', ARRAY['A', 'B']);
-- before the online offer started
SELECT * FROM loyalty.catalog_prices('+79120000001', 'S1', 'web', ARRAY['A'], '2020-01-01 00:00+00');
