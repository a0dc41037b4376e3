--
-- harden_promo_breadth: issue 18, the shared rule fields of every mechanic
-- (max_discount, min_qty, min_items, once), fixed points per SKU and the
-- campaign budget.  Every figure below is computed by hand in the comment
-- above its query.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
\set VERBOSITY default

CREATE FUNCTION pg_temp.lines(r jsonb)
RETURNS TABLE (i int, sku text, qty numeric, amount numeric, discount numeric,
               total numeric, promotions text)
LANGUAGE sql AS $$
    SELECT (l ->> 'index')::int, l ->> 'sku', (l ->> 'qty')::numeric,
           (l ->> 'amount')::numeric, (l ->> 'discount')::numeric, (l ->> 'total')::numeric,
           (SELECT string_agg((p ->> 'code') || ' -' || (p ->> 'discount'), ', ')
              FROM jsonb_array_elements(l -> 'promotions') p)
      FROM jsonb_array_elements(r -> 'lines') l
$$;

INSERT INTO loyalty.category (code, parent, name) VALUES
    ('all', NULL, 'Everything'), ('face', 'all', 'Face care'), ('other', 'all', 'Other');
INSERT INTO loyalty.product (sku, name, category, price) VALUES
    ('A', 'Serum', 'face', 500.00),
    ('C', 'Day cream', 'face', 199.90),
    ('X', 'Plasters', 'other', 50.00);

--
-- max_discount: the cap per check, spread by largest remainder
--
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('CAP', '20% on face care, at most 100', 'percent_off',
     '{"products": {"categories": ["face"]}, "percent": 20, "max_discount": 100}');
-- 20% of 500.00 + 199.90 is 100.00 + 39.98 = 139.98 > 100.00: 100.00 spread
-- by 10000 : 3998 in minor units: 7143.877 -> 7143, 2856.122 -> 2856, the
-- unit left over goes to the larger remainder (A): A -71.44, C -28.56
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}, {"sku": "C", "qty": 1}, {"sku": "X", "qty": 1}]}'));
-- under the cap: one A, 100.00 exactly
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}]}'));
-- the shelf price shows the cap: 20% of 500.00 is 100.00, capped at 60.00 -> 440.00;
-- C: 39.98 off -> 159.92
UPDATE loyalty.promotion SET rule = '{"products": {"categories": ["face"]}, "percent": 20, "max_discount": 60}';
SELECT * FROM loyalty.catalog_prices(NULL, NULL, NULL, ARRAY['A', 'C']);
-- on a check-level mechanic: 10% of 1199.80 is 119.98, capped at 50.00 over
-- lines 500.00 / 199.90 / 500.00 by their deltas 50.00 / 19.99 / 50.00:
-- 20.8368 -> 20.83, 8.3305 -> 8.33, 20.8368 -> 20.83 (sum 49.99); the
-- largest remainders tie, the lower index takes it: 20.84, 8.33, 20.83
DELETE FROM loyalty.promotion;
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('CHK', '10% off the check, at most 50', 'check_discount',
     '{"steps": [{"min_total": 0, "percent": 10}], "max_discount": 50}');
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}, {"sku": "C", "qty": 1}, {"sku": "A", "qty": 1}]}'));
DELETE FROM loyalty.promotion;

--
-- min_qty and min_items: conditions on the check at the promotion's turn
--
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('Q3', '10% on face care from 3 units', 'percent_off',
     '{"products": {"categories": ["face"]}, "percent": 10, "min_qty": 3}');
-- two face units (plasters do not match): no discount
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "A", "qty": 2}, {"sku": "X", "qty": 5}]}'));
-- three face units: 10% of 1000.00 and of 199.90 -> 100.00 and 19.99
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "A", "qty": 2}, {"sku": "C", "qty": 1}]}'));
-- a weighed quantity counts as it is: 2.5 < 3 (nothing), then 3.0 (150.00)
SELECT loyalty.calculate('{"lines": [{"sku": "A", "qty": 2.5}]}') -> 'totals' ->> 'discount' AS d_2_5,
       loyalty.calculate('{"lines": [{"sku": "A", "qty": 3.0}]}') -> 'totals' ->> 'discount' AS d_3_0;
-- a shelf price is one unit: the condition is not met there
SELECT * FROM loyalty.catalog_prices(NULL, NULL, NULL, ARRAY['A']);
UPDATE loyalty.promotion SET rule = '{"products": {"categories": ["face"]}, "percent": 10, "min_items": 2}';
-- one line of three units is one item: nothing; two face lines: 50.00 + 19.99
SELECT loyalty.calculate('{"lines": [{"sku": "A", "qty": 3}, {"sku": "X", "qty": 1}]}') -> 'totals' ->> 'discount' AS one_item,
       loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}, {"sku": "C", "qty": 1}]}') -> 'totals' ->> 'discount' AS two_items;
