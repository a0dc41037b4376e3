--
-- check_points: redemption and accrual (SPEC sections 2, 5 and 7): base
-- accrual by tier, points_percent (percent and multiplier), points_fixed,
-- rounding down per check and account, redeem "max" and numbers, shares
-- and min_check of accounts, no_points and no_redeem products.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

CREATE FUNCTION pg_temp.lines(r jsonb)
RETURNS TABLE (i int, sku text, amount numeric, discount numeric, redeemed numeric,
               total numeric, accrual jsonb)
LANGUAGE sql AS $$
    SELECT (l ->> 'index')::int, l ->> 'sku', (l ->> 'amount')::numeric,
           (l ->> 'discount')::numeric, (l ->> 'redeemed')::numeric,
           (l ->> 'total')::numeric, l -> 'accrual'
      FROM jsonb_array_elements(r -> 'lines') l
$$;

INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, brand, price, no_points, no_redeem) VALUES
    ('A', 'Cream', 'all', 'Natura', 279.86, false, false),
    ('B', 'Soap', 'all', 'Clean', 100.00, false, false),
    ('CIG', 'Nicotine patches', 'all', NULL, 940.00, true, true);
INSERT INTO loyalty.account_type (code, name, redeem_share, min_check, lifetime, activation_delay, redeem_order) VALUES
    ('main', 'Bonus points', 0.9, 0, '1 year', '0', 100),
    ('promo', 'Promo points', 0.3, 2000, NULL, '0', 10);
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES
    ('standard', 'Standard', 1, 0, 5), ('gold', 'Gold', 2, 15000, 10);
SELECT loyalty.register('+79120000001') AS anna;
UPDATE loyalty.customer SET tier = 'gold' WHERE id = 1;

-- gold earns 10% of the paid money, rounded down per check: 27.986 -> 27
SELECT * FROM pg_temp.lines(loyalty.calculate('{"customer": 1, "lines": [{"sku": "A", "qty": 1}]}'));
-- spread back over the lines by largest remainder; no_points lines earn nothing
SELECT * FROM pg_temp.lines(loyalty.calculate(
    '{"customer": 1, "lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 1}, {"sku": "CIG", "qty": 1}]}'));
-- anonymous checks earn nothing
SELECT loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}]}') -> 'totals' -> 'accrual' AS accrual;

-- points_percent: +5% into promo on a brand; a multiplier on the base accrual
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('NATURA5', '5% more on Natura', 'points_percent',
     '{"products": {"brands": ["Natura"]}, "percent": 5, "account": "promo"}'),
    ('SOAPX3', 'Triple points on soap', 'points_percent', '{"products": {"skus": ["B"]}, "multiplier": 3}');
SELECT * FROM pg_temp.lines(loyalty.calculate(
    '{"customer": 1, "lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 1}]}'));
SELECT r -> 'totals' -> 'accrual' AS accrual, r -> 'promotions' AS promotions
  FROM loyalty.calculate('{"customer": 1, "lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 1}]}') r;
DELETE FROM loyalty.promotion;

-- points_fixed: 1000 promo points for checks from 2000, expiring at the end
-- of the month; the threshold is read at the promotion's turn
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('BIG1000', '1000 points from 2000', 'points_fixed',
     '{"min_total": 2000, "points": 1000, "account": "promo", "expires": "end_of_month"}');
SELECT r -> 'totals' -> 'accrual' AS accrual
  FROM (VALUES ('{"customer": 1, "lines": [{"sku": "B", "qty": 19.99}]}'::jsonb),
               ('{"customer": 1, "lines": [{"sku": "B", "qty": 20}]}')) AS t(req),
       LATERAL loyalty.calculate(req) r;
DELETE FROM loyalty.promotion;

-- redemption: 500 points on main, 300 on promo
SELECT loyalty.adjust('{"operation_id": "g1", "customer": "id:1", "account": "main", "points": 500, "reason": "gift"}') ->> 'points' AS main,
       loyalty.adjust('{"operation_id": "g2", "customer": "id:1", "account": "promo", "points": 300, "reason": "gift"}') ->> 'points' AS promo;
-- "max": main pays up to 90% of each line; promo needs a check of 2000
SELECT r -> 'redeem' AS redeem, r -> 'totals' AS totals
  FROM loyalty.calculate('{"customer": 1, "redeem": "max", "lines": [{"sku": "A", "qty": 1}, {"sku": "CIG", "qty": 1}]}') r;
SELECT * FROM pg_temp.lines(loyalty.calculate(
    '{"customer": 1, "redeem": "max", "lines": [{"sku": "A", "qty": 1}, {"sku": "CIG", "qty": 1}]}'));
-- from 2000 promo points go first (redeem_order), up to 30% of each line
SELECT r -> 'redeem' AS redeem, r -> 'totals' ->> 'total' AS total
  FROM loyalty.calculate('{"customer": 1, "redeem": "max", "lines": [{"sku": "B", "qty": 25}]}') r;
-- a number: calculate applies min(requested, max) and reports both
SELECT r -> 'redeem' AS redeem
  FROM (VALUES ('{"customer": 1, "redeem": 100, "lines": [{"sku": "A", "qty": 1}]}'::jsonb),
               ('{"customer": 1, "redeem": 10000, "lines": [{"sku": "A", "qty": 1}]}'),
               ('{"customer": 1, "redeem": 0, "lines": [{"sku": "A", "qty": 1}]}')) AS t(req),
       LATERAL loyalty.calculate(req) r;
-- points spent earn no points: accrual on what is paid in money
SELECT r -> 'totals' AS totals
  FROM loyalty.calculate('{"customer": 1, "redeem": 100, "lines": [{"sku": "A", "qty": 1}]}') r;
-- the balance comes with every identified response
SELECT loyalty.calculate('{"customer": 1, "lines": [{"sku": "A", "qty": 1}]}') -> 'balance' AS balance;

-- points precision 2: hundredths of a point
INSERT INTO loyalty.setting (key, value) VALUES ('points_precision', '2');
SELECT * FROM pg_temp.lines(loyalty.calculate(
    '{"customer": 1, "lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 1}]}'));
SELECT loyalty.calculate('{"customer": 1, "redeem": 10.55, "lines": [{"sku": "A", "qty": 1}]}') -> 'redeem' AS redeem;
