--
-- harden_order_expiry: the maintenance expiry of held online orders
-- (loyalty.expire_orders, issue 17) releases a whole batch of orders in a
-- few set-based statements.  What it gives back must be exactly what
-- order_cancel gives back order by order, also where the orders of one
-- batch share things: two orders of one customer held on the same lot, one
-- gift certificate held in part by two orders, one limited promotion
-- counted by several orders (globally and per customer), an anonymous
-- order.  Each check below compares the batch's result with the state
-- before the holds (everything back) and with order_cancel of the same
-- orders (rolled back), entry by entry in the order the orders fell due.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET loyalty.test_now = '2026-12-01T12:00:00+00:00';

INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('A', 'Cream', 'all', 100.00);
INSERT INTO loyalty.account_type (code, name, redeem_share, min_check, lifetime, activation_delay, redeem_order) VALUES
    ('main', 'Bonus points', 0.5, 0, '1 year', '0', 100);
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES
    ('standard', 'Standard', 1, 0, 5);
INSERT INTO loyalty.promotion (code, name, mechanic, rule, usage_limit, per_customer_limit) VALUES
    ('LIM', '1.00 off a cream', 'amount_off', '{"products": {"skus": ["A"]}, "amount": 1, "per": "line"}', 10, 5);
SELECT loyalty.register('+79120000001') AS anna;
SELECT loyalty.register('+79120000002') AS boris;
SELECT loyalty.issue_certificate(150) AS cert \gset
UPDATE loyalty.coupon SET valid_from = '2026-01-01' WHERE code = :'cert';
-- anna: 100 points on one lot, boris 50
SELECT loyalty.adjust('{"operation_id": "g1", "customer": "id:1", "account": "main", "points": 100, "reason": "gift"}') ->> 'points' AS g1,
       loyalty.adjust('{"operation_id": "g2", "customer": "id:2", "account": "main", "points": 50, "reason": "gift"}') ->> 'points' AS g2;

-- what the orders touch: the lots, the certificate, LIM's counters (a
-- counter at zero and no counter are the same)
CREATE FUNCTION pg_temp.snap()
RETURNS text LANGUAGE sql AS $$
    SELECT concat_ws(' | ',
        (SELECT string_agg(id || ':' || remaining, ',' ORDER BY id) FROM loyalty.lot),
        (SELECT string_agg(balance || '/' || uses || '/' || status, ',') FROM loyalty.coupon),
        (SELECT 'LIM:' || coalesce(sum(uses), 0) FROM loyalty.promotion_usage),
        (SELECT coalesce(string_agg(customer_id || ':' || uses, ',' ORDER BY customer_id), '-')
           FROM loyalty.promotion_customer_usage WHERE uses > 0))
$$;
-- the releases, in the order they were written: order, lot, points; and
-- the certificate amounts given back, per order
CREATE FUNCTION pg_temp.released()
RETURNS text LANGUAGE sql AS $$
    SELECT concat_ws(' | ',
        (SELECT string_agg(o.order_id || ':' || e.lot_id || ':' || e.points || ':' || e.at, ',' ORDER BY e.id)
           FROM loyalty.ledger_entry e JOIN loyalty."order" o ON o.final_operation_id = e.operation_id
          WHERE e.kind = 'release'),
        (SELECT string_agg(o.order_id || ':' || u.amount || ':' || coalesce(u.customer_id::text, '-') || ':' || u.at,
                           ',' ORDER BY o.order_id)
           FROM loyalty.coupon_use u JOIN loyalty."order" o ON o.final_operation_id = u.operation_id),
        (SELECT string_agg(order_id || ':' || CASE state WHEN 'held' THEN 'held' ELSE 'released' END,
                           ',' ORDER BY order_id) FROM loyalty."order"))
$$;

SELECT pg_temp.snap() AS before \gset
SELECT :'before' AS before;

-- W-1, W-2: anna, 20 and 30 points from her one lot; W-3: anna, two
-- creams (LIM counted once for her); W-4: nobody's, paid with the
-- certificate (99.00 of its 150.00); W-5: boris, 10 points; W-7: boris,
-- paid with the rest of the certificate (51.00 of 99.00); W-6: anna, due
-- only tomorrow (stays held)
SELECT loyalty.order_hold('{"operation_id": "H-1", "order_id": "W-1", "customer": "id:1", "hold_until": "2026-12-02T00:00:00Z", "lines": [{"sku": "A", "qty": 1}], "redeem": 20}') -> 'totals' ->> 'total' AS w1_total;
SELECT loyalty.order_hold('{"operation_id": "H-2", "order_id": "W-2", "customer": "id:1", "hold_until": "2026-12-02T00:00:00Z", "lines": [{"sku": "A", "qty": 1}], "redeem": 30}') -> 'totals' ->> 'total' AS w2_total;
SELECT loyalty.order_hold('{"operation_id": "H-3", "order_id": "W-3", "customer": "id:1", "hold_until": "2026-12-02T00:00:00Z", "lines": [{"sku": "A", "qty": 2}]}') -> 'totals' ->> 'total' AS w3_total;
SELECT loyalty.order_hold(jsonb_build_object('operation_id', 'H-4', 'order_id', 'W-4',
       'hold_until', '2026-12-02T00:00:00Z', 'lines', '[{"sku": "A", "qty": 1}]'::jsonb,
       'coupons', jsonb_build_array(:'cert'))) -> 'totals' AS w4_totals;
