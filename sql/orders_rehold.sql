--
-- orders_rehold: two ways an online order (SPEC section 15, issue 17) got
-- stuck or gave a coupon away, found by test/pgtap/order_invariants.sql.
--
-- 1. A re-hold releases the old hold and holds anew.  It used to log the
--    old hold's coupon give-back under the NEW hold's operation_id, so any
--    later release of that hold (cancel, expiry, capture) gave the coupon
--    back a second time: the cancel failed on coupon_uses_within_max
--    (23514), so the order could be neither cancelled nor expired, or, when
--    another order held the coupon meanwhile, set its uses to 0 while that
--    order held it (a single-use coupon used twice).  The release is now
--    logged under "~order-release:<re-hold's operation_id>".
-- 2. A coupon the hold rejected (another order held it) and that came free
--    before the capture used to be applied by the capture's re-pricing:
--    the totals changed and the capture failed with LY007 for ever.  The
--    capture now sends only the coupons the hold applied.
--
-- Prices: cream A 100.00, soap B 50.00; WELCOME: 20.00 off a cream with a
-- single-use code.  No points are redeemed; accrual 5 % of the total.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET loyalty.test_now = '2026-12-01T12:00:00+00:00';

INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES
    ('A', 'Cream', 'all', 100.00), ('B', 'Soap', 'all', 50.00);
INSERT INTO loyalty.account_type (code, name, redeem_share, min_check, lifetime, activation_delay, redeem_order) VALUES
    ('main', 'Bonus points', 0.5, 0, '1 year', '0', 100);
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES
    ('standard', 'Standard', 1, 0, 5);
INSERT INTO loyalty.promotion (code, name, mechanic, rule, requires_coupon) VALUES
    ('WELCOME', 'Welcome code: 20.00 off a cream', 'amount_off',
     '{"products": {"skus": ["A"]}, "amount": 20, "per": "line"}', true);
SELECT loyalty.register('+79120000001') IS NOT NULL AS anna,
       loyalty.register('+79120000002') IS NOT NULL AS boris;
-- two single-use codes: k (part 1 and 2) and k2 (part 3)
SELECT min(code) AS k, max(code) AS k2 FROM loyalty.issue_coupons('WELCOME', 2) AS code \gset
UPDATE loyalty.coupon SET valid_from = '2026-01-01' WHERE promotion = 'WELCOME';

-- the coupon k: status/uses, and its use log (operation: amount)
CREATE FUNCTION pg_temp.k(code text) RETURNS text LANGUAGE sql AS $$
    SELECT (SELECT status || '/' || uses FROM loyalty.coupon WHERE code = $1) || '  ' ||
           coalesce((SELECT string_agg(operation_id || ':' || amount, ' ' ORDER BY at, operation_id)
                       FROM loyalty.coupon_use WHERE code = $1), '-')
$$;
-- what a call returned: total, the coupons' statuses, the order's state
CREATE FUNCTION pg_temp.got(r jsonb) RETURNS text LANGUAGE sql AS $$
    SELECT concat_ws(' ', r -> 'totals' ->> 'total',
                     '[' || (SELECT coalesce(string_agg(c ->> 'status', ','), '')
                               FROM jsonb_array_elements(r -> 'coupons') c) || ']',
                     r ->> 'state')
$$;

