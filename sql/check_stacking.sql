--
-- check_stacking: order and stacking of promotions (SPEC section 5):
-- priority then code, sequential application, thresholds read at each
-- promotion's turn, exclusive, groups (the best member wins).
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

CREATE FUNCTION pg_temp.lines(r jsonb)
RETURNS TABLE (i int, sku text, amount numeric, discount numeric, total numeric, promotions text)
LANGUAGE sql AS $$
    SELECT (l ->> 'index')::int, l ->> 'sku', (l ->> 'amount')::numeric,
           (l ->> 'discount')::numeric, (l ->> 'total')::numeric,
           (SELECT string_agg((p ->> 'code') || ' -' || (p ->> 'discount'), ', ')
              FROM jsonb_array_elements(l -> 'promotions') p)
      FROM jsonb_array_elements(r -> 'lines') l
$$;

INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES
    ('A', 'Thing A', 'all', 1000.00), ('B', 'Thing B', 'all', 500.00),
    ('C', 'Thing C', 'all', 40.00), ('D', 'Thing D', 'all', 2000.00);

-- same priority: the code decides (bytewise); priority wins over the code
INSERT INTO loyalty.promotion (code, name, mechanic, rule, priority) VALUES
    ('ZZ_AMOUNT', 'minus 100', 'amount_off', '{"products": {"all": true}, "amount": 100, "per": "line"}', 5),
    ('AA_PCT', 'minus 10%', 'percent_off', '{"products": {"all": true}, "percent": 10}', 5),
    ('FIRST', 'minus 50%', 'percent_off', '{"products": {"skus": ["B"]}, "percent": 50}', 1);
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 1}]}'));
-- the response lists the promotions in the order they were applied
SELECT p ->> 'code' AS code, p ->> 'discount' AS discount
  FROM jsonb_array_elements(loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 1}]}') -> 'promotions') p;
DELETE FROM loyalty.promotion;

-- thresholds are read on the check as earlier promotions left it:
-- 1100.00 less 20% is 880.00, below the check discount's 1000.00
INSERT INTO loyalty.promotion (code, name, mechanic, rule, priority) VALUES
    ('SALE20', 'minus 20%', 'percent_off', '{"products": {"all": true}, "percent": 20}', 10),
    ('FROM1000', '10% from 1000', 'check_discount', '{"steps": [{"min_total": 1000, "percent": 10}]}', 20);
SELECT r -> 'totals' ->> 'discount' AS discount, r -> 'totals' ->> 'total' AS total
  FROM loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}, {"sku": "Q", "qty": 1, "price": 100}]}') r;
-- ... and the other way round when the check discount comes first
UPDATE loyalty.promotion SET priority = 5 WHERE code = 'FROM1000';
SELECT r -> 'totals' ->> 'discount' AS discount, r -> 'totals' ->> 'total' AS total
  FROM loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}, {"sku": "Q", "qty": 1, "price": 100}]}') r;
DELETE FROM loyalty.promotion;

-- exclusive: a line it discounts takes no later discount, and it does not
-- touch a line an earlier promotion discounted
INSERT INTO loyalty.promotion (code, name, mechanic, rule, priority, exclusive) VALUES
    ('B10', '10% on B', 'percent_off', '{"products": {"skus": ["B"]}, "percent": 10}', 1, false),
    ('EXCL25', '25% on everything, exclusive', 'percent_off', '{"products": {"all": true}, "percent": 25}', 2, true),
    ('LATER5', '5% on everything', 'percent_off', '{"products": {"all": true}, "percent": 5}', 3, false);
SELECT * FROM pg_temp.lines(loyalty.calculate(
    '{"lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 1}, {"sku": "C", "qty": 1}]}'));
DELETE FROM loyalty.promotion;

-- grp: members compete at the group's turn; only the largest discount applies
INSERT INTO loyalty.promotion (code, name, mechanic, rule, priority, grp) VALUES
    ('G_PCT15', '15% on A', 'percent_off', '{"products": {"skus": ["A"]}, "percent": 15}', 10, 'spring'),
    ('G_AMT200', '200 off the check', 'check_discount', '{"steps": [{"min_total": 0, "amount": 200}]}', 30, 'spring'),
    ('G_PCT5', '5% on everything', 'percent_off', '{"products": {"all": true}, "percent": 5}', 20, 'spring'),
    ('MIDDLE', '10% on B, between the members', 'percent_off', '{"products": {"skus": ["B"]}, "percent": 10}', 15, NULL);
-- A alone: 15% = 150, 200 off = 200 (wins), 5% = 50
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}]}'));
-- A x 3: 15% = 450 wins over 200; the group ran at priority 10, before MIDDLE
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "A", "qty": 3}, {"sku": "B", "qty": 1}]}'));
-- a tie goes to the member with the lower priority: 15% of 1000 = 150 = 5% of 3000
UPDATE loyalty.promotion SET rule = '{"steps": [{"min_total": 0, "amount": 100}]}' WHERE code = 'G_AMT200';
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}, {"sku": "D", "qty": 1}]}'));
-- a disabled member takes no part
UPDATE loyalty.promotion SET enabled = false WHERE code = 'G_PCT15';
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}, {"sku": "D", "qty": 1}]}'));