-- on a check-level mechanic every line of goods counts: 3 lines reach min_items 3
UPDATE loyalty.promotion SET mechanic = 'check_discount',
    rule = '{"steps": [{"min_total": 0, "amount": 10}], "min_items": 3}';
SELECT loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}, {"sku": "C", "qty": 1}]}') -> 'totals' ->> 'discount' AS two_lines,
       loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}, {"sku": "C", "qty": 1}, {"sku": "X", "qty": 1}]}') -> 'totals' ->> 'discount' AS three_lines;
DELETE FROM loyalty.promotion;

--
-- once: at most one application per check
--
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('SECOND', 'Second at half price, once', 'nth_item',
     '{"products": {"categories": ["face"]}, "n": 2, "percent": 50, "once": true}');
-- four serums: one unit at half price (250.00), not two
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "A", "qty": 4}]}'));
-- n = 1 with once: the cheapest matching unit for 1.00 (199.90 -> 1.00: 198.90)
UPDATE loyalty.promotion SET rule = '{"products": {"categories": ["face"]}, "n": 1, "price": 1, "once": true}';
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}, {"sku": "C", "qty": 2}]}'));
-- bundle once: two serums would discount two creams; once: one cream at 50% (99.95)
UPDATE loyalty.promotion SET mechanic = 'bundle',
    rule = '{"trigger": {"skus": ["A"]}, "target": {"skus": ["C"]}, "percent": 50, "once": true}';
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "A", "qty": 2}, {"sku": "C", "qty": 2}]}'));
-- gift once: three serums, one plaster free (50.00), the second plaster paid
UPDATE loyalty.promotion SET mechanic = 'gift',
    rule = '{"trigger": {"skus": ["A"]}, "gift": "X", "once": true}';
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "A", "qty": 3}, {"sku": "X", "qty": 2}]}'));
-- gift with a cap: two free plasters (100.00) capped at 60.00
UPDATE loyalty.promotion SET rule = '{"trigger": {"skus": ["A"]}, "gift": "X", "max_discount": 60}';
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "A", "qty": 2}, {"sku": "X", "qty": 2}]}'));
DELETE FROM loyalty.promotion;