-- ---------------------------------------------------------------------------
-- 1a. hold with k, re-hold without it, boris holds k, anna's order is
--     cancelled: k stays used once, by boris's order
-- ---------------------------------------------------------------------------
-- W-1: 100.00 - 20.00 = 80.00, k used/1
SELECT pg_temp.got(loyalty.order_hold(format('{"operation_id": "H-1", "order_id": "W-1", "customer": "+79120000001", "lines": [{"sku": "A", "qty": 1}], "coupons": ["%s"]}', :'k')::jsonb));
-- re-held without k: 100.00; k back to active/0 under ~order-release:H-1b
SELECT pg_temp.got(loyalty.order_hold('{"operation_id": "H-1b", "order_id": "W-1", "customer": "+79120000001", "lines": [{"sku": "A", "qty": 1}]}'));
SELECT replace(pg_temp.k(:'k'), :'k', 'k') AS k;
-- W-2 (boris) takes k: 80.00, k used/1
SELECT pg_temp.got(loyalty.order_hold(format('{"operation_id": "H-2", "order_id": "W-2", "customer": "+79120000002", "lines": [{"sku": "A", "qty": 1}], "coupons": ["%s"]}', :'k')::jsonb));
-- W-1 cancelled: gives back nothing of k (its hold H-1b holds no coupon);
-- before the fix k went back to active/0 while W-2 held it
SELECT loyalty.order_cancel('{"operation_id": "X-1", "order_id": "W-1"}');
SELECT replace(pg_temp.k(:'k'), :'k', 'k') AS k;   -- used/1
-- W-2 cancelled: k active/0
SELECT loyalty.order_cancel('{"operation_id": "X-2", "order_id": "W-2"}');
SELECT replace(pg_temp.k(:'k'), :'k', 'k') AS k;   -- active/0

-- ---------------------------------------------------------------------------
-- 1b. hold with k, re-hold without it, cancel (nobody else holds k):
--     before the fix the cancel failed with 23514 (uses -1)
-- ---------------------------------------------------------------------------
SELECT pg_temp.got(loyalty.order_hold(format('{"operation_id": "H-3", "order_id": "W-3", "customer": "+79120000001", "lines": [{"sku": "A", "qty": 1}], "coupons": ["%s"]}', :'k')::jsonb));
SELECT pg_temp.got(loyalty.order_hold('{"operation_id": "H-3b", "order_id": "W-3", "customer": "+79120000001", "lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 1}]}'));
SELECT loyalty.order_cancel('{"operation_id": "X-3", "order_id": "W-3"}');
SELECT replace(pg_temp.k(:'k'), :'k', 'k') AS k;   -- active/0

-- ---------------------------------------------------------------------------
-- 1c. re-hold keeping k, then the order expires: k given back once
--     (before the fix the re-hold itself failed: its give-back of k and
--     its new use of k were two coupon_use rows under H-4b, 23505)
-- ---------------------------------------------------------------------------
SELECT pg_temp.got(loyalty.order_hold(format('{"operation_id": "H-4", "order_id": "W-4", "customer": "+79120000001", "lines": [{"sku": "A", "qty": 1}], "coupons": ["%s"], "hold_until": "2026-12-02T12:00:00Z"}', :'k')::jsonb));
-- A×2: 200.00 - 20.00 (per line) = 180.00
SELECT pg_temp.got(loyalty.order_hold(format('{"operation_id": "H-4b", "order_id": "W-4", "customer": "+79120000001", "lines": [{"sku": "A", "qty": 2}], "coupons": ["%s"], "hold_until": "2026-12-02T12:00:00Z"}', :'k')::jsonb));
SELECT replace(pg_temp.k(:'k'), :'k', 'k') AS k;   -- used/1
SELECT loyalty.expire_orders('2026-12-02T12:00:00Z', 100) AS expired;   -- 1
SELECT order_id, state FROM loyalty."order" ORDER BY order_id;
SELECT replace(pg_temp.k(:'k'), :'k', 'k') AS k;   -- active/0

