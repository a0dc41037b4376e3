--
-- check_nth_bundle_gift: mechanics that count whole units (SPEC section 5):
-- nth_item, bundle and gift; the cheapest eligible units go first and
-- fiscal parts multiply out to each line's total.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

CREATE FUNCTION pg_temp.lines(r jsonb)
RETURNS TABLE (i int, sku text, qty numeric, amount numeric, discount numeric,
               total numeric, parts text, parts_add_up boolean, promotions text)
LANGUAGE sql AS $$
    SELECT (l ->> 'index')::int, l ->> 'sku', (l ->> 'qty')::numeric,
           (l ->> 'amount')::numeric, (l ->> 'discount')::numeric, (l ->> 'total')::numeric,
           (SELECT string_agg((p ->> 'qty') || ' x ' || (p ->> 'price'), ' + ')
              FROM jsonb_array_elements(l -> 'parts') p),
           (SELECT sum(round((p ->> 'qty')::numeric * (p ->> 'price')::numeric, 2))
              FROM jsonb_array_elements(l -> 'parts') p) = (l ->> 'total')::numeric,
           (SELECT string_agg((p ->> 'code') || ' -' || (p ->> 'discount'), ', ')
              FROM jsonb_array_elements(l -> 'promotions') p)
      FROM jsonb_array_elements(r -> 'lines') l
$$;

INSERT INTO loyalty.category (code, parent, name) VALUES
    ('all', NULL, 'Everything'), ('household', 'all', 'Household'),
    ('face', 'all', 'Face care'), ('masks', 'face', 'Masks'),
    ('antiviral', 'all', 'Antivirals'), ('lozenges', 'all', 'Lozenges');
INSERT INTO loyalty.product (sku, name, category, price) VALUES
    ('DET1', 'Laundry gel', 'household', 500.00),
    ('DET2', 'Laundry gel, large', 'household', 650.00),
    ('CREAM', 'Day cream', 'face', 199.90),
    ('SERUM', 'Serum', 'face', 450.00),
    ('MASK1', 'Sheet mask', 'masks', 89.00),
    ('AV1', 'Antiviral capsules', 'antiviral', 612.00),
    ('LZ1', 'Lozenges, mint', 'lozenges', 154.00),
    ('LZ2', 'Lozenges, honey', 'lozenges', 120.00);

-- the third pack for 1.00 on seven packs of 500: 2 packs at 1.00, 2502.00,
-- fiscal parts 6 x 357.43 + 1 x 357.44
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('DET3', 'Third pack for 1 rub', 'nth_item', '{"products": {"categories": ["household"]}, "n": 3, "price": 1.00}');
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "DET1", "qty": 7}]}'));
-- across lines the cheapest units are the ones discounted: 5 units, 1 for 1.00
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "DET2", "qty": 3}, {"sku": "DET1", "qty": 2}]}'));
-- two units are not enough
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "DET2", "qty": 2}]}'));
-- the second at half price (percent), or 100.00 off the second (amount)
UPDATE loyalty.promotion SET rule = '{"products": {"categories": ["household"]}, "n": 2, "percent": 50}';
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "DET1", "qty": 3}, {"sku": "DET2", "qty": 1}]}'));
UPDATE loyalty.promotion SET rule = '{"products": {"categories": ["household"]}, "n": 2, "amount": 100}';
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "DET1", "qty": 3}, {"sku": "DET2", "qty": 1}]}'));
-- weighed quantities count whole units only: 2.5 units hold 2
UPDATE loyalty.promotion SET rule = '{"products": {"categories": ["household"]}, "n": 2, "percent": 50}';
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "DET1", "qty": 2.5}]}'));
DELETE FROM loyalty.promotion;

-- bundle: 30% off lozenges with an antiviral, the cheapest lozenges first
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('LZ30', 'Lozenges with an antiviral', 'bundle',
     '{"trigger": {"categories": ["antiviral"]}, "trigger_qty": 1,
       "target": {"categories": ["lozenges"]}, "percent": 30, "per_trigger": 1}');
SELECT * FROM pg_temp.lines(loyalty.calculate(
    '{"lines": [{"sku": "LZ1", "qty": 2}, {"sku": "AV1", "qty": 1}, {"sku": "LZ2", "qty": 1}]}'));
-- two antivirals: two lozenges
SELECT * FROM pg_temp.lines(loyalty.calculate(
    '{"lines": [{"sku": "LZ1", "qty": 2}, {"sku": "AV1", "qty": 2}, {"sku": "LZ2", "qty": 1}]}'));
-- no antiviral, no discount
SELECT * FROM pg_temp.lines(loyalty.calculate('{"lines": [{"sku": "LZ1", "qty": 2}]}'));
DELETE FROM loyalty.promotion;

-- gift: two face care items (masks excluded) bring a mask
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('MASKGIFT', 'A mask as a gift', 'gift',
     '{"trigger": {"categories": ["face"], "exclude": {"categories": ["masks"]}},
       "trigger_qty": 2, "gift": "MASK1", "gift_qty": 1}');
-- the mask is in the check: it becomes free (one of two)
SELECT * FROM pg_temp.lines(loyalty.calculate(
    '{"lines": [{"sku": "CREAM", "qty": 1}, {"sku": "SERUM", "qty": 1}, {"sku": "MASK1", "qty": 2}]}'));
-- the mask is missing: a suggestion and a cashier message
SELECT r -> 'totals' ->> 'discount' AS discount, r -> 'suggestions' AS suggestions, r -> 'messages' AS messages
  FROM loyalty.calculate('{"lines": [{"sku": "CREAM", "qty": 2}]}') r;
-- one face item only: nothing
SELECT r -> 'suggestions' AS suggestions, r -> 'messages' AS messages
  FROM loyalty.calculate('{"lines": [{"sku": "CREAM", "qty": 1}, {"sku": "MASK1", "qty": 1}]}') r;
