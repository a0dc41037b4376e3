--
-- check_percent: line and check discounts (SPEC sections 2 and 5) with
-- exact numbers: percent_off, amount_off, check_discount, tier_discount,
-- floors, no_discount products and unknown SKUs.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

-- one line per row: money, fiscal parts and the promotions that changed it
CREATE FUNCTION pg_temp.lines(r jsonb)
RETURNS TABLE (i int, sku text, qty numeric, amount numeric, discount numeric,
               total numeric, parts text, promotions text)
LANGUAGE sql AS $$
    SELECT (l ->> 'index')::int, l ->> 'sku', (l ->> 'qty')::numeric,
           (l ->> 'amount')::numeric, (l ->> 'discount')::numeric, (l ->> 'total')::numeric,
           (SELECT string_agg((p ->> 'qty') || ' x ' || (p ->> 'price'), ' + ')
              FROM jsonb_array_elements(l -> 'parts') p),
           (SELECT string_agg((p ->> 'code') || ' -' || (p ->> 'discount'), ', ')
              FROM jsonb_array_elements(l -> 'promotions') p)
      FROM jsonb_array_elements(r -> 'lines') l
$$;

INSERT INTO loyalty.store (code, name, region, timezone, channel) VALUES
    ('S1', 'Store one', 'north', 'Europe/Moscow', 'pos');
INSERT INTO loyalty.category (code, parent, name) VALUES
    ('all', NULL, 'Everything'), ('cosmetics', 'all', 'Cosmetics'),
    ('face', 'cosmetics', 'Face'), ('food', 'all', 'Food');
INSERT INTO loyalty.product (sku, name, category, brand, price, min_price, no_discount) VALUES
    ('A1', 'Day cream', 'face', 'Natura', 199.90, NULL, false),
    ('A2', 'Night cream', 'face', 'Natura', 249.00, NULL, false),
    ('B1', 'Shampoo', 'cosmetics', 'Clean', 100.00, NULL, false),
    ('F1', 'Apples, kg', 'food', NULL, 89.90, NULL, false),
    ('FLOOR', 'Medicine with a floor', 'all', NULL, 612.00, 550.00, false),
    ('TOB', 'Tobacco', 'all', NULL, 200.00, NULL, true),
    ('X1', 'Thing', 'all', NULL, 1000.00, NULL, false),
    ('X2', 'Thing 2', 'all', NULL, 100.00, NULL, false);

-- percent_off on a category (its subcategories included): 30% of 399.80
INSERT INTO loyalty.promotion (code, name, mechanic, rule, priority) VALUES
    ('COSM30', '30% off cosmetics', 'percent_off',
     '{"products": {"categories": ["cosmetics"]}, "percent": 30}', 10);
SELECT * FROM pg_temp.lines(loyalty.calculate(
    '{"store": "S1", "lines": [{"sku": "A1", "qty": 2, "price": 199.90},
                               {"sku": "F1", "qty": 1.5, "price": 89.90}]}'));
-- the response carries totals that add up
SELECT loyalty.calculate('{"store": "S1", "lines": [{"sku": "A1", "qty": 2, "price": 199.90}]}') -> 'totals' AS totals;

-- a SKU the catalog does not know is priced as sent, without promotions, with a warning
SELECT r -> 'totals' ->> 'total' AS total, r -> 'warnings' AS warnings
  FROM loyalty.calculate('{"lines": [{"sku": "NEW-1", "qty": 1, "price": 50.00},
                                     {"sku": "A1", "qty": 1}]}') AS r;
-- a missing price takes the catalog's
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "A2", "qty": 1}]}'));

-- no_discount products are never discounted; min_price is a floor per unit
UPDATE loyalty.promotion SET rule = '{"products": {"all": true}, "percent": 30}' WHERE code = 'COSM30';
SELECT * FROM pg_temp.lines(loyalty.calculate(
    '{"lines": [{"sku": "TOB", "qty": 1}, {"sku": "FLOOR", "qty": 2}, {"sku": "B1", "qty": 1}]}'));
DELETE FROM loyalty.promotion;

-- SPEC example: 1000 with -100, then -10%, then -20% gives 648.00
INSERT INTO loyalty.promotion (code, name, mechanic, rule, priority) VALUES
    ('P1_MINUS100', 'minus 100', 'amount_off', '{"products": {"skus": ["X1"]}, "amount": 100, "per": "line"}', 1),
    ('P2_MINUS10PCT', 'minus 10%', 'percent_off', '{"products": {"all": true}, "percent": 10}', 2),
    ('P3_MINUS20PCT', 'minus 20%', 'percent_off', '{"products": {"all": true}, "percent": 20}', 3);
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "X1", "qty": 1}]}'));
DELETE FROM loyalty.promotion;