-- ---------------------------------------------------------------------------
-- 1d. hold with k, re-hold without it, capture: 100.00, k free
--     (before the fix the capture's release took k to uses -1: 23514)
-- ---------------------------------------------------------------------------
SELECT pg_temp.got(loyalty.order_hold(format('{"operation_id": "H-5", "order_id": "W-5", "customer": "+79120000001", "lines": [{"sku": "A", "qty": 1}], "coupons": ["%s"]}', :'k')::jsonb));
SELECT pg_temp.got(loyalty.order_hold('{"operation_id": "H-5b", "order_id": "W-5", "customer": "+79120000001", "lines": [{"sku": "A", "qty": 1}]}'));
SELECT pg_temp.got(loyalty.order_capture('{"operation_id": "K-5", "order_id": "W-5"}'));
SELECT replace(pg_temp.k(:'k'), :'k', 'k') AS k;   -- active/0
SELECT * FROM loyalty.verify_ledger();

-- ---------------------------------------------------------------------------
-- 2. boris's hold is refused k (anna's order holds it); anna cancels; the
--    capture of boris's order prices what was held: 100.00 without k (before
--    the fix: LY007, it would have come out at 80.00), and k stays free
-- ---------------------------------------------------------------------------
SELECT pg_temp.got(loyalty.order_hold(format('{"operation_id": "H-6", "order_id": "W-6", "customer": "+79120000001", "lines": [{"sku": "A", "qty": 1}], "coupons": ["%s"]}', :'k')::jsonb));
SELECT pg_temp.got(r), r -> 'coupons' -> 0 ->> 'reason' AS reason
  FROM loyalty.order_hold(format('{"operation_id": "H-7", "order_id": "W-7", "customer": "+79120000002", "lines": [{"sku": "A", "qty": 1}], "coupons": ["%s"], "expect_total": 100.00}', :'k')::jsonb) AS r;
SELECT loyalty.order_cancel('{"operation_id": "X-6", "order_id": "W-6"}');
SELECT replace(pg_temp.k(:'k'), :'k', 'k') AS k;   -- active/0
-- 100.00, no coupon; accrual 5 % of 100.00 = 5
SELECT pg_temp.got(r), r -> 'totals' ->> 'accrual' AS accrual
  FROM loyalty.order_capture('{"operation_id": "K-7", "order_id": "W-7"}') AS r;
SELECT replace(pg_temp.k(:'k'), :'k', 'k') AS k;   -- still active/0: free for anyone
-- the purchase the capture committed does not name k
SELECT p.total, p.discount, o.request ? 'coupons' AS names_coupons
  FROM loyalty.purchase p JOIN loyalty.operation o USING (operation_id) WHERE operation_id = 'K-7';
-- and the same capture again returns the stored response
SELECT pg_temp.got(loyalty.order_capture('{"operation_id": "K-7", "order_id": "W-7"}'));

-- ---------------------------------------------------------------------------
-- 3. a code sent twice: the hold applies the first, rejects the second;
--    the capture sends the first only and comes out at the held 80.00
-- ---------------------------------------------------------------------------
SELECT pg_temp.got(r), r -> 'coupons' -> 1 ->> 'reason' AS reason
  FROM loyalty.order_hold(format('{"operation_id": "H-8", "order_id": "W-8", "customer": "+79120000001", "lines": [{"sku": "A", "qty": 1}], "coupons": ["%1$s", "%1$s"]}', :'k2')::jsonb) AS r;
