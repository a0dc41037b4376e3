--
-- promotion_index: promotions indexed by product (issue 21).  A product's
-- candidate promotions come from an index built with the configuration
-- cache (by SKU, category with its ancestors, brand and tag, plus the
-- promotions for any product and the check-level ones), and the engine
-- visits only those.  The answers must be exactly those of evaluating every
-- promotion's selector: category ancestors, brands, tags, exclusions, a
-- name of one kind never matching another kind, check-level promotions,
-- trigger-keyed mechanics, a configuration change in the same session
-- (committed or rolled back), SKUs first seen after the index was built,
-- and 200-line checks, with hundreds of promotions that match nothing.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET loyalty.test_now = '2026-06-01 12:00:00+00';

-- one line per row: money and the promotions that changed it
CREATE FUNCTION pg_temp.lines(r jsonb)
RETURNS TABLE (i int, sku text, amount numeric, discount numeric, total numeric,
               promotions text)
LANGUAGE sql AS $$
    SELECT (l ->> 'index')::int, l ->> 'sku', (l ->> 'amount')::numeric,
           (l ->> 'discount')::numeric, (l ->> 'total')::numeric,
           (SELECT string_agg((p ->> 'code') || ' -' || (p ->> 'discount'), ', ')
              FROM jsonb_array_elements(l -> 'promotions') p)
      FROM jsonb_array_elements(r -> 'lines') l
$$;
-- a check of the given SKUs, one unit each
CREATE FUNCTION pg_temp.check_of(VARIADIC skus text[]) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT loyalty.calculate(jsonb_build_object('lines',
        (SELECT jsonb_agg(jsonb_build_object('sku', s, 'qty', 1) ORDER BY n)
           FROM unnest(skus) WITH ORDINALITY AS u(s, n))))
$$;

INSERT INTO loyalty.category (code, parent, name) VALUES
    ('all', NULL, 'Everything'), ('cosmetics', 'all', 'Cosmetics'),
    ('face', 'cosmetics', 'Face'), ('food', 'all', 'Food');
INSERT INTO loyalty.product (sku, name, category, brand, tags, price) VALUES
    ('A1', 'Day cream', 'face', 'Natura', '{vegan}', 100.00),
    ('B1', 'Shampoo', 'cosmetics', 'Clean', '{}', 200.00),
    ('F1', 'Cough syrup', 'food', 'Clean', '{rx}', 50.00),
    ('G1', 'Loose tea', NULL, NULL, '{vegan,rx}', 10.00),
    ('H1', 'Apples', 'food', NULL, '{}', 30.00);

-- every kind of key; the check-level CHECK10 only from 5000.00 on
INSERT INTO loyalty.promotion (code, name, mechanic, rule, priority) VALUES
    ('CHECK10', '10% off big checks', 'check_discount',
     '{"steps": [{"min_total": 5000, "percent": 10}]}', 5),
    ('CAT_COSM', '10% off cosmetics', 'percent_off',
     '{"products": {"categories": ["cosmetics"]}, "percent": 10}', 10),
    ('BRAND_CLEAN', '5.00 off a Clean line', 'amount_off',
     '{"products": {"brands": ["Clean"]}, "amount": 5, "per": "line"}', 20),
    ('TAG_VEGAN', '50% off vegan', 'percent_off',
     '{"products": {"tags": ["vegan"]}, "percent": 50}', 30),
    ('ALL_BUT_RX', '10% off all but rx', 'percent_off',
     '{"products": {"all": true, "exclude": {"tags": ["rx"]}}, "percent": 10}', 40),
    ('CAT_ALL_BUT_NATURA', '20% off everything but Natura', 'percent_off',
     '{"products": {"categories": ["all"], "exclude": {"brands": ["Natura"]}}, "percent": 20}', 50),
    -- names of one kind used as another: they match nothing
    ('CROSSED', 'names in the wrong lists', 'percent_off',
     '{"products": {"brands": ["vegan", "face"], "categories": ["Natura", "A1"],
                    "tags": ["Clean", "cosmetics"], "skus": ["Natura"]}, "percent": 90}', 45);