SELECT loyalty.order_hold('{"operation_id": "H-5", "order_id": "W-5", "customer": "id:2", "hold_until": "2026-12-02T00:00:00Z", "lines": [{"sku": "A", "qty": 1}], "redeem": 10}') -> 'totals' ->> 'total' AS w5_total;
SELECT loyalty.order_hold('{"operation_id": "H-6", "order_id": "W-6", "customer": "id:1", "hold_until": "2026-12-03T00:00:00Z", "lines": [{"sku": "A", "qty": 1}], "redeem": 5}') -> 'totals' ->> 'total' AS w6_total;
SELECT loyalty.order_hold(jsonb_build_object('operation_id', 'H-7', 'order_id', 'W-7', 'customer', 'id:2',
       'hold_until', '2026-12-02T00:00:00Z', 'lines', '[{"sku": "A", "qty": 1}]'::jsonb,
       'coupons', jsonb_build_array(:'cert'))) -> 'totals' AS w7_totals;
-- held: anna 100 - 20 - 30 - 5 = 45, boris 50 - 10 = 40; the certificate
-- 150 - 100 - 50 = 0, used twice; LIM counted by all but the anonymous
-- W-4 (6), anna 4 (W-1, W-2, W-3, W-6), boris 2 (W-5, W-7)
SELECT pg_temp.snap() AS held;

-- W-1..W-5 and W-7 cancelled one by one, in the order they fall due (the
-- expiry's order: hold_until, then order_id); what that gives back is
-- kept, and rolled back.  W-6 is cancelled too, for the state to compare
-- with "before".
BEGIN;
SET LOCAL loyalty.test_now = '2026-12-02T00:00:00+00:00';
SELECT count(loyalty.order_cancel(jsonb_build_object('operation_id', 'C-' || i, 'order_id', 'W-' || i)))
  FROM unnest(ARRAY[1, 2, 3, 4, 5, 7]) i;
SELECT pg_temp.released() AS by_cancel \gset
SELECT loyalty.order_cancel('{"operation_id": "C-6", "order_id": "W-6"}') ->> 'state' AS w6;
SELECT pg_temp.snap() AS cancelled, pg_temp.snap() = :'before' AS cancel_gives_all_back;
ROLLBACK;
SELECT pg_temp.snap() AS held_again;

-- the expiry: six orders in one batch, W-6 not due
SELECT loyalty.expire_orders('2026-12-02T00:00:00Z', 100) AS expired;
-- the same releases as the cancels, entry by entry, in the same order
-- (W-1 and W-2 on anna's one lot, 20 and 30; W-3, W-4 and W-7 hold no
-- points; W-5 10 on boris's lot), the certificate amounts per order
-- (W-4 99.00, nobody's; W-7 51.00, boris's)
SELECT :'by_cancel' AS by_cancel;
SELECT pg_temp.released() AS by_expiry, pg_temp.released() = :'by_cancel' AS same_as_cancel;
-- the internal operations, one per order, with the order's customer
SELECT operation_id, kind, customer_id, request FROM loyalty.operation
 WHERE operation_id LIKE '~order-expire:%' ORDER BY operation_id;
SELECT order_id, state, final_operation_id, closed_at, captured_at FROM loyalty."order" ORDER BY order_id;
-- only W-6 held: anna 95, LIM 1, anna 1; the certificate back whole
SELECT pg_temp.snap() AS after_batch;
SELECT * FROM loyalty.verify_ledger();
-- W-6 expired the next day: then everything is as before the holds
SELECT loyalty.expire_orders('2026-12-03T00:00:00Z', 100) AS expired;
SELECT pg_temp.snap() AS expired, pg_temp.snap() = :'before' AS expiry_gives_all_back;
SELECT * FROM loyalty.verify_ledger();
-- nothing left to expire
SELECT loyalty.expire_orders('2026-12-04T00:00:00Z', 100) AS expired;