-- amount_off per unit (times the quantity, weighed goods too) and per line
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('UNIT5', '5.00 off each unit', 'amount_off', '{"products": {"skus": ["B1", "F1"]}, "amount": 5}'),
    ('LINE50', '50.00 off a line', 'amount_off', '{"products": {"skus": ["A2"]}, "amount": 50, "per": "line"}');
SELECT * FROM pg_temp.lines(loyalty.calculate(
    '{"lines": [{"sku": "B1", "qty": 3}, {"sku": "F1", "qty": 0.755}, {"sku": "A2", "qty": 2}]}'));
-- an amount larger than the line stops at zero
UPDATE loyalty.promotion SET rule = '{"products": {"skus": ["B1"]}, "amount": 150}' WHERE code = 'UNIT5';
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "B1", "qty": 1}]}'));
DELETE FROM loyalty.promotion;

-- check_discount, amount: 10.00 over three 100.00 lines gives 3.34/3.33/3.33
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('CHECK10', '10.00 off the check', 'check_discount', '{"steps": [{"min_total": 0, "amount": 10}]}');
SELECT * FROM pg_temp.lines(loyalty.calculate(
    '{"lines": [{"sku": "X2", "qty": 1}, {"sku": "X2", "qty": 1}, {"sku": "X2", "qty": 1}]}'));
-- 15.00 over lines of 22, 14, 43, 7.50 and 0: exactly 15.00, the zero line untouched
UPDATE loyalty.promotion SET rule = '{"steps": [{"min_total": 0, "amount": 15}]}';
SELECT *, sum(discount) OVER () AS check_discount FROM pg_temp.lines(loyalty.calculate(
    '{"lines": [{"sku": "Q1", "qty": 1, "price": 22}, {"sku": "Q2", "qty": 1, "price": 14},
                {"sku": "Q3", "qty": 1, "price": 43}, {"sku": "Q4", "qty": 1, "price": 7.50},
                {"sku": "Q5", "qty": 1, "price": 0}]}'));
-- a floor stops its line; the rest of the amount moves on to the other lines
UPDATE loyalty.promotion SET rule = '{"steps": [{"min_total": 0, "amount": 100}]}';
SELECT * FROM pg_temp.lines(loyalty.calculate(
    '{"lines": [{"sku": "FLOOR", "qty": 1, "price": 560}, {"sku": "X2", "qty": 1}]}'));

-- steps: the best step the check reaches
UPDATE loyalty.promotion SET rule =
    '{"steps": [{"min_total": 1000, "percent": 10}, {"min_total": 2000, "amount": 300}]}';
SELECT r -> 'totals' ->> 'amount' AS amount, r -> 'totals' ->> 'discount' AS discount
  FROM (VALUES ('{"lines": [{"sku": "X2", "qty": 9.99}]}'::jsonb),
               ('{"lines": [{"sku": "X2", "qty": 10}]}'),
               ('{"lines": [{"sku": "X2", "qty": 19.99}]}'),
               ('{"lines": [{"sku": "X2", "qty": 20}]}')) AS t(req),
       LATERAL loyalty.calculate(req) AS r;
DELETE FROM loyalty.promotion;

-- tier_discount: the customer's tier discount_percent
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent, discount_percent) VALUES
    ('base', 'Base', 1, 0, 0, 3), ('vip', 'VIP', 2, 10000, 0, 15);
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('TIER', 'Tier discount', 'tier_discount', '{}');
SELECT loyalty.register('+79120000001') AS anna, loyalty.register('+79120000002') AS boris;
UPDATE loyalty.customer SET tier = 'vip' WHERE id = 2;
SELECT r -> 'customer' AS customer, r -> 'totals' ->> 'discount' AS discount
  FROM (VALUES ('{"lines": [{"sku": "X1", "qty": 1}]}'::jsonb),
               ('{"customer": "+79120000001", "lines": [{"sku": "X1", "qty": 1}]}'),
               ('{"customer": 2, "lines": [{"sku": "X1", "qty": 1}]}')) AS t(req),
       LATERAL loyalty.calculate(req) AS r;