-- 400 promotions that match nothing, interleaved in priority with the rest
INSERT INTO loyalty.promotion (code, name, mechanic, rule, priority)
SELECT format('NX%s', k), 'matches nothing', 'percent_off',
       jsonb_build_object('products', jsonb_build_object(
           (ARRAY['skus', 'brands', 'categories', 'tags'])[k % 4 + 1],
           jsonb_build_array(format('nomatch-%s', k))), 'percent', 50),
       k % 60
  FROM generate_series(1, 400) AS k;

-- A1 alone first: B1, F1, G1 and H1 are first seen by the next check.
-- A1 100.00: CAT_COSM through face's ancestor cosmetics -10.00 (90.00),
-- TAG_VEGAN 50% -45.00 (45.00), ALL_BUT_RX 10% -4.50 (40.50); not
-- CAT_ALL_BUT_NATURA (brand Natura)
SELECT * FROM pg_temp.lines(pg_temp.check_of('A1'));
-- A1 as above.  B1 200.00: CAT_COSM -20.00 (180.00), BRAND_CLEAN -5.00
-- (175.00), ALL_BUT_RX -17.50 (157.50), CAT_ALL_BUT_NATURA -31.50 (126.00).
-- F1 50.00: BRAND_CLEAN -5.00 (45.00), not ALL_BUT_RX (rx),
-- CAT_ALL_BUT_NATURA via food's parent -9.00 (36.00).  G1 10.00 (no
-- category): TAG_VEGAN -5.00 only (rx).  H1 30.00 (no brand, no tags):
-- ALL_BUT_RX -3.00 (27.00), CAT_ALL_BUT_NATURA -5.40 (21.60).  Nothing of
-- CROSSED, NX*, CHECK10 (390.00 < 5000.00)
SELECT * FROM pg_temp.lines(pg_temp.check_of('A1', 'B1', 'F1', 'G1', 'H1'));
-- a check with no product any promotion names but the "all" ones
SELECT * FROM pg_temp.lines(loyalty.calculate(
    '{"lines": [{"sku": "H1", "qty": 1}, {"sku": "UNKNOWN", "qty": 1, "price": 5}]}'));

-- the check-level promotion (no product selector: in no list of the index,
-- a candidate of every check) comes first (priority 5): 30 x B1 = 6000.00, CHECK10 -600.00
-- (5400.00), CAT_COSM -540.00 (4860.00), BRAND_CLEAN -5.00 (4855.00),
-- ALL_BUT_RX -485.50 (4369.50), CAT_ALL_BUT_NATURA -873.90 (3495.60)
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "B1", "qty": 30}]}'));

-- a trigger-keyed mechanic: the bundle is a candidate through its trigger
-- (H1) only; G1 (its target) alone does not bring it in.
-- G1 alone: TAG_VEGAN -5.00, nothing else
-- G1 + H1: G1 TAG_VEGAN -5.00 (5.00), BUNDLE 50% of 5.00 -2.50 (2.50);
-- H1 as above (-3.00, -5.40)
INSERT INTO loyalty.promotion (code, name, mechanic, rule, priority) VALUES
    ('BUNDLE', 'Half off vegan with apples', 'bundle',
     '{"trigger": {"skus": ["H1"]}, "trigger_qty": 1, "target": {"tags": ["vegan"]},
       "percent": 50, "per_trigger": 1}', 70);
SELECT * FROM pg_temp.lines(pg_temp.check_of('G1'));
SELECT * FROM pg_temp.lines(pg_temp.check_of('G1', 'H1'));

-- a configuration change in the same session rebuilds the index:
-- CAT_COSM now on food.  A1 100.00: TAG_VEGAN -50.00, ALL_BUT_RX -5.00
-- (45.00), BUNDLE (triggered by H1) 50% -22.50 (22.50).  H1 30.00: CAT_COSM -3.00 (27.00), ALL_BUT_RX -2.70 (24.30),
-- CAT_ALL_BUT_NATURA -4.86 (19.44)
UPDATE loyalty.promotion SET rule = '{"products": {"categories": ["food"]}, "percent": 10}'
 WHERE code = 'CAT_COSM';
