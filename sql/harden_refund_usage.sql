--
-- harden_refund_usage: a full refund gives the purchase's promotion uses
-- back (SPEC section 7, issue 14 item 8): usage_limit and
-- per_customer_limit count only purchases that stand, and a single-use
-- coupon restored by the refund is accepted again.  A partial refund keeps
-- the use; the refund that empties the purchase gives it back, once.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

-- what a check got: its discount, the promotions applied, the coupons' fate
CREATE FUNCTION pg_temp.got(r jsonb)
RETURNS TABLE (discount text, promotions text, coupons text) LANGUAGE sql AS $$
    SELECT r -> 'totals' ->> 'discount',
           (SELECT coalesce(string_agg(DISTINCT p ->> 'code', ',' ORDER BY p ->> 'code'), '-')
              FROM jsonb_array_elements(r -> 'lines') l, jsonb_array_elements(l -> 'promotions') p),
           (SELECT coalesce(string_agg(c ->> 'status' || coalesce(' (' || (c ->> 'reason') || ')', ''), ', '), '-')
              FROM jsonb_array_elements(r -> 'coupons') c)
$$;
-- every usage counter
CREATE FUNCTION pg_temp.uses()
RETURNS TABLE (promotion text, customer_id bigint, uses bigint) LANGUAGE sql AS $$
    SELECT promotion, NULL::bigint, uses FROM loyalty.promotion_usage
    UNION ALL
    SELECT promotion, customer_id, uses FROM loyalty.promotion_customer_usage
    ORDER BY 1, 2 NULLS FIRST
$$;

INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES
    ('A', 'Cream', 'all', 100.00), ('B', 'Soap', 'all', 50.00), ('C', 'Mask', 'all', 80.00);
INSERT INTO loyalty.promotion (code, name, mechanic, rule, usage_limit, per_customer_limit, requires_coupon) VALUES
    ('ONCE', 'Once per customer: 10.00 off a cream', 'amount_off',
     '{"products": {"skus": ["A"]}, "amount": 10, "per": "line"}', NULL, 1, false),
    ('FIRST2', 'The first two buyers: 5.00 off a soap', 'amount_off',
     '{"products": {"skus": ["B"]}, "amount": 5, "per": "line"}', 2, NULL, false),
    ('WELCOME', 'Welcome code, once per customer: 20.00 off a mask', 'amount_off',
     '{"products": {"skus": ["C"]}, "amount": 20, "per": "line"}', NULL, 1, true);
SELECT loyalty.register('+79120000001') AS anna;
SELECT loyalty.register('+79120000002') AS boris;
SELECT code AS welcome FROM loyalty.issue_coupons('WELCOME', 1) AS code \gset
UPDATE loyalty.coupon SET valid_from = '2026-01-01' WHERE code = :'welcome';

-- ---------------------------------------------------------------------------
-- per_customer_limit 1 and a single-use coupon, fully refunded
-- ---------------------------------------------------------------------------
SELECT * FROM pg_temp.got(loyalty.purchase(jsonb_build_object(
    'operation_id', 'P-1', 'customer', 1,
    'lines', '[{"sku": "A", "qty": 1}, {"sku": "B", "qty": 1}, {"sku": "C", "qty": 1}]'::jsonb,
    'coupons', jsonb_build_array(:'welcome'))));
SELECT * FROM pg_temp.uses();
-- used up: anna's next check gets neither ONCE nor, with the code, WELCOME
SELECT * FROM pg_temp.got(loyalty.calculate(jsonb_build_object(
    'customer', 1, 'lines', '[{"sku": "A", "qty": 1}, {"sku": "C", "qty": 1}]'::jsonb)));
-- the full refund gives every use back and restores the coupon
SELECT r ->> 'full' AS full_refund
  FROM loyalty.refund('{"operation_id": "R-1", "purchase": "P-1"}') r;
SELECT * FROM pg_temp.uses();
SELECT uses, status FROM loyalty.coupon WHERE code = :'welcome';
-- anna's next purchase gets ONCE again, and the restored coupon is accepted
SELECT * FROM pg_temp.got(loyalty.purchase(jsonb_build_object(
    'operation_id', 'P-2', 'customer', 1,
    'lines', '[{"sku": "A", "qty": 2}, {"sku": "C", "qty": 1}]'::jsonb,
    'coupons', jsonb_build_array(:'welcome'))));
SELECT * FROM pg_temp.uses();
-- a replay of the refund gives nothing back twice
SELECT r ->> 'full' AS full_refund
  FROM loyalty.refund('{"operation_id": "R-1", "purchase": "P-1"}') r;
SELECT * FROM pg_temp.uses();