SELECT pg_temp.got(loyalty.order_capture('{"operation_id": "K-8", "order_id": "W-8"}'));
SELECT replace(pg_temp.k(:'k2'), :'k2', 'k2') AS k2;   -- used/1 by the capture
SELECT * FROM loyalty.verify_ledger();
-- ---------------------------------------------------------------------------
-- 4. the same for a promotion's last use: FIRST1 (10.00 off a soap, one
--    use) is held by anna's W-9; boris's W-10 is held without it (50.00);
--    W-9 is cancelled, the use is free again; W-10 is captured at the held
--    50.00 without FIRST1 (before: LY007, it would have come out at 40.00)
--    and the use stays free.  PCL2 (5.00 off a brush, once per customer):
--    boris's W-11 holds it, his W-12 is held without it; W-11 is
--    cancelled; W-12 is captured without it.
-- ---------------------------------------------------------------------------
INSERT INTO loyalty.promotion (code, name, mechanic, rule, usage_limit, per_customer_limit) VALUES
    ('FIRST1', 'The first buyer: 10.00 off a soap', 'amount_off',
     '{"products": {"skus": ["B"]}, "amount": 10, "per": "line"}', 1, NULL),
    ('PCL2', 'Once per customer: 5.00 off a brush', 'amount_off',
     '{"products": {"skus": ["C"]}, "amount": 5, "per": "line"}', NULL, 1);
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('C', 'Brush', 'all', 30.00);
-- W-9: 50.00 - 10.00 = 40.00
SELECT pg_temp.got(loyalty.order_hold('{"operation_id": "H-9", "order_id": "W-9", "customer": "+79120000001", "lines": [{"sku": "B", "qty": 1}]}'));
-- W-10: FIRST1's use is taken: 50.00
SELECT pg_temp.got(loyalty.order_hold('{"operation_id": "H-10", "order_id": "W-10", "customer": "+79120000002", "lines": [{"sku": "B", "qty": 1}]}'));
SELECT loyalty.order_cancel('{"operation_id": "X-9", "order_id": "W-9"}');
SELECT uses AS first1_uses FROM loyalty.promotion_usage WHERE promotion = 'FIRST1';   -- 0
-- captured at 50.00, no promotion
SELECT pg_temp.got(r), r -> 'promotions' AS promotions
  FROM loyalty.order_capture('{"operation_id": "K-10", "order_id": "W-10"}') AS r;
SELECT uses AS first1_uses FROM loyalty.promotion_usage WHERE promotion = 'FIRST1';   -- still 0
-- W-11 (boris): brush 30.00 - 5.00 = 25.00; W-12 (boris): PCL2 used: 30.00
SELECT pg_temp.got(loyalty.order_hold('{"operation_id": "H-11", "order_id": "W-11", "customer": "+79120000002", "lines": [{"sku": "C", "qty": 1}]}'));
SELECT pg_temp.got(loyalty.order_hold('{"operation_id": "H-12", "order_id": "W-12", "customer": "+79120000002", "lines": [{"sku": "C", "qty": 1}]}'));
SELECT loyalty.order_cancel('{"operation_id": "X-11", "order_id": "W-11"}');
-- captured at 30.00 (before: LY007, 25.00); boris's PCL2 use stays free
SELECT pg_temp.got(r), r -> 'promotions' AS promotions
  FROM loyalty.order_capture('{"operation_id": "K-12", "order_id": "W-12"}') AS r;
SELECT u.uses AS boris_pcl2_uses FROM loyalty.promotion_customer_usage u
 WHERE u.promotion = 'PCL2' AND u.customer_id = 2;   -- 0
SELECT * FROM loyalty.verify_ledger();

-- ---------------------------------------------------------------------------
-- 5. a re-hold and a capture whose operation_ids (200 characters, the most
--    allowed) leave no room for the "~order-release:" prefix: their
--    releases are named "~order-release:#<md5 of the operation_id>"
--    (before: the capture failed on operation_id_format)
-- ---------------------------------------------------------------------------
-- 100.00, re-held with two creams: 200.00, captured at 200.00
SELECT pg_temp.got(loyalty.order_hold('{"operation_id": "H-13", "order_id": "W-13", "customer": "+79120000001", "lines": [{"sku": "A", "qty": 1}]}'));
SELECT pg_temp.got(loyalty.order_hold(jsonb_build_object('operation_id', repeat('r', 200), 'order_id', 'W-13',
           'customer', '+79120000001', 'lines', '[{"sku": "A", "qty": 2}]'::jsonb)));
SELECT pg_temp.got(loyalty.order_capture(jsonb_build_object('operation_id', repeat('c', 200), 'order_id', 'W-13')));
SELECT count(*) AS md5_named, min(kind::text) AS kind FROM loyalty.operation
 WHERE operation_id IN ('~order-release:#' || md5(repeat('r', 200)), '~order-release:#' || md5(repeat('c', 200)));