SELECT * FROM pg_temp.lines(pg_temp.check_of('A1', 'H1'));
-- inside a transaction that is rolled back: the change is seen, then gone.
-- With BRAND_CLEAN on Natura instead: A1 -5.00 first (95.00), TAG_VEGAN
-- -47.50 (47.50), ALL_BUT_RX -4.75 (42.75)
BEGIN;
UPDATE loyalty.promotion SET rule = '{"products": {"brands": ["Natura"]}, "amount": 5, "per": "line"}'
 WHERE code = 'BRAND_CLEAN';
SELECT * FROM pg_temp.lines(pg_temp.check_of('A1'));
ROLLBACK;
SELECT * FROM pg_temp.lines(pg_temp.check_of('A1'));
-- a product added after the index was built (a new face cream of Clean):
-- N1 80.00: BRAND_CLEAN -5.00 (75.00), ALL_BUT_RX -7.50 (67.50),
-- CAT_ALL_BUT_NATURA -13.50 (54.00)
INSERT INTO loyalty.product (sku, name, category, brand, price) VALUES
    ('N1', 'New cream', 'face', 'Clean', 80.00);
SELECT * FROM pg_temp.lines(pg_temp.check_of('N1'));
UPDATE loyalty.promotion SET rule = '{"products": {"categories": ["cosmetics"]}, "percent": 10}'
 WHERE code = 'CAT_COSM';
DELETE FROM loyalty.promotion WHERE code = 'BUNDLE';

-- 200-line checks: L001 .. L200 at 10.00; odd ones in face, even ones in
-- food, every fourth of brand Clean.
INSERT INTO loyalty.product (sku, name, category, brand, price)
SELECT format('L%s', lpad(i::text, 3, '0')), 'line product',
       CASE WHEN i % 2 = 1 THEN 'face' ELSE 'food' END,
       CASE WHEN i % 4 = 0 THEN 'Clean' END, 10.00
  FROM generate_series(1, 200) AS i;
CREATE TEMP TABLE big AS
SELECT jsonb_build_object('lines', jsonb_agg(jsonb_build_object(
           'sku', format('L%s', lpad(i::text, 3, '0')), 'qty', 1) ORDER BY i)) AS req
  FROM generate_series(1, 200) AS i;
-- odd (100 lines): CAT_COSM -1.00 (9.00), ALL_BUT_RX -0.90 (8.10),
-- CAT_ALL_BUT_NATURA -1.62 (6.48): 3.52 each, 352.00.
-- i % 4 = 2 (50 lines): ALL_BUT_RX -1.00 (9.00), CAT_ALL_BUT_NATURA -1.80
-- (7.20): 2.80 each, 140.00.
-- i % 4 = 0 (50 lines): BRAND_CLEAN -5.00 (5.00), ALL_BUT_RX -0.50 (4.50),
-- CAT_ALL_BUT_NATURA -0.90 (3.60): 6.40 each, 320.00.
-- Check: 2000.00, discount 812.00, total 1188.00
CREATE TEMP TABLE big_with AS SELECT loyalty.calculate(req) AS r FROM big;
SELECT r -> 'totals' ->> 'amount' AS amount, r -> 'totals' ->> 'discount' AS discount,
       r -> 'totals' ->> 'total' AS total
  FROM big_with;
SELECT discount, promotions, count(*)
  FROM big_with, pg_temp.lines(r) GROUP BY 1, 2 ORDER BY 1, 2;
-- the same check once the 400 promotions that match nothing are gone: the
-- very same response (loyalty.test_now fixes its "at")
DELETE FROM loyalty.promotion WHERE code LIKE 'NX%';
SELECT (SELECT r FROM big_with) = loyalty.calculate(req) AS same_response FROM big;
-- and the small check too
SELECT * FROM pg_temp.lines(pg_temp.check_of('A1', 'B1', 'F1', 'G1', 'H1'));