--
-- validated on write: LY006 naming the field
--
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('BAD', 'Bad', 'percent_off', '{"products": {"all": true}, "percent": 10, "max_discount": 0}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('BAD', 'Bad', 'percent_off', '{"products": {"all": true}, "percent": 10, "max_discount": "100"}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('BAD', 'Bad', 'percent_off', '{"products": {"all": true}, "percent": 10, "min_qty": 0}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('BAD', 'Bad', 'percent_off', '{"products": {"all": true}, "percent": 10, "min_qty": 1.5}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('BAD', 'Bad', 'percent_off', '{"products": {"all": true}, "percent": 10, "min_items": 1.5}');
-- "once" belongs to the unit mechanics only, "max_discount" to discounts only
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('BAD', 'Bad', 'percent_off', '{"products": {"all": true}, "percent": 10, "once": true}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('BAD', 'Bad', 'points_fixed', '{"points": 10, "max_discount": 10}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('BAD', 'Bad', 'nth_item', '{"n": 2, "percent": 10, "once": "yes"}');
-- n = 1 needs once
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('BAD', 'Bad', 'nth_item', '{"n": 1, "percent": 10}');
SELECT count(*) AS promotions FROM loyalty.promotion;

--
-- points_fixed per SKU: points for every whole unit of matching products,
-- credited to those lines
--
INSERT INTO loyalty.account_type (code, name, redeem_share, min_check, lifetime, activation_delay, redeem_order) VALUES
    ('main', 'Bonus points', 0.9, 0, '1 year', '0', 100),
    ('promo', 'Promo points', 0.3, 0, NULL, '0', 10);
SELECT loyalty.register('+79120000001') AS anna;
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('PACK50', '50 points for every cream', 'points_fixed',
     '{"products": {"skus": ["C"]}, "per": "unit", "points": 50, "account": "promo"}');
-- three creams (150) and a line of 1.5 creams (one whole unit: 50): 200
-- promo points, on the cream lines only; the serum line gets none
SELECT l ->> 'sku' AS sku, l -> 'accrual' ->> 'promo' AS promo
  FROM jsonb_array_elements(loyalty.calculate(
    '{"customer": 1, "lines": [{"sku": "A", "qty": 1}, {"sku": "C", "qty": 3}, {"sku": "C", "qty": 1.5}]}') -> 'lines') l;
SELECT r -> 'totals' -> 'accrual' ->> 'promo' AS promo_total,
       (SELECT p ->> 'points' FROM jsonb_array_elements(r -> 'promotions') p WHERE p ->> 'code' = 'PACK50') AS credited
  FROM loyalty.calculate('{"customer": 1, "lines": [{"sku": "A", "qty": 1}, {"sku": "C", "qty": 3}, {"sku": "C", "qty": 1.5}]}') r;
-- no cream: no grant
SELECT loyalty.calculate('{"customer": 1, "lines": [{"sku": "A", "qty": 1}]}') -> 'totals' -> 'accrual' ->> 'promo' AS no_cream;
-- "per": "check" with products: 10 points once for a check holding plasters
UPDATE loyalty.promotion SET rule = '{"products": {"skus": ["X"]}, "points": 10, "account": "promo"}';
SELECT loyalty.calculate('{"customer": 1, "lines": [{"sku": "A", "qty": 1}]}') -> 'totals' -> 'accrual' ->> 'promo' AS without_x,
       loyalty.calculate('{"customer": 1, "lines": [{"sku": "A", "qty": 1}, {"sku": "X", "qty": 4}]}') -> 'totals' -> 'accrual' ->> 'promo' AS with_x;
-- with min_qty (a shared condition): 3 plasters needed
UPDATE loyalty.promotion SET rule = '{"products": {"skus": ["X"]}, "per": "unit", "points": 5, "account": "promo", "min_qty": 3}';
SELECT loyalty.calculate('{"customer": 1, "lines": [{"sku": "X", "qty": 2}]}') -> 'totals' -> 'accrual' ->> 'promo' AS two_x,
       loyalty.calculate('{"customer": 1, "lines": [{"sku": "X", "qty": 3}]}') -> 'totals' -> 'accrual' ->> 'promo' AS three_x;
-- validated on write
UPDATE loyalty.promotion SET rule = '{"products": {"skus": ["X"]}, "per": "line", "points": 5}';
UPDATE loyalty.promotion SET rule = '{"products": {"nope": ["X"]}, "per": "unit", "points": 5}';
DELETE FROM loyalty.promotion;

--
-- campaign budget: promotion.budget caps the money given across purchases
--
INSERT INTO loyalty.promotion (code, name, mechanic, rule, budget) VALUES
    ('B10', '10% while 150.00 last', 'percent_off', '{"products": {"all": true}, "percent": 10}', 150);
-- 50.00, then 100.00: the budget is used up exactly
SELECT loyalty.purchase('{"operation_id": "P-1", "lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'discount' AS p1,
       loyalty.purchase('{"operation_id": "P-2", "lines": [{"sku": "A", "qty": 2}]}') -> 'totals' ->> 'discount' AS p2;
SELECT promotion, given FROM loyalty.promotion_usage;
SELECT operation_id, promotion, given FROM loyalty.promotion_budget_claim ORDER BY 1;
-- nothing left: no discount
SELECT loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'discount' AS used_up;
-- a partial refund keeps the money taken; the full refund of P-1 gives its 50.00 back
SELECT loyalty.refund('{"operation_id": "R-1", "purchase": "P-2", "lines": [{"index": 0, "qty": 1}]}') IS NOT NULL AS partial;
SELECT promotion, given FROM loyalty.promotion_usage;
SELECT loyalty.refund('{"operation_id": "R-2", "purchase": "P-1", "lines": [{"index": 0, "qty": 1}]}') IS NOT NULL AS full;
SELECT promotion, given FROM loyalty.promotion_usage;
-- the last check takes only what is left: 10% of 500.00 + 199.90 is 69.99,
-- 50.00 left, spread by 5000 : 1999 -> 3571.939 / 1428.061 -> 35.72 / 14.28
SELECT * FROM pg_temp.lines(loyalty.purchase('{"operation_id": "P-3", "lines": [{"sku": "A", "qty": 1}, {"sku": "C", "qty": 1}]}'));
SELECT promotion, given FROM loyalty.promotion_usage;
SELECT operation_id, promotion, given FROM loyalty.promotion_budget_claim ORDER BY 1;
-- a budget must be positive (23514)
\set VERBOSITY terse
UPDATE loyalty.promotion SET budget = 0;
\set VERBOSITY default
DELETE FROM loyalty.promotion;