-- ---------------------------------------------------------------------------
-- A partial refund keeps the use; the refund that empties the purchase
-- gives it back
-- ---------------------------------------------------------------------------
SELECT r ->> 'full' AS full_refund
  FROM loyalty.refund('{"operation_id": "R-2a", "purchase": "P-2", "lines": [{"index": 0, "qty": 1}, {"index": 1, "qty": 1}]}') r;
SELECT * FROM pg_temp.uses();
SELECT uses, status FROM loyalty.coupon WHERE code = :'welcome';
SELECT * FROM pg_temp.got(loyalty.calculate(jsonb_build_object(
    'customer', 1, 'lines', '[{"sku": "A", "qty": 1}]'::jsonb)));
SELECT r ->> 'full' AS full_refund
  FROM loyalty.refund('{"operation_id": "R-2b", "purchase": "P-2", "lines": [{"index": 0, "qty": 1}]}') r;
SELECT * FROM pg_temp.uses();
SELECT uses, status FROM loyalty.coupon WHERE code = :'welcome';
SELECT * FROM pg_temp.got(loyalty.calculate(jsonb_build_object(
    'customer', 1, 'lines', '[{"sku": "A", "qty": 1}, {"sku": "C", "qty": 1}]'::jsonb,
    'coupons', jsonb_build_array(:'welcome'))));

-- ---------------------------------------------------------------------------
-- usage_limit 2: a refunded purchase no longer holds one of the two uses,
-- whoever made it (an anonymous purchase too)
-- ---------------------------------------------------------------------------
SELECT n, (SELECT promotions FROM pg_temp.got(loyalty.purchase(jsonb_build_object(
               'operation_id', 'P-3' || n, 'customer', who,
               'lines', '[{"sku": "B", "qty": 1}]'::jsonb)))) AS promotions
  FROM (VALUES (1, 2), (2, NULL), (3, 2)) AS v(n, who) ORDER BY n;
SELECT * FROM pg_temp.uses();
SELECT r ->> 'full' AS full_refund
  FROM loyalty.refund('{"operation_id": "R-32", "purchase": "P-32"}') r;
SELECT * FROM pg_temp.uses();
SELECT * FROM pg_temp.got(loyalty.purchase(jsonb_build_object(
    'operation_id', 'P-34', 'lines', '[{"sku": "B", "qty": 3}]'::jsonb)));
SELECT * FROM pg_temp.uses();
-- refunded purchases gave back exactly the uses they took: every counter is
-- the number of standing purchases that counted a use
SELECT u.promotion, u.customer_id, u.uses,
       (SELECT count(*) FROM loyalty.purchase p
         WHERE u.promotion = ANY (p.promotions)
           AND (u.customer_id IS NULL OR p.customer_id = u.customer_id)
           AND NOT EXISTS (SELECT 1 FROM loyalty.refund f
                            WHERE f.purchase = p.operation_id AND f.full_refund)) AS standing
  FROM pg_temp.uses() u;

-- ---------------------------------------------------------------------------
-- A limit set after the purchase: the refund gives back only the uses the
-- purchase counted (the counter never goes below what stands)
-- ---------------------------------------------------------------------------
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('LATER', 'Limited later: 1.00 off a mask', 'amount_off',
     '{"products": {"skus": ["C"]}, "amount": 1, "per": "line"}');
SELECT * FROM pg_temp.got(loyalty.purchase(jsonb_build_object(
    'operation_id', 'P-4', 'customer', 2, 'lines', '[{"sku": "C", "qty": 1}]'::jsonb)));
UPDATE loyalty.promotion SET usage_limit = 5, per_customer_limit = 5 WHERE code = 'LATER';
SELECT * FROM pg_temp.got(loyalty.purchase(jsonb_build_object(
    'operation_id', 'P-5', 'customer', 2, 'lines', '[{"sku": "C", "qty": 1}]'::jsonb)));
SELECT * FROM pg_temp.uses() WHERE promotion = 'LATER';
SELECT r ->> 'full' AS full_refund
  FROM loyalty.refund('{"operation_id": "R-4", "purchase": "P-4"}') r;
SELECT * FROM pg_temp.uses() WHERE promotion = 'LATER';
SELECT r ->> 'full' AS full_refund
  FROM loyalty.refund('{"operation_id": "R-5", "purchase": "P-5"}') r;
SELECT * FROM pg_temp.uses() WHERE promotion = 'LATER';
-- a promotion disabled since the purchase gets its use back all the same
UPDATE loyalty.promotion SET enabled = false WHERE code = 'FIRST2';
SELECT r ->> 'full' AS full_refund
  FROM loyalty.refund('{"operation_id": "R-34", "purchase": "P-34"}') r;
SELECT * FROM pg_temp.uses() WHERE promotion = 'FIRST2';
-- what each purchase counted
SELECT operation_id, promotions, usage_counted, customer_usage_counted
  FROM loyalty.purchase ORDER BY operation_id;

SET client_min_messages = warning;
DROP EXTENSION loyalty CASCADE;
