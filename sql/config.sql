--
-- Program configuration: plain tables, validated on write.
--
-- Simple ranges are CHECK constraints (SQLSTATE 23514); a setting or a
-- category that makes no sense is LY006 with the field named in DETAIL.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET datestyle = 'ISO, YMD';
SET intervalstyle = postgres;

-- settings: defaults come from the extension, the table holds what is set
SELECT key, value, is_set FROM loyalty.settings ORDER BY key;
INSERT INTO loyalty.setting VALUES ('points_precision', '2'), ('timezone', 'Asia/Yekaterinburg');
SELECT loyalty.setting_value('points_precision') AS points_precision,
       loyalty.setting_value('timezone') AS timezone,
       loyalty.setting_value('currency') AS currency,
       loyalty.setting_value('no_such_key') IS NULL AS unknown_is_null;

-- a malformed setting is refused, naming the field and what it must be
INSERT INTO loyalty.setting VALUES ('points_precision', '1');
INSERT INTO loyalty.setting VALUES ('timezone', 'Mars/Olympus');
INSERT INTO loyalty.setting VALUES ('point_value', '0.005');
INSERT INTO loyalty.setting VALUES ('tier_window', 'forever');
INSERT INTO loyalty.setting VALUES ('tier_window', 'previous_month');
-- an unknown key
INSERT INTO loyalty.setting VALUES ('curency', 'RUB');
-- the SQLSTATE of a configuration error
DO $$
BEGIN
    INSERT INTO loyalty.setting VALUES ('currency', 'rub');
EXCEPTION WHEN SQLSTATE 'LY006' THEN
    RAISE NOTICE 'LY006: %', SQLERRM;
END
$$;

-- stores: channel and time zone are checked
INSERT INTO loyalty.store (code, name, region, timezone, channel) VALUES
    ('S017', 'Izhevsk', 'udmurtia', 'Europe/Samara', 'pos'),
    ('WEB', 'Online', NULL, NULL, 'web');
INSERT INTO loyalty.store (code, name, channel) VALUES ('S2', 'Kiosk', 'kiosk');
INSERT INTO loyalty.store (code, name, timezone) VALUES ('S3', 'Nowhere', 'Europe/Atlantis');

-- the category tree: no cycles
INSERT INTO loyalty.category (code, parent, name) VALUES
    ('all', NULL, 'All'), ('cosmetics', 'all', 'Cosmetics'), ('face', 'cosmetics', 'Face');
UPDATE loyalty.category SET parent = 'face' WHERE code = 'all';
UPDATE loyalty.category SET parent = 'face' WHERE code = 'face';
INSERT INTO loyalty.category (code, parent, name) VALUES ('x', 'nope', 'X');

-- products: money has at most 2 decimals, a floor is not above the price
INSERT INTO loyalty.product (sku, name, category, price, min_price) VALUES
    ('A1', 'Day cream', 'face', 199.90, NULL),
    ('A2', 'Night cream', 'face', 249.00, 200.00);
INSERT INTO loyalty.product (sku, name, price) VALUES ('B1', 'Too precise', 10.005);
INSERT INTO loyalty.product (sku, name, price) VALUES ('B2', 'Negative', -1);
INSERT INTO loyalty.product (sku, name, price, min_price) VALUES ('B3', 'Floor above price', 10, 20);
SELECT sku, price, min_price, no_discount, no_points, no_redeem, tags FROM loyalty.product ORDER BY sku;

-- account types: a share is between 0 and 1, intervals are positive
INSERT INTO loyalty.account_type (code, name, redeem_share, lifetime, activation_delay) VALUES
    ('main', 'Bonus points', 0.9, '1 year', '24 hours'),
    ('promo', 'Promo points', 0.3, NULL, '0');
INSERT INTO loyalty.account_type (code, name, redeem_share) VALUES ('bad', 'Share above 1', 1.5);
INSERT INTO loyalty.account_type (code, name, lifetime) VALUES ('bad', 'Negative life', '-1 day');
INSERT INTO loyalty.account_type (code, name, min_check) VALUES ('bad', 'Fractional kopeck', 0.001);
SELECT code, redeem_share, min_check, lifetime, activation_delay, redeem_order
  FROM loyalty.account_type ORDER BY code;

-- tiers: ranks are unique, percents within 0..100
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES
    ('standard', 'Standart', 1, 0, 5), ('gold', 'Gold', 2, 15000, 10), ('platinum', 'Platinum', 3, 50000, 15);
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES ('vip', 'VIP', 3, 90000, 20);
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES ('vip', 'VIP', 4, 90000, 120);
SELECT code, rank, threshold, accrual_percent, discount_percent FROM loyalty.tier ORDER BY rank;

-- every configuration table is kept by pg_dump
SELECT c.relname
  FROM pg_extension e, unnest(e.extconfig) AS cfg(oid)
  JOIN pg_class c ON c.oid = cfg.oid
 WHERE e.extname = 'loyalty'
 ORDER BY 1;
